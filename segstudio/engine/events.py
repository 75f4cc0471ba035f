"""Typed progress events the training generator yields (DESIGN rule 5). The GUI worker and the CLI's progress
bar render the same objects; all are frozen, keyword-only dataclasses of plain Python values
(construct them with keywords; match them with ``isinstance``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.metrics.gate import GateResult


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
    #: the arithmetic of the forward passes: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` under mixed precision
    precision: str = "float32"


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
    #: the saved weights' mean Dice on the hold-out where they were scored there (None otherwise): the SWA weights
    #: are scored once, after the last epoch, and their figure is on no epoch's curve
    dice: float | None = None


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
    #: in a distributed run, sha256 of this process's final weights (every process must end with the same)
    weights_digest: str = ""
    #: the averaged weights of a run with SWA (``checkpoints/swa``)
    swa_checkpoint: Path | None = None

    @property
    def model_checkpoint(self) -> Path | None:
        """The checkpoint the run offers as its model: ``best`` (chosen on its validation split) when it has one,
        else the SWA average, else ``last`` (a run without validation)."""
        return self.best_checkpoint or self.swa_checkpoint or self.last_checkpoint


Event = RunStarted | BatchEnd | EpochEnd | CheckpointSaved | Finished


# the retraining round (``segstudio.engine.retrain``) -----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RetrainProgress:
    """Scoring after the fine-tune: ``model`` is ``"current"`` or ``"new"``; ``index`` 0-based of ``total``."""

    model: str
    index: int
    total: int


@dataclass(frozen=True, kw_only=True)
class RetrainCompared:
    """A round's verdict: both models' evaluations on the frozen validation split (``before``/``after``,
    ``segstudio.engine.evaluate.Evaluation``), the promotion gate's result, and what the round did about it
    (``decision``: ``segstudio.engine.retrain.Decision``; empty when no workspace decided)."""

    base_checkpoint: Path
    new_checkpoint: Path
    before: Any
    after: Any
    #: the headline mean (``"dice"`` or ``"iou"``, pooled over the validation images)
    metric: str
    gate: GateResult
    val_ids: tuple[str, ...]
    reviewed: int
    epochs: int
    train_seconds: float = 0.0
    decision: str = ""
    run_id: str = ""

    @property
    def improved(self) -> bool:
        """The gate says promote (a proven gain, no class worse beyond the margin)."""
        return self.gate.promote

    @property
    def before_value(self) -> float:
        return float(getattr(self.before, self.metric))

    @property
    def after_value(self) -> float:
        return float(getattr(self.after, self.metric))

    @property
    def delta(self) -> float:
        return self.after_value - self.before_value
