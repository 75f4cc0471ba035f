"""Typed progress events the training generator yields (DESIGN rule 5). The GUI worker and the CLI's progress
bar render the same objects; all are frozen, keyword-only dataclasses of plain Python values
(construct them with keywords; match them with ``isinstance``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class RunStarted:
    run_dir: Path
    device: str
    epochs: int
    start_epoch: int
    steps_per_epoch: int
    train_samples: int
    val_samples: int
    split_source: str
    class_names: tuple[str, ...]
    mode: str


@dataclass(frozen=True, kw_only=True)
class BatchEnd:
    epoch: int  # 0-based
    step: int  # 1-based within the epoch
    steps: int
    global_step: int
    loss: float
    lr: float
    #: seconds left for the whole run, from the measured pace (None until measurable)
    eta_s: float | None
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClassMetrics:
    name: str
    dice: float
    iou: float


@dataclass(frozen=True, kw_only=True)
class EpochEnd:
    epoch: int
    train_loss: float
    val_loss: float | None
    #: mean over foreground classes (NaN when there is no validation split)
    dice: float
    iou: float
    pixel_accuracy: float
    per_class: tuple[ClassMetrics, ...]
    lr: float
    seconds: float
    eta_s: float | None
    #: the monitored value and whether it is the best so far
    monitor: float
    improved: bool


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved:
    path: Path
    epoch: int
    kind: str  # "last" | "best" | "swa"
    monitor: float | None


@dataclass(frozen=True, kw_only=True)
class Finished:
    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_monitor: float | None
    epochs_completed: int
    train_seconds: float
    cancelled: bool
    stopped_early: bool


Event = RunStarted | BatchEnd | EpochEnd | CheckpointSaved | Finished
