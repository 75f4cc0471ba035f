"""Self-describing checkpoints (DESIGN §3, rule 8): a directory with ``config.json`` and ``model.safetensors``.

``config.json`` holds everything needed to rebuild and use the model: architecture, encoder, class schema, task
(output channels ↔ class ids), preprocessing, the full training config, metrics and the segstudio version.
A ``last`` checkpoint also carries ``training_state.safetensors`` + ``training_state.json`` (optimizer moments,
learnable loss weights, epoch, history) for resuming. Nothing is ever unpickled: tensors come from safetensors,
everything else from JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import segstudio
from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.engine.config import TrainConfig
from segstudio.engine.models import SegmentationModel, build_model
from segstudio.engine.preprocess import Preprocessing
from segstudio.engine.task import Task

FORMAT = "segstudio-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


class CheckpointError(SegstudioError):
    """A checkpoint folder is missing, incomplete or from an incompatible version."""


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``model`` is in eval mode on the requested device."""

    path: Path
    model: SegmentationModel
    config: TrainConfig
    task: Task
    schema: ClassSchema
    preprocessing: Preprocessing
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _tensors(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; a contiguous CPU copy per entry is always accepted
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def _write_dir_atomically(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` → tensors for safetensors + a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    config: TrainConfig,
    task: Task,
    schema: ClassSchema,
    metrics: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    training_tensors: dict[str, torch.Tensor] | None = None,
    training_json: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (a crash leaves the previous one intact)."""
    p = Path(path)
    pre = Preprocessing(config.data.image_size, config.model.in_channels, config.data.normalize)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "segstudio_version": segstudio.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "architecture": config.model.architecture,
        "encoder": config.model.encoder,
        "mode": task.mode,
        "task": task.to_dict(),
        "class_schema": schema.to_dict(),
        "preprocessing": pre.to_dict(),
        "thresholds": list(config.model.thresholds) if config.model.thresholds else [0.5] * task.out_channels,
        "train": config.to_dict(),
        "metrics": metrics or {},
        **(info or {}),
    }

    def write(tmp: Path) -> None:
        save_file(_tensors(model.state_dict()), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        if training_tensors is not None:
            save_file(_tensors(training_tensors), str(tmp / STATE_TENSORS))
        if training_json is not None:
            (tmp / STATE_JSON).write_text(json.dumps(training_json, default=str), encoding="utf-8")

    _write_dir_atomically(p, write)
    return p


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    cfg_path = p / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(
            "This is not a segstudio checkpoint (no config.json).",
            path=p,
            fix="Point to a checkpoint directory such as RUN_DIR/checkpoints/best.",
        )
    doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise CheckpointError("config.json does not describe a segstudio checkpoint.", path=cfg_path)
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"The checkpoint format version {doc['format_version']} is newer than this segstudio understands.",
            path=cfg_path,
            fix="Update segstudio.",
        )
    return doc


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (no pickle, no network)."""
    p = Path(path)
    doc = read_config(p)
    config = TrainConfig.from_dict(doc["train"])
    task = Task.from_dict(doc["task"])
    # the weights come from the file: never fetch pretrained encoder weights to rebuild the skeleton
    from dataclasses import replace

    skeleton = replace(config.model, encoder_weights=None)
    model = build_model(skeleton, out_channels=task.out_channels)
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError("The checkpoint has no model.safetensors.", path=p, fix="Re-save the checkpoint.")
    missing, unexpected = model.load_state_dict(load_file(str(weights), device="cpu"), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"The weights do not fit the described model ({len(missing)} missing, {len(unexpected)} unexpected tensors).",
            path=weights,
        )
    model.to(device).eval()
    return Checkpoint(
        path=p,
        model=model,
        config=config,
        task=task,
        schema=ClassSchema.from_dict(doc["class_schema"]),
        preprocessing=Preprocessing.from_dict(doc["preprocessing"]),
        metrics=dict(doc.get("metrics", {})),
        info=doc,
    )


def load_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    p = Path(path)
    if not (p / STATE_TENSORS).is_file() or not (p / STATE_JSON).is_file():
        raise CheckpointError(
            "The checkpoint has no training state to resume from.",
            path=p,
            fix="Resume from RUN_DIR/checkpoints/last, which the trainer writes every epoch.",
        )
    return load_file(str(p / STATE_TENSORS), device="cpu"), json.loads((p / STATE_JSON).read_text(encoding="utf-8"))
