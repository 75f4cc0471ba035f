"""Self-describing checkpoints (DESIGN §3, rule 8): a directory with ``config.json`` and ``model.safetensors``.

``config.json`` holds everything needed to rebuild and use the model: architecture, encoder, class schema, task
(output channels ↔ class ids), preprocessing, the full training config, metrics and the segstudio version.
A ``last`` checkpoint also carries ``training_state.safetensors`` + ``training_state.json`` (optimizer moments,
learnable loss weights, epoch, history) for resuming. Nothing is ever unpickled: tensors come from safetensors,
everything else from JSON.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import segstudio
from segstudio.core.atomic import TEMP_SUFFIX, fsync_dir, json_safe, sweep_stale_temps, temp_path_for
from segstudio.core.errors import FileIOError, SegstudioError, io_error
from segstudio.core.types import MAX_MULTILABEL_CLASSES, ClassSchema
from segstudio.engine.config import (
    CROPS,
    MAX_CLASSES,
    MAX_IMAGE_SIZE,
    NORMALIZATIONS,
    TrainConfig,
)
from segstudio.engine.jsonfile import read_json_document
from segstudio.engine.models import EnsembleModel, SegmentationModel, build_model
from segstudio.engine.preprocess import Preprocessing
from segstudio.engine.task import Task

log = logging.getLogger(__name__)

FORMAT = "segstudio-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
#: largest class id of a semantic mask (uint16 index maps)
MAX_CLASS_ID = 65535


class CheckpointError(SegstudioError):
    """A checkpoint folder is missing, incomplete, damaged or from an incompatible version."""


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``model`` is in eval mode on the requested device."""

    path: Path
    model: SegmentationModel | EnsembleModel
    config: TrainConfig
    task: Task
    schema: ClassSchema
    preprocessing: Preprocessing
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's ``config.json``, parsed and checked (no weights read, no model built)."""

    path: Path
    config: TrainConfig
    task: Task
    schema: ClassSchema
    preprocessing: Preprocessing
    metrics: dict[str, Any]
    doc: dict[str, Any]


def _tensors(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; a contiguous CPU copy per entry is always accepted
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


# --------------------------------------------------------------------------------------------------------------
# atomic directory replacement
#
# A checkpoint is a folder, and a folder cannot be replaced by one rename. The writer fills a temp folder
# ``.<name>.<pid>.<hex>.tmp`` beside it (the name core.atomic's sweep knows), moves the current folder aside to
# ``.<name>.old``, renames the temp folder into place and removes the old one. A kill -9 at any point leaves the
# new folder, or the old one (in place, or aside with nothing in place: :func:`recover_checkpoint` moves it back),
# plus at most a temp folder of a dead process, which the next writer or loader sweeps.


def _old_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover_checkpoint(path: str | Path) -> Path:
    """Undo what a writer killed mid-swap left: dead writers' temp folders removed, the previous folder moved
    back when the checkpoint is missing, a leftover ``.old`` folder removed. While another live process is
    writing the checkpoint nothing is moved. Never raises (a read-only location is read as it is); returns the
    folder to read (``.old`` when it could not be moved back)."""
    p = Path(path)
    old = _old_path(p)
    try:
        sweep_stale_temps(p.parent, recursive=False)
        writing = any(p.parent.glob(f".{p.name}.*{TEMP_SUFFIX}"))
        if old.is_dir() and not writing:
            if p.exists():
                shutil.rmtree(old)
            elif (old / CONFIG_FILE).is_file():
                os.rename(old, p)
                fsync_dir(p.parent)
                log.info("restored checkpoint %s after an interrupted save", p)
    except OSError as e:
        log.warning("could not tidy checkpoint folder %s: %s", p, e)
    if not p.exists() and (old / CONFIG_FILE).is_file():
        return old
    return p


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(folder)


def _oserror_of(exc: BaseException) -> OSError | None:
    """safetensors reports I/O failures as ``SafetensorError('... Os { code: 28 ...')``: the errno back."""
    if isinstance(exc, OSError):
        return exc
    text = str(exc)
    if "code: 28" in text or "No space left" in text:
        return OSError(errno.ENOSPC, "No space left on device")
    if "code: 13" in text or "Permission denied" in text:
        return OSError(errno.EACCES, "Permission denied")
    if "code: 30" in text:
        return OSError(errno.EROFS, "Read-only file system")
    return None


def _write_dir_atomically(path: Path, write: Callable[[Path], None], *, needed: int | None = None) -> None:
    recover_checkpoint(path)
    tmp = temp_path_for(path)
    old = _old_path(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            write(tmp)
            _fsync_tree(tmp)
            if old.exists():
                shutil.rmtree(old)
            if path.exists():
                os.rename(path, old)
            os.rename(tmp, path)
        except (OSError, SafetensorError) as e:
            if isinstance(e, FileIOError):
                raise
            os_err = _oserror_of(e)
            if os_err is None:
                raise CheckpointError(
                    f"Cannot write the checkpoint ({e}).", path=path, fix="Check the disk, then save again."
                ) from e
            raise io_error(os_err, path / WEIGHTS_FILE, action="save the checkpoint", needed=needed) from e
        fsync_dir(path.parent)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists() and old.is_dir():
            try:  # the swap failed half way: the previous checkpoint goes back
                os.rename(old, path)
            except OSError:
                log.warning("the previous checkpoint is at %s", old)


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


def snapshot_checkpoint(
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
) -> Callable[[], Path]:
    """Copy everything a checkpoint holds now (CPU copies of the weights and training tensors, the documents)
    and return the function that writes it atomically. Training may go on changing the model while the returned
    writer runs on another thread: it only touches the copies."""
    p = Path(path)
    pre = Preprocessing(config.data.image_size, config.model.in_channels, config.data.normalize, config.data.crop)
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
    config_text = json.dumps(json_safe(doc), indent=2, default=str, allow_nan=False)
    state_text = (json.dumps(json_safe(training_json), default=str, allow_nan=False)
                  if training_json is not None else None)
    weights = _tensors(model.state_dict())
    state = _tensors(training_tensors) if training_tensors is not None else None
    needed = sum(t.numel() * t.element_size() for t in [*weights.values(), *(state or {}).values()])

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        if state is not None:
            save_file(state, str(tmp / STATE_TENSORS))
        if state_text is not None:
            (tmp / STATE_JSON).write_text(state_text, encoding="utf-8")

    def commit() -> Path:
        _write_dir_atomically(p, write, needed=needed)
        return p

    return commit


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
    return snapshot_checkpoint(path, model=model, config=config, task=task, schema=schema, metrics=metrics,
                               info=info, training_tensors=training_tensors, training_json=training_json)()


def _folder(path: str | Path) -> Path:
    p = recover_checkpoint(Path(path))
    if not (p / CONFIG_FILE).is_file():
        fix = ("Point to a checkpoint directory: RUN_DIR/checkpoints/best, or swa (else last) for a run trained on "
               "every image.")
        held = p / "checkpoints"
        if held.is_dir():  # a run folder: name its checkpoints
            names = sorted(c.name for c in held.iterdir() if (c / CONFIG_FILE).is_file())
            if names:
                fix = f"This is a run folder; point to one of its checkpoints: {', '.join(str(held / n) for n in names)}."
        raise CheckpointError("This is not a segstudio checkpoint (no config.json).", path=Path(path), fix=fix)
    return p


def read_config(path: str | Path) -> dict[str, Any]:
    """A checkpoint's ``config.json`` as a dict (format and version checked; see :func:`read_info` for the
    parsed, fully checked form). Raises ``CheckpointError`` naming the file for anything malformed."""
    cfg_path = _folder(path) / CONFIG_FILE
    doc = read_json_document(cfg_path, error=CheckpointError, what="checkpoint config.json")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(
            "config.json does not describe a segstudio checkpoint.",
            path=cfg_path,
            fix="Point to a folder written by segstudio (RUN_DIR/checkpoints/best).",
        )
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"config.json has an invalid format_version {str(version)[:40]!r}.",
            path=cfg_path,
            fix="Re-save the checkpoint with segstudio.",
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"The checkpoint format version {version} is newer than this segstudio understands.",
            path=cfg_path,
            fix="Update segstudio.",
        )
    return doc


def _bad(cfg_path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"The checkpoint's config.json is damaged: {what}.",
        path=cfg_path,
        fix="Re-save the checkpoint, or use another one (e.g. RUN_DIR/checkpoints/last).",
    )


def _section(doc: dict[str, Any], key: str, cfg_path: Path) -> dict[str, Any]:
    v = doc.get(key)
    if not isinstance(v, dict):
        raise _bad(cfg_path, f"{key!r} must be an object")
    return v


def _parse_task(d: dict[str, Any], cfg_path: Path) -> Task:
    ids, names, mode = d.get("class_ids"), d.get("class_names"), d.get("mode")
    if mode not in ("binary", "multiclass", "multilabel"):
        raise _bad(cfg_path, f"task.mode {str(mode)[:40]!r} is not binary, multiclass or multilabel")
    if not isinstance(ids, list) or not isinstance(names, list) or len(ids) != len(names):
        raise _bad(cfg_path, "task.class_ids and task.class_names must be lists of the same length")
    top = MAX_MULTILABEL_CLASSES - 1 if mode == "multilabel" else MAX_CLASS_ID
    if not 1 <= len(ids) <= MAX_CLASSES:
        raise _bad(cfg_path, f"the task has {len(ids)} classes; a checkpoint has 1 to {MAX_CLASSES}")
    if any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= top for c in ids) or len(
        set(ids)
    ) != len(ids):
        raise _bad(cfg_path, f"task.class_ids must be distinct integers 0..{top}")
    if any(not isinstance(n, str) for n in names):
        raise _bad(cfg_path, "task.class_names must be strings")
    if mode == "binary" and len(ids) != 2:
        raise _bad(cfg_path, "a binary task has exactly two classes")
    ign = d.get("schema_ignore_index")
    if ign is not None and (
        isinstance(ign, bool) or not isinstance(ign, int) or not 0 <= ign <= MAX_CLASS_ID
    ):
        raise _bad(cfg_path, "task.schema_ignore_index must be null or a class value 0..65535")
    return Task(mode=mode, class_ids=tuple(ids), class_names=tuple(names), schema_ignore_index=ign)


def _parse_schema(d: dict[str, Any], cfg_path: Path) -> ClassSchema:
    classes = d.get("classes")
    if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES + 1:
        raise _bad(cfg_path, f"class_schema.classes must be a list of 1 to {MAX_CLASSES + 1} classes")
    ign = d.get("ignore_index")
    if ign is not None and (
        isinstance(ign, bool) or not isinstance(ign, int) or not 0 <= ign <= MAX_CLASS_ID
    ):
        raise _bad(cfg_path, "class_schema.ignore_index must be null or a class value 0..65535")
    for c in classes:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not 0 <= c["id"] <= MAX_CLASS_ID:
            raise _bad(cfg_path, "each class of class_schema needs an integer id 0..65535")
        colour = c.get("colour")
        if (
            not isinstance(colour, list)
            or len(colour) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in colour)
        ):
            raise _bad(cfg_path, "each class colour must be three integers 0..255")
        if not isinstance(c.get("name"), str):
            raise _bad(cfg_path, "each class of class_schema needs a name")
    try:
        return ClassSchema.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(cfg_path, f"class_schema: {e}") from None


def _parse_preprocessing(d: dict[str, Any], cfg_path: Path) -> Preprocessing:
    size, ch, norm = d.get("image_size"), d.get("in_channels"), d.get("normalize")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_IMAGE_SIZE:
        raise _bad(cfg_path, f"preprocessing.image_size must be an integer 16..{MAX_IMAGE_SIZE}")
    if ch not in (1, 3) or isinstance(ch, bool):
        raise _bad(cfg_path, "preprocessing.in_channels must be 1 or 3")
    if norm not in NORMALIZATIONS:
        raise _bad(cfg_path, f"preprocessing.normalize must be one of {', '.join(NORMALIZATIONS)}")
    crop = d.get("crop", "none")  # written since crop exists; before, nothing was cropped
    if crop not in CROPS:
        raise _bad(cfg_path, f"preprocessing.crop must be one of {', '.join(CROPS)}")
    return Preprocessing(size, ch, norm, crop)


def parse_info(doc: dict[str, Any], cfg_path: Path) -> CheckpointInfo:
    """Check every part of a checkpoint's ``config.json`` a reader uses; ``CheckpointError`` naming the file
    and the field otherwise. Bounds: at most ``MAX_CLASSES`` classes, image sizes up to ``MAX_IMAGE_SIZE``."""
    try:
        config = TrainConfig.from_dict(_section(doc, "train", cfg_path))
    except CheckpointError:
        raise
    except SegstudioError as e:
        raise CheckpointError(
            f"The checkpoint's training config is invalid: {e.message}",
            path=cfg_path,
            fix=e.fix or "Re-save the checkpoint with segstudio.",
        ) from None
    task = _parse_task(_section(doc, "task", cfg_path), cfg_path)
    schema = _parse_schema(_section(doc, "class_schema", cfg_path), cfg_path)
    pre = _parse_preprocessing(_section(doc, "preprocessing", cfg_path), cfg_path)
    if schema.multilabel != (task.mode == "multilabel"):
        raise _bad(cfg_path, "the class schema and the task disagree on multi-label")
    ths = doc.get("thresholds")
    if ths is not None and (
        not isinstance(ths, list)
        or len(ths) != task.out_channels
        or any(isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 1.0 for t in ths)
    ):
        raise _bad(cfg_path, f"thresholds must be {task.out_channels} numbers in [0, 1]")
    metrics = doc.get("metrics")
    return CheckpointInfo(
        path=cfg_path.parent,
        config=config,
        task=task,
        schema=schema,
        preprocessing=pre,
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
        doc=doc,
    )


def read_info(path: str | Path) -> CheckpointInfo:
    """A checkpoint's ``config.json``, parsed and checked; no weights read."""
    folder = _folder(path)
    return parse_info(read_config(folder), folder / CONFIG_FILE)


def _load_tensors(path: Path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file: a damaged, truncated or pickled file is our error, never unpickled."""
    try:
        return load_file(str(path), device=device)
    except FileNotFoundError:
        raise CheckpointError(
            f"The checkpoint has no {path.name}.", path=path, fix="Re-save the checkpoint."
        ) from None
    except OSError as e:
        raise io_error(e, path, action="read") from e
    except (SafetensorError, ValueError, RuntimeError) as e:
        try:
            with open(path, "rb") as fh:
                head = fh.read(2)
        except OSError:
            head = b""
        kind = (
            "a pickle, which segstudio never loads"
            if head[:1] == b"\x80" or head == b"PK"
            else "damaged or truncated"
        )
        raise CheckpointError(
            f"{path.name} is not a valid safetensors file ({kind}: {e}).",
            path=path,
            fix="Use a checkpoint written by segstudio, or re-save it from a trusted copy.",
        ) from None


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (no pickle, no network).

    Every part is checked before anything is built (``CheckpointError`` naming the file otherwise)."""
    from dataclasses import replace

    info = read_info(path)
    p = info.path
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            "The checkpoint has no model.safetensors.", path=p, fix="Re-save the checkpoint."
        )
    tensors = _load_tensors(weights)
    # the weights come from the file: never fetch pretrained encoder weights to rebuild the skeleton
    skeleton = replace(info.config.model, encoder_weights=None)
    try:
        model = build_model(skeleton, out_channels=info.task.out_channels, mode=info.task.mode)
    except SegstudioError as e:
        raise CheckpointError(
            f"The checkpoint describes a model that cannot be built: {e.message}",
            path=p / CONFIG_FILE,
            fix=e.fix or "Re-save the checkpoint with segstudio.",
        ) from None
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:
        raise CheckpointError(
            f"The weights do not fit the described model ({str(e).splitlines()[0][:300]}).",
            path=weights,
            fix="Use the config.json the weights were saved with.",
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"The weights do not fit the described model ({len(missing)} missing, {len(unexpected)} unexpected tensors).",
            path=weights,
        )
    model.to(device).eval()
    return Checkpoint(
        path=p,
        model=model,
        config=info.config,
        task=info.task,
        schema=info.schema,
        preprocessing=info.preprocessing,
        metrics=info.metrics,
        info=info.doc,
    )


def load_weights(path: str | Path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The model tensors of a checkpoint folder (safetensors only; our error for a damaged file)."""
    return _load_tensors(recover_checkpoint(Path(path)) / WEIGHTS_FILE, device=device)


def load_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    p = recover_checkpoint(Path(path))
    if not (p / STATE_TENSORS).is_file() or not (p / STATE_JSON).is_file():
        raise CheckpointError(
            "The checkpoint has no training state to resume from.",
            path=p,
            fix="Resume from RUN_DIR/checkpoints/last, which the trainer writes every epoch.",
        )
    meta = read_json_document(
        p / STATE_JSON, error=CheckpointError, what="training state", max_bytes=64 << 20
    )
    if not isinstance(meta, dict):
        raise CheckpointError(
            "The training state is damaged (training_state.json).",
            path=p / STATE_JSON,
            fix="Start a new run, or resume from another copy of the run folder.",
        )
    return _load_tensors(p / STATE_TENSORS), meta
