"""Typed training configuration (frozen dataclasses), JSON round-trip and ``--set key=value`` overrides.

A ``TrainConfig`` is saved as ``train_config.json`` beside each run and inside every checkpoint's ``config.json``,
so a run can be repeated from its folder alone. Keys are strict: a typo raises ``UnknownKeyError`` listing the
valid keys instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.engine.jsonfile import MAX_CONFIG_BYTES, locate, read_json_document


class ConfigError(SegstudioError):
    """A configuration value is invalid (bad type, out of range, inconsistent with the dataset)."""


# Limits of a config (docs/training.md): beyond them a run would ask for more memory than any machine has, so a
# hostile or mistyped file is refused with the field named instead of trying to allocate terabytes.
#: largest ``data.image_size`` (pixels per side of the square the network sees)
MAX_IMAGE_SIZE = 4096
#: largest ``data.batch_size``, and the most pixels one batch may hold (batch_size * image_size**2)
MAX_BATCH_SIZE = 1024
MAX_BATCH_PIXELS = 2**28
#: most output channels / classes a model is built with
MAX_CLASSES = 1024
MAX_EPOCHS = 100_000
MAX_WORKERS = 64
MAX_CACHE_MB = 1 << 20
MAX_FOLDS = 100
#: most networks in one ensemble model (``model.members``)
MAX_MEMBERS = 8
#: free-form parameter objects (``model.params``, loss term ``params``): nesting, items, and numbers in them
MAX_PARAMS_DEPTH = 4
MAX_PARAMS_ITEMS = 64
MAX_PARAM_NUMBER = 1024
#: longest string value (names, split names, encoders)
MAX_TEXT = 256
_INT_LIMIT = 2**63 - 1
#: encoder names: an smp name or ``tu-`` + a timm name — never a path
ENCODER_NAME = re.compile(r"(tu-)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d{1,2})?")


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build. ``mode``: ``auto`` picks binary (two classes), multilabel (multi-label schema)
    or multiclass (softmax) from the dataset's ClassSchema."""

    architecture: str = "unet"
    encoder: str = "resnet34"
    #: None (random init, the default: no network), "imagenet" (hub download, only when asked) or a local file.
    encoder_weights: str | None = None
    #: None: the architecture's default depth (5 for most, 3 for PSPNet).
    encoder_depth: int | None = None
    in_channels: int = 3
    mode: str = "auto"
    #: An auxiliary head (PSPNet-style deep supervision): class-presence head on smp models, FCN's aux head.
    aux_head: bool = False
    #: Multi-label / binary decision thresholds per output channel (None: 0.5 everywhere).
    thresholds: tuple[float, ...] | None = None
    #: Extra keyword arguments for the architecture (e.g. ``decoder_channels``).
    params: Mapping[str, Any] = field(default_factory=dict)
    #: An ensemble trained as one model: this many networks of the architecture, each from its own random weights,
    #: learn side by side from the same batches; the model predicts the mean of their probabilities
    #: (``models.EnsembleModel``). Each member costs a whole network's steps and memory.
    members: int = 1

    def describe(self) -> str:
        """``unet/resnet18``, or ``ensemble of 2 unet/resnet18``."""
        name = f"{self.architecture}/{self.encoder}"
        return f"ensemble of {self.members} {name}" if self.members > 1 else name


@dataclass(frozen=True)
class DataConfig:
    """How samples become tensors. Images are resized to ``image_size``² (nearest for masks)."""

    image_size: int = 256
    #: "imagenet" (mean/std of ImageNet), "unit" (0..1), "zscore" (per-image standardisation) or "zscore_channels"
    #: (per image and per channel: also evens out each image's colour cast).
    normalize: str = "imagenet"
    #: What of each image the model sees: "none" (all of it) or "content" (the image without the constant bands
    #: along its sides, ``core.content.content_box``: a padded film's black border). Training and inference crop
    #: alike; outside the box a prediction is background.
    crop: str = "none"
    train_split: str = "train"
    val_split: str = "val"
    #: Fraction held out for validation when the dataset has no validation split (deterministic by seed).
    val_fraction: float = 0.2
    #: k-fold cross-validation over all labelled samples (0 = off), stratified by class presence.
    folds: int = 0
    fold: int = 0
    batch_size: int = 4
    num_workers: int = 0
    #: Keep decoded images/masks in memory after the first epoch (bounded by ``cache_mb``).
    cache_mb: int = 1024
    #: The device-resident data path: the training split kept decoded on the training device as uint8 tensors and
    #: augmented there in torch. "auto" (when it fits ``resident_budget_mb`` and ``cache_mb`` > 0), "on" or
    #: "off" (the DataLoader path).
    resident: str = "auto"
    #: Budget of the resident training split in MB; 0 = a quarter of the device's free memory (free RAM on the CPU).
    resident_budget_mb: int = 0


@dataclass(frozen=True)
class LossTerm:
    name: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    """Weighted sum of registered losses. ``class_weights``: None, "balanced" (inverse pixel frequency of the
    training GT) or one weight per output channel (used by CE/BCE/Dice/Focal where supported)."""

    terms: tuple[LossTerm, ...] = (LossTerm("ce", 1.0), LossTerm("dice", 1.0))
    learnable_weights: bool = False
    class_weights: str | tuple[float, ...] | None = None


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    grad_clip: float = 0.0


@dataclass(frozen=True)
class ScheduleConfig:
    #: "cosine", "poly", "onecycle" or "constant"; warm-up (linear) is in epochs and may be fractional.
    name: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    power: float = 0.9


@dataclass(frozen=True)
class AugmentConfig:
    """An augmentation preset plus batch-level mixing. ``hflip_swap`` names class pairs whose labels swap when
    an image is mirrored left-right (left/right lungs); presets then flip with the swap instead of plainly."""

    preset: str = "light"
    #: Mirror left-right where the preset does; false for anatomy whose sides matter and cannot be swapped.
    hflip: bool = True
    hflip_swap: tuple[tuple[str, str], ...] = ()
    cutmix_p: float = 0.0
    copy_paste_p: float = 0.0


#: how a checkpoint is best run, and the choices of each field (``engine.predictor.InferenceOptions``)
INFER_MODES = ("resize", "tile", "native")
#: test-time transforms (``engine.predictor.TTA``): the symmetries of a square; ``d4`` names all of them
INFER_TTA = ("hflip", "vflip", "rot90", "rot180", "rot270", "transpose", "antitranspose")
INFER_TTA_GROUPS = {"d4": INFER_TTA}


@dataclass(frozen=True)
class InferConfig:
    """The inference a model is best run with, stored in its checkpoints so that the app, ``segstudio predict``,
    ``evaluate`` and ``report`` run it alike: ``mode`` (resize, tile or native), test-time flips ``tta``,
    post-processing steps ``post`` (``keep_largest``, ``fill_holes``, ``min_area:pixels=N``, ...) and the tiling
    settings. A recipe sets what its benchmark measured best; an empty config is the plain network."""

    mode: str = "resize"
    tta: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    tile_size: int | None = None
    overlap: float = 0.25
    scale: float = 1.0


DIST_BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class DistributedConfig:
    """Settings of a run launched with ``torchrun`` over several processes (``docs/cluster.md``); a single-process
    run ignores them. ``sync_batchnorm`` normalises with the global batch's statistics (CUDA only: PyTorch has no
    CPU SyncBatchNorm, so a CPU run keeps each process's own and says so). ``backend``: ``auto`` takes NCCL on CUDA,
    gloo on the CPU."""

    sync_batchnorm: bool = False
    backend: str = "auto"


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    epochs: int = 20
    #: Stop after this many validations without improvement of ``monitor`` (0 = never).
    early_stopping: int = 0
    #: "dice", "iou" (mean over classes, higher is better), "loss" (validation loss, lower is better) or
    #: "dice:<class name>" / "iou:<class name>".
    monitor: str = "dice"
    device: str = "auto"
    seed: int = 0
    deterministic: bool = True
    amp: bool = True
    channels_last: bool = True
    swa: bool = False
    swa_start: float = 0.75
    swa_lr: float | None = None
    #: Cap on optimiser steps per epoch (0 = the whole training split); handy for smoke runs.
    max_steps_per_epoch: int = 0
    #: Write ``checkpoints/last`` (weights + optimiser state, ~4x the model size) every this many epochs; it is
    #: always written after the final epoch and on cancel. ``best`` is written whenever the monitor improves.
    save_every: int = 1
    name: str = ""

    # serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"A training config must be a JSON object, not {type(d).__name__}.",
                              fix="Start from a run's train_config.json or a recipe.")
        cfg = _from_dict(TrainConfig, d, "")
        validate(cfg)
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        """Read a run config (or a checkpoint's ``config.json``); every problem is a ``ConfigError`` naming the
        file (an unknown key an ``UnknownKeyError`` naming it too)."""
        p = Path(path)
        raw = read_json_document(p, error=ConfigError, what="config file")
        # a checkpoint's config.json nests the train config
        if isinstance(raw, Mapping) and "train" in raw and "model" not in raw:
            raw = raw["train"]
        try:
            return TrainConfig.from_dict(raw)
        except SegstudioError as e:
            raise locate(e, p) from None

    def with_overrides(self, assignments: Iterable[str]) -> TrainConfig:
        return apply_overrides(self, assignments)


# --------------------------------------------------------------------------------------------------------------
# dict <-> dataclass


def _to_jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_to_jsonable(v) for v in x]
    return x


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a JSON value to the annotated type ``tp`` (dataclasses, tuples, optionals, scalars)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key {where!r} must be an object, got {_short(value)}.")
        return _from_dict(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except (ConfigError, TypeError, ValueError) as e:
                errors.append(str(e))
        raise ConfigError(f"Config key {where!r}: {_short(value)} fits none of {tp}.")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"Config key {where!r} must be a list, got {_short(value)}.")
        if len(value) > MAX_CLASSES:
            raise ConfigError(f"Config key {where!r} has {len(value)} items; at most {MAX_CLASSES} are allowed.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"Config key {where!r} must have {len(args)} items, got {_short(value)}.")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key {where!r} must be an object, got {_short(value)}.")
        _check_params(value, where)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"Config key {where!r} must be true or false, got {value!r}.")
    if tp is int:
        return _to_int(value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"Config key {where!r} must be a number, got {_short(value)}.")
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"Config key {where!r} must be a number, got {_short(value)}.") from None
        if not math.isfinite(f):
            raise ConfigError(f"Config key {where!r} must be a finite number, got {_short(value)}.")
        return f
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"Config key {where!r} must be a string, got {_short(value)}.")
        if len(value) > MAX_TEXT or "\x00" in value:
            raise ConfigError(f"Config key {where!r} must be a short string (at most {MAX_TEXT} characters).")
        return value
    return value


def _short(value: Any) -> str:
    """``repr`` of a config value, cut short (a hostile value may be megabytes or nested thousands deep)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _to_int(value: Any, where: str) -> int:
    bad = ConfigError(f"Config key {where!r} must be an integer, got {_short(value)}.")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad
    if isinstance(value, int):
        n = value
    else:
        try:
            f = float(value)
        except (ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(f) or f != math.floor(f):
            raise bad
        n = int(f)
    if abs(n) > _INT_LIMIT:
        raise ConfigError(f"Config key {where!r} is out of range: {_short(value)}.")
    return n


def _check_params(value: Any, where: str, depth: int = 0) -> None:
    """Free-form parameters stay small: plain JSON, shallow, few items, numbers a network can be built with."""
    if depth > MAX_PARAMS_DEPTH:
        raise ConfigError(f"Config key {where!r} is nested more than {MAX_PARAMS_DEPTH} levels deep.")
    if isinstance(value, Mapping):
        if len(value) > MAX_PARAMS_ITEMS:
            raise ConfigError(f"Config key {where!r} has more than {MAX_PARAMS_ITEMS} entries.")
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > MAX_TEXT:
                raise ConfigError(f"Config key {where!r} has a key that is not a short string.")
            _check_params(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_PARAMS_ITEMS:
            raise ConfigError(f"Config key {where!r} has more than {MAX_PARAMS_ITEMS} items.")
        for v in value:
            _check_params(v, where, depth + 1)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_PARAM_NUMBER:
            raise ConfigError(f"Config key {where!r} holds {_short(value)}; numbers here must be finite and "
                              f"at most {MAX_PARAM_NUMBER} in size.")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ConfigError(f"Config key {where!r} holds a string longer than {MAX_TEXT} characters.")
    else:
        raise ConfigError(f"Config key {where!r} holds a {type(value).__name__}, which is not plain JSON.")


def _from_dict(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            raise UnknownKeyError("config key", _short(prefix + str(k)).strip("'\""), [prefix + n for n in names])
        if cls is LossConfig and k == "terms" and isinstance(v, str):
            kwargs[k] = parse_loss_expression(v)
            continue
        kwargs[k] = _coerce(hints[k], v, prefix + k)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in kwargs:
            raise ConfigError(f"Config key {prefix + f.name!r} is missing.", fix=f"Give {prefix + f.name}.")
    return cls(**kwargs)


_TERM_RE = re.compile(r"^\s*(?:(?P<w>[0-9.eE+-]+)\s*\*\s*)?(?P<name>[A-Za-z_][\w-]*)\s*$")


def parse_loss_expression(expr: str) -> tuple[LossTerm, ...]:
    """``"0.01*dice + 0.99*boundary + 0.3*aux"`` → loss terms (weight 1 where none is written)."""
    terms = []
    for part in expr.split("+"):
        m = _TERM_RE.match(part)
        if not m:
            raise ConfigError(
                f"Cannot read loss term {part.strip()!r} in {expr!r}.",
                fix="Write terms as WEIGHT*NAME joined by '+', e.g. 0.5*ce+0.5*dice.",
            )
        try:
            w = float(m["w"]) if m["w"] else 1.0
        except ValueError:
            w = math.nan
        if not math.isfinite(w):
            raise ConfigError(f"Loss term {part.strip()!r} has no valid finite weight.",
                              fix="Write terms as WEIGHT*NAME joined by '+', e.g. 0.5*ce+0.5*dice.")
        terms.append(LossTerm(m["name"].lower(), w))
    return tuple(terms)


# --------------------------------------------------------------------------------------------------------------
# overrides


def _leaf_paths(cls: type, prefix: str = "") -> dict[str, str]:
    """Every settable dotted path of the config tree, e.g. ``model.encoder``."""
    out: dict[str, str] = {}
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = prefix + f.name
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out.update(_leaf_paths(tp, path + "."))
        out[path] = path
    return out


def _resolve_key(key: str) -> str:
    paths = _leaf_paths(TrainConfig)
    if key in paths:
        return key
    # a bare leaf name is accepted when it is unique across sections (``epochs``, ``image_size``, ``lr``)
    matches = [p for p in paths if p.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"Config key {key!r} is ambiguous: {', '.join(sorted(matches))}.", fix="Use the dotted path.")
    raise UnknownKeyError("config key", key, sorted(paths))


def _parse_value(text: str, key: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"The value of --set {key} is {len(text)} characters long.", fix="Give a short value.")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # "none" stays a string: only optional fields read it as null (a preset is named "none")
    except RecursionError:
        raise ConfigError(f"The value of --set {key} is nested too deeply.", fix="Give a plain value.") from None
    except ValueError as e:  # an integer with thousands of digits
        raise ConfigError(f"The value of --set {key} is not a usable number ({e}).",
                          fix="Give a number within the field's range (docs/training.md).") from None


def apply_overrides(cfg: TrainConfig, assignments: Iterable[str]) -> TrainConfig:
    """Apply ``key=value`` strings; values are JSON when they parse as JSON, else plain strings."""
    d = cfg.to_dict()
    for a in assignments:
        if "=" not in a:
            raise ConfigError(f"Override {a!r} is not of the form key=value.", fix="Write e.g. --set epochs=1.")
        key, text = a.split("=", 1)
        path = _resolve_key(key.strip()).split(".")
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = _parse_value(text, key.strip())
    return TrainConfig.from_dict(d)


def fine_tune_config(base: TrainConfig, *, epochs: int, lr_scale: float = 0.2) -> TrainConfig:
    """The current model's config, set up to continue from its weights: ``epochs`` epochs at ``lr_scale`` of its
    learning rate, no warm-up, no early stop, no SWA (a fine-tune is short; its last epoch is what is judged)."""
    if epochs < 1:
        raise ConfigError(f"A retraining round needs at least one epoch, not {epochs}.", fix="Use 1 or more.")
    over = [f"epochs={epochs}", f"optim.lr={base.optim.lr * lr_scale!r}", "schedule.warmup_epochs=0",
            "early_stopping=0", "swa=false"]
    name = base.name or base.model.architecture
    over.append(f"name={name if name.endswith('(fine-tuned)') else name + ' (fine-tuned)'}")
    return base.with_overrides(over)


# --------------------------------------------------------------------------------------------------------------
# validation

MODES = ("auto", "binary", "multiclass", "multilabel")
NORMALIZATIONS = ("imagenet", "unit", "zscore", "zscore_channels")
#: what of an image a model sees (``DataConfig.crop``)
CROPS = ("none", "content")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "poly", "onecycle", "constant")
#: ``data.resident``: the device-resident data path when it fits / always / never
RESIDENT_MODES = ("auto", "on", "off")
#: ``model.params`` keys that would bypass the checked fields (the encoder name above all)
RESERVED_MODEL_PARAMS = frozenset({"arch", "encoder_name", "encoder_weights", "encoder_depth", "in_channels",
                                   "classes", "aux_params"})


def validate(cfg: TrainConfig) -> None:
    """Range and choice checks that need no dataset; registry keys are checked where they are looked up."""
    if cfg.model.mode not in MODES:
        raise UnknownKeyError("model mode", cfg.model.mode, MODES)
    if cfg.data.normalize not in NORMALIZATIONS:
        raise UnknownKeyError("normalization", cfg.data.normalize, NORMALIZATIONS)
    if cfg.data.crop not in CROPS:
        raise UnknownKeyError("crop", cfg.data.crop, CROPS)
    if cfg.optim.name not in OPTIMIZERS:
        raise UnknownKeyError("optimizer", cfg.optim.name, OPTIMIZERS)
    if cfg.schedule.name not in SCHEDULES:
        raise UnknownKeyError("schedule", cfg.schedule.name, SCHEDULES)
    d, m, o, sc = cfg.data, cfg.model, cfg.optim, cfg.schedule
    checks = [
        (1 <= cfg.epochs <= MAX_EPOCHS, f"epochs must be 1..{MAX_EPOCHS}", "epochs"),
        (1 <= cfg.save_every <= MAX_EPOCHS, f"save_every must be 1..{MAX_EPOCHS}", "save_every"),
        (0 <= cfg.early_stopping <= MAX_EPOCHS, f"early_stopping must be 0..{MAX_EPOCHS} (0 = never)", "early_stopping"),
        (0 <= cfg.max_steps_per_epoch <= _INT_LIMIT,
         "max_steps_per_epoch must be 0 (the whole training split) or a positive number of steps",
         "max_steps_per_epoch"),
        (16 <= d.image_size <= MAX_IMAGE_SIZE and d.image_size % 16 == 0,
         f"image_size must be a multiple of 16 from 16 to {MAX_IMAGE_SIZE}", "data.image_size"),
        (1 <= d.batch_size <= MAX_BATCH_SIZE, f"batch_size must be 1..{MAX_BATCH_SIZE}", "data.batch_size"),
        (d.batch_size * d.image_size**2 <= MAX_BATCH_PIXELS,
         f"batch_size x image_size² must be at most {MAX_BATCH_PIXELS} pixels (e.g. 256 images of 1024²)",
         "data.batch_size"),
        (0 <= d.num_workers <= MAX_WORKERS, f"num_workers must be 0..{MAX_WORKERS}", "data.num_workers"),
        (0 <= d.cache_mb <= MAX_CACHE_MB, f"cache_mb must be 0..{MAX_CACHE_MB}", "data.cache_mb"),
        (d.resident in RESIDENT_MODES, "resident must be auto, on or off", "data.resident"),
        (0 <= d.resident_budget_mb <= MAX_CACHE_MB,
         f"resident_budget_mb must be 0 (a share of free device memory) to {MAX_CACHE_MB}", "data.resident_budget_mb"),
        (0.0 <= d.val_fraction < 1.0, "val_fraction must be in [0, 1)", "data.val_fraction"),
        (0 <= d.folds <= MAX_FOLDS and d.folds != 1, f"folds must be 0 (off) or 2..{MAX_FOLDS}", "data.folds"),
        (d.folds == 0 or 0 <= d.fold < d.folds, "fold must be in [0, folds)", "data.fold"),
        (0 < o.lr <= 10.0, "lr must be positive (and at most 10)", "optim.lr"),
        (0.0 <= o.weight_decay <= 10.0, "weight_decay must be in [0, 10]", "optim.weight_decay"),
        (0.0 <= o.momentum <= 1.0, "momentum must be in [0, 1]", "optim.momentum"),
        (0.0 <= o.grad_clip <= 1e6, "grad_clip must be 0 (off) or positive", "optim.grad_clip"),
        (0.0 <= sc.warmup_epochs <= MAX_EPOCHS, "warmup_epochs must be 0 or positive", "schedule.warmup_epochs"),
        (0.0 <= sc.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]", "schedule.min_lr_ratio"),
        (0.0 <= sc.power <= 100.0, "power must be in [0, 100]", "schedule.power"),
        (m.in_channels in (1, 3), "in_channels must be 1 or 3", "model.in_channels"),
        (m.encoder_depth is None or 1 <= m.encoder_depth <= 5, "encoder_depth must be null or 1..5",
         "model.encoder_depth"),
        (1 <= m.members <= MAX_MEMBERS, f"members must be 1..{MAX_MEMBERS}", "model.members"),
        (m.thresholds is None or all(0.0 <= t <= 1.0 for t in m.thresholds), "thresholds must be in [0, 1]",
         "model.thresholds"),
        (ENCODER_NAME.fullmatch(m.encoder) is not None and ".." not in m.encoder,
         "encoder must be an encoder name (letters, digits, '_', '.', '-'; 'tu-' for timm), never a path",
         "model.encoder"),
        (0.0 <= cfg.swa_start < 1.0, "swa_start must be in [0, 1)", "swa_start"),
        (cfg.swa_lr is None or 0.0 < cfg.swa_lr <= 10.0, "swa_lr must be null or positive", "swa_lr"),
        (0 <= cfg.seed < 2**63, "seed must be 0 or a positive integer", "seed"),
        (DEVICE_NAME.fullmatch(cfg.device) is not None, "device must be auto, cpu, mps, cuda or cuda:N", "device"),
        (1 <= len(cfg.loss.terms) <= 16, "the loss needs 1 to 16 terms", "loss.terms"),
        (all(0.0 <= t.weight <= 1e6 for t in cfg.loss.terms), "loss term weights must be in [0, 1e6]", "loss.terms"),
        (not isinstance(cfg.loss.class_weights, tuple) or all(0.0 <= w <= 1e6 for w in cfg.loss.class_weights),
         "class weights must be in [0, 1e6]", "loss.class_weights"),
        (0.0 <= cfg.augment.cutmix_p <= 1.0 and 0.0 <= cfg.augment.copy_paste_p <= 1.0,
         "mixing probabilities must be in [0, 1]", "augment"),
        (0.0 <= cfg.infer.overlap < 1.0, "overlap must be in [0, 1)", "infer.overlap"),
        (0.0 < cfg.infer.scale <= 16.0, "scale must be in (0, 16]", "infer.scale"),
        (cfg.infer.tile_size is None or 32 <= cfg.infer.tile_size <= MAX_IMAGE_SIZE,
         f"tile_size must be null or 32..{MAX_IMAGE_SIZE}", "infer.tile_size"),
        (len(cfg.infer.post) <= 16, "at most 16 post-processing steps", "infer.post"),
    ]
    fixes = {"model.encoder": "Use an smp encoder name (e.g. resnet34) or tu-<timm model> (e.g. tu-convnext_tiny).",
             "data.resident": "Set data.resident to auto, on (keep the training split on the device) or off "
             "(the DataLoader path)."}
    for ok, msg, key in checks:
        if not ok:
            raise ConfigError(f"Invalid config: {msg} ({key}).",
                              fix=fixes.get(key, f"Set {key} within its range (docs/training.md)."))
    if isinstance(cfg.loss.class_weights, str) and cfg.loss.class_weights != "balanced":
        raise ConfigError("loss.class_weights must be null, \"balanced\" or a list of numbers.")
    reserved = sorted(RESERVED_MODEL_PARAMS & set(cfg.model.params))
    if reserved:
        raise ConfigError(f"model.params may not set {', '.join(reserved)}: those come from the config's own fields.",
                          fix="Set model.encoder, model.in_channels, model.encoder_weights or model.aux_head instead.")
    if cfg.distributed.backend not in DIST_BACKENDS:
        raise UnknownKeyError("distributed backend", cfg.distributed.backend, DIST_BACKENDS)
    if cfg.infer.mode not in INFER_MODES:
        raise UnknownKeyError("inference mode", cfg.infer.mode, INFER_MODES)
    for name in cfg.infer.tta:
        if name not in INFER_TTA and name not in INFER_TTA_GROUPS:
            raise UnknownKeyError("test-time augmentation", name, [*INFER_TTA, *INFER_TTA_GROUPS])
    from segstudio.engine.postprocess import parse_step, step_names

    for spec in cfg.infer.post:
        if parse_step(spec).name not in step_names():
            raise UnknownKeyError("post-processing step", parse_step(spec).name, step_names())
    kind = cfg.monitor.split(":", 1)[0]
    if kind not in ("dice", "iou", "loss"):
        raise UnknownKeyError("monitor", cfg.monitor, ("dice", "iou", "loss", "dice:<class>", "iou:<class>"))
