"""What a training run shows while it goes: progress with ETA, a state line, live loss and per-class Dice curves,
and a log — fed with the engine's events. The training panel lays these widgets out; this object keeps the curve
data and turns events into text and points."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar, QWidget

from segstudio.core.types import ClassSchema
from segstudio.engine.events import (
    BatchEnd,
    CheckpointSaved,
    EpochEnd,
    Finished,
    RetrainCompared,
    RetrainProgress,
    RunStarted,
)
from segstudio.gui.loop.curve_plot import CurvePlot, Series
from segstudio.gui.loop.training import read_curves, read_swa_score
from segstudio.workspace import RunRecord, RunStatus

log = logging.getLogger(__name__)

MEAN_COLOUR = (220, 220, 220)
LOSS_COLOUR, VAL_COLOUR = (90, 170, 255), (255, 160, 60)
OTHER_COLOUR = (200, 120, 220)
SWA_COLOUR = (120, 220, 120)
REDRAW_MS = 150  # a class drawn black (background) would vanish on the dark plot


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "ETA –"
    s = round(seconds)
    return f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"ETA {s // 60}:{s % 60:02d}"


#: what the Dice plot says for a run without a validation hold-out
NO_HOLDOUT_TEXT = ("No validation hold-out: this run trains on every image, so its epochs are not scored. Set "
                   "Hold-out in Settings to watch a Dice curve; segstudio cv estimates a recipe on unseen images.")


class RunMonitor(QObject):
    """Widgets (children of ``host``): ``progress``, ``state_label``, ``error_label``, ``loss_plot``,
    ``metric_plot``, ``log_view``."""

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.progress = QProgressBar(host)
        self.progress.setTextVisible(True)
        self.state_label = QLabel("Idle", host)
        self.state_label.setObjectName("trainingState")
        self.state_label.setWordWrap(True)  # a long message (a checkpoint path) must not widen the dock
        self.error_label = QLabel(host)
        self.error_label.setObjectName("trainingError")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        self.loss_plot = CurvePlot("Loss", x_label="epoch", parent=host)
        self.metric_plot = CurvePlot("Validation Dice", x_label="epoch", y_range=(0.0, 1.0), parent=host)
        self.log_view = QPlainTextEdit(host)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        # batches can arrive faster than anyone reads a curve (a GPU run: dozens a second), and each redraw copies
        # every point: batch points are drawn at most every REDRAW_MS, epochs and the end at once
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self.schema: ClassSchema | None = None
        self.run_folder: Path | None = None
        self.reset()

    # curve data ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._batch_x: list[float] = []
        self._batch_y: list[float] = []
        self._epoch_x: list[float] = []
        self._train_y: list[float] = []
        self._val_y: list[float] = []
        self._mean_dice: list[float] = []
        self._class_dice: dict[str, list[float]] = {}
        self._epochs, self._first_step = 0, 0
        self._no_holdout = False  # the run trains on every image: its epochs have no Dice to draw
        #: the SWA weights' score (monitor, mean Dice) on the hold-out, once they are saved: on no epoch's curve
        self._swa: tuple[float | None, float] | None = None

    def load_epoch_curves(self, run: RunRecord) -> None:
        """Show a run's saved per-epoch curves (``curves.csv``); a resumed run continues from them."""
        self.reset()
        for row in read_curves(run.folder):
            self._epoch_x.append(row.get("epoch", math.nan) + 1)
            self._train_y.append(row.get("train_loss", math.nan))
            self._val_y.append(row.get("val_loss", math.nan))
            self._mean_dice.append(row.get("dice", math.nan))
            for k, v in row.items():
                if k.startswith("dice:"):
                    self._class_dice.setdefault(k[5:], []).append(v)
        self._swa = read_swa_score(run.folder)
        self.redraw()

    def _class_colour(self, name: str) -> tuple[int, int, int]:
        if self.schema is not None:
            for c in self.schema.classes:
                if c.name == name and any(c.colour):
                    return (int(c.colour[0]), int(c.colour[1]), int(c.colour[2]))
        return OTHER_COLOUR

    def redraw(self) -> None:
        self._redraw_timer.stop()
        ex = tuple(self._epoch_x)
        self.loss_plot.set_series([
            Series("train (batch)", LOSS_COLOUR, tuple(self._batch_x), tuple(self._batch_y)),
            Series("train (epoch)", LOSS_COLOUR, ex, tuple(self._train_y), dashed=True, markers=True),
            Series("validation", VAL_COLOUR, ex, tuple(self._val_y), markers=True),
        ])
        series = [Series("mean", MEAN_COLOUR, ex, tuple(self._mean_dice), dashed=True, markers=True)]
        series += [Series(n, self._class_colour(n), ex, tuple(v), markers=True) for n, v in self._class_dice.items()]
        if self._swa is not None and ex:
            series.append(Series("SWA weights", SWA_COLOUR, (ex[-1],), (self._swa[1],), markers=True))
        unscored = self._no_holdout or (bool(ex) and not any(math.isfinite(v) for v in self._mean_dice))
        self.metric_plot.empty_text = NO_HOLDOUT_TEXT if unscored else CurvePlot.EMPTY_TEXT
        self.metric_plot.set_series(series)

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)
        log.info("training: %s", text)

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(True)

    # a run --------------------------------------------------------------------------------------------------------
    def begin(self, run: RunRecord) -> None:
        self.run_folder = run.folder
        self.load_epoch_curves(run)
        self.log_view.clear()
        self.error_label.setVisible(False)
        self.progress.setRange(0, 0)  # busy until the trainer reports its step count
        self.state_label.setText("Preparing the data and the model…")
        self.log(f"run {run.id} started")

    def on_event(self, ev: object) -> None:
        e: Any = ev
        if isinstance(e, RunStarted):
            total = (e.epochs - e.start_epoch) * e.steps_per_epoch
            self._epochs, self._first_step = e.epochs, e.start_epoch * e.steps_per_epoch
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(0)
            self._no_holdout = e.val_samples == 0
            self.redraw()
            self.log(f"training on {e.device} ({e.precision}): {e.train_samples} training / {e.val_samples} "
                     f"validation samples ({e.split_source} split), {e.epochs} epoch(s) × {e.steps_per_epoch} step(s), "
                     f"classes {', '.join(e.class_names)}")
        elif isinstance(e, BatchEnd):
            self.progress.setValue(e.global_step - self._first_step)
            if math.isfinite(e.loss):
                self._batch_x.append(e.epoch + e.step / max(e.steps, 1))
                self._batch_y.append(e.loss)
            self.state_label.setText(f"Epoch {e.epoch + 1}/{self._epochs} · step {e.step}/{e.steps} · "
                                     f"loss {e.loss:.4f} · {format_eta(e.eta_s)}")
            if not self._redraw_timer.isActive():
                self._redraw_timer.start()
        elif isinstance(e, EpochEnd):
            self._epoch_x.append(e.epoch + 1.0)
            self._train_y.append(e.train_loss)
            self._val_y.append(math.nan if e.val_loss is None else e.val_loss)
            self._mean_dice.append(e.dice)
            n = len(self._epoch_x)
            for c in e.per_class:
                self._class_dice.setdefault(c.name, [math.nan] * (n - 1)).append(c.dice)
            per = ", ".join(f"{c.name} {c.dice:.3f}" for c in e.per_class)
            val = f", val loss {e.val_loss:.4f}" if e.val_loss is not None else ""
            best = " (best so far)" if e.improved else ""
            # a run without a validation split (the small-data recipes train on every image) has no Dice to show
            dice = f"Dice {e.dice:.3f}" if math.isfinite(e.dice) else "no validation split"
            self.log(f"epoch {e.epoch + 1}/{self._epochs}: train loss {e.train_loss:.4f}{val}, {dice}"
                     f"{f' ({per})' if per else ''}{best}, {e.seconds:.1f} s")
            self.state_label.setText(f"Epoch {e.epoch + 1}/{self._epochs} done · {dice} · "
                                     f"{format_eta(e.eta_s)}")
            self.redraw()
        elif isinstance(e, CheckpointSaved):
            path, folder = Path(e.path), self.run_folder
            shown = path.relative_to(folder) if folder is not None and path.is_relative_to(folder) else path
            self.log(f"saved the {e.kind} checkpoint (epoch {e.epoch + 1}): {shown}")
            if e.kind == "swa" and e.dice is not None and math.isfinite(e.dice):
                self._swa = (e.monitor, e.dice)
                self.log(f"the weights averaged over the last epochs (SWA) score Dice {e.dice:.3f} on the hold-out")
                self.redraw()
        elif isinstance(e, Finished):
            self.log(f"{'stopped' if e.cancelled else 'finished'} after {e.epochs_completed} epoch(s), "
                     f"{e.train_seconds:.0f} s of training")
        elif isinstance(e, RetrainProgress):
            if e.index == 0:
                self.progress.setRange(0, max(2 * e.total, 1))
                self.log(f"scoring the {e.model} model on the {e.total} fixed validation image(s)")
            done = e.index + 1 + (e.total if e.model == "new" else 0)
            self.progress.setValue(done)
            self.state_label.setText(f"Comparing the models: {e.model} model, image {e.index + 1}/{e.total}")
        elif isinstance(e, RetrainCompared):
            g = e.gate
            self.log(f"{e.metric}: current model {e.before_value:.4f}, retrained {e.after_value:.4f} "
                     f"({e.delta:+.4f}); gate: {g.verdict.label} — {g.reason}")

    def end(self, run: RunRecord) -> str:
        """Show the run's final state; returns a one-line summary."""
        if run.status is RunStatus.FINISHED:
            self.progress.setValue(self.progress.maximum())
        elif self.progress.maximum() == 0:  # ended before its first step: leave the busy state
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self.redraw()
        words = {RunStatus.FINISHED: "Finished", RunStatus.CANCELLED: "Stopped", RunStatus.FAILED: "Failed"}
        best = ""
        if run.best_metric is not None:
            best = f" · best {run.best_metric_name} {run.best_metric:.3f}"
            swa_monitor = self._swa[0] if self._swa is not None else None
            if swa_monitor is not None and math.isclose(swa_monitor, run.best_metric):
                best += " (the SWA weights)"
        self.state_label.setText(f"{words.get(run.status, run.status.value)}{best} · {run.message}")
        self.state_label.setToolTip(str(run.folder))
        self.log(f"run {run.id}: {run.status.value}{best}")
        return f"Training {run.status.value}: {run.name or run.id}{best}"

    def show_run(self, run: RunRecord) -> None:
        """A past run from the history: its saved curves and its outcome."""
        self.load_epoch_curves(run)
        self.state_label.setText(f"Run {run.name or run.id}: {run.status.value} · {run.message}")
