"""The engine's word on a run folder before it is imported into a workspace (``segstudio.workspace.run_import``
checks the files without torch; this loads what they describe).

Read-only: the config is parsed as a ``TrainConfig`` would be trained, the checkpoint is loaded the way the app
loads a model (``config.json`` checked, ``model.safetensors`` read with safetensors, the model rebuilt on the CPU),
and, given the open dataset's class schema, the model must have been trained on the same classes.
"""

from __future__ import annotations

from typing import Any

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.engine.checkpoint import CheckpointError, load_checkpoint
from segstudio.engine.config import TrainConfig

__all__ = ["check_run_for_import"]


def _classes(schema: ClassSchema) -> list[tuple[int, str]]:
    return sorted((c.id, c.name) for c in schema.classes if not c.ignore)


def check_run_for_import(summary: Any, *, schema: ClassSchema | None = None) -> None:
    """Raise ``SegstudioError`` naming the file when the run ``summary`` (a ``RunFolderSummary``) cannot be used:
    a config the engine refuses, a checkpoint that does not load, or (with ``schema``) other classes than the
    dataset's."""
    folder = summary.folder
    TrainConfig.load(folder / "train_config.json")
    try:
        ckpt = load_checkpoint(summary.checkpoint, device="cpu")
    except CheckpointError as e:
        raise SegstudioError(f"The run's checkpoint does not load: {e.message}", path=e.path or summary.checkpoint,
                             fix=e.fix or "Copy the run folder again from where it was trained.") from None
    if schema is not None:
        mine, theirs = _classes(schema), _classes(ckpt.schema)
        if mine != theirs or schema.multilabel != ckpt.schema.multilabel:
            names = ", ".join(n for _, n in theirs) or "none"
            raise SegstudioError(
                f"The run's model was trained on other classes ({names}) than this dataset has "
                f"({', '.join(n for _, n in mine) or 'none'}): its predictions would not fit.", path=folder,
                fix="Import it into the workspace of the dataset it was trained on.")
