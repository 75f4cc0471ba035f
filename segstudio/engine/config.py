"""Typed training configuration (frozen dataclasses), JSON round-trip and ``--set key=value`` overrides.

A ``TrainConfig`` is saved as ``train_config.json`` beside each run and inside every checkpoint's ``config.json``,
so a run can be repeated from its folder alone. Keys are strict: a typo raises ``UnknownKeyError`` listing the
valid keys instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError, UnknownKeyError


class ConfigError(SegstudioError):
    """A configuration value is invalid (bad type, out of range, inconsistent with the dataset)."""


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


@dataclass(frozen=True)
class DataConfig:
    """How samples become tensors. Images are resized to ``image_size``² (nearest for masks)."""

    image_size: int = 256
    #: "imagenet" (mean/std of ImageNet), "unit" (0..1) or "zscore" (per-image standardisation).
    normalize: str = "imagenet"
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


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
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
        cfg = _from_dict(TrainConfig, d, "")
        validate(cfg)
        return cfg

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("The config file does not exist.", path=p, fix="Check the path.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"The config file is not valid JSON ({e}).", path=p, fix="Fix the JSON syntax.") from None
        # a checkpoint's config.json nests the train config
        if "train" in raw and "model" not in raw:
            raw = raw["train"]
        return TrainConfig.from_dict(raw)

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
            raise ConfigError(f"Config key {where!r} must be an object, got {value!r}.")
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
        raise ConfigError(f"Config key {where!r}: {value!r} fits none of {tp}.")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"Config key {where!r} must be a list, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"Config key {where!r} must have {len(args)} items, got {value!r}.")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key {where!r} must be an object, got {value!r}.")
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
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"Config key {where!r} must be an integer, got {value!r}.")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"Config key {where!r} must be an integer, got {value!r}.") from None
        if f != int(f):
            raise ConfigError(f"Config key {where!r} must be an integer, got {value!r}.")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"Config key {where!r} must be a number, got {value!r}.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Config key {where!r} must be a number, got {value!r}.") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"Config key {where!r} must be a string, got {value!r}.")
        return value
    return value


def _from_dict(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            raise UnknownKeyError("config key", prefix + k, [prefix + n for n in names])
        if cls is LossConfig and k == "terms" and isinstance(v, str):
            kwargs[k] = parse_loss_expression(v)
            continue
        kwargs[k] = _coerce(hints[k], v, prefix + k)
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
        terms.append(LossTerm(m["name"].lower(), float(m["w"]) if m["w"] else 1.0))
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


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # "none" stays a string: only optional fields read it as null (a preset is named "none")


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
        node[path[-1]] = _parse_value(text)
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
NORMALIZATIONS = ("imagenet", "unit", "zscore")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "poly", "onecycle", "constant")


def validate(cfg: TrainConfig) -> None:
    """Range and choice checks that need no dataset; registry keys are checked where they are looked up."""
    if cfg.model.mode not in MODES:
        raise UnknownKeyError("model mode", cfg.model.mode, MODES)
    if cfg.data.normalize not in NORMALIZATIONS:
        raise UnknownKeyError("normalization", cfg.data.normalize, NORMALIZATIONS)
    if cfg.optim.name not in OPTIMIZERS:
        raise UnknownKeyError("optimizer", cfg.optim.name, OPTIMIZERS)
    if cfg.schedule.name not in SCHEDULES:
        raise UnknownKeyError("schedule", cfg.schedule.name, SCHEDULES)
    checks = [
        (cfg.epochs >= 1, "epochs must be at least 1"),
        (cfg.save_every >= 1, "save_every must be at least 1"),
        (cfg.data.image_size >= 16 and cfg.data.image_size % 16 == 0, "image_size must be a multiple of 16, at least 16"),
        (cfg.data.batch_size >= 1, "batch_size must be at least 1"),
        (0.0 <= cfg.data.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
        (cfg.data.folds == 0 or (cfg.data.folds >= 2 and 0 <= cfg.data.fold < cfg.data.folds), "fold must be in [0, folds)"),
        (cfg.optim.lr > 0, "lr must be positive"),
        (cfg.model.in_channels in (1, 3), "in_channels must be 1 or 3"),
        (0.0 <= cfg.swa_start < 1.0, "swa_start must be in [0, 1)"),
        (len(cfg.loss.terms) >= 1, "the loss needs at least one term"),
        (0.0 <= cfg.augment.cutmix_p <= 1.0 and 0.0 <= cfg.augment.copy_paste_p <= 1.0, "mixing probabilities must be in [0, 1]"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"Invalid config: {msg}.")
    if isinstance(cfg.loss.class_weights, str) and cfg.loss.class_weights != "balanced":
        raise ConfigError("loss.class_weights must be null, \"balanced\" or a list of numbers.")
    m = cfg.monitor.split(":", 1)[0]
    if m not in ("dice", "iou", "loss"):
        raise UnknownKeyError("monitor", cfg.monitor, ("dice", "iou", "loss", "dice:<class>", "iou:<class>"))
