"""The training panel: choose a recipe, adjust the key settings, start / stop, and watch the run — progress with
ETA, live loss and per-class Dice curves, a log — beside the workspace's run history with "use this model".

The panel shows and asks; ``TrainingController`` (``gui/training.py``) runs and records.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.gui.errors import show_error
from segstudio.gui.panels.curve_plot import CurvePlot, Series
from segstudio.gui.panels.run_history import RunHistory
from segstudio.gui.training import (
    TrainingController,
    default_threads,
    detect_devices_job,
    make_config,
    model_checkpoint,
    read_curves,
    recipe_description,
    recipe_names,
)
from segstudio.gui.workers import GeneratorWorker
from segstudio.workspace import RunRecord, RunStatus, Workspace

log = logging.getLogger(__name__)

DEFAULTS_LABEL = "(defaults)"
# Suggestions only: the fields stay editable and the engine's registries judge the value when a run starts (an
# unknown key fails with the list of valid ones), so this list never has to import the engine to be right.
ARCHITECTURES = ("unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet", "manet", "pan",
                 "upernet", "segformer", "dpt", "fcn", "segnet")
ENCODERS = ("resnet18", "resnet34", "resnet50", "efficientnet-b0", "efficientnet-b3", "mobilenet_v2",
            "mit_b0", "mit_b2", "tu-convnext_tiny", "vgg16")
AUGMENT_PRESETS = ("none", "light", "medical", "dermoscopy", "street", "xray", "strong")
MEAN_COLOUR = (220, 220, 220)
LOSS_COLOUR, VAL_COLOUR = (90, 170, 255), (255, 160, 60)


def loss_text(cfg: Any) -> str:
    return " + ".join(f"{t.weight:g}*{t.name}" for t in cfg.loss.terms)


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "ETA –"
    s = round(seconds)
    return f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"ETA {s // 60}:{s % 60:02d}"


class DeviceCombo(QComboBox):
    """Devices are detected the first time the list opens: finding CUDA needs torch, which the window must not
    import before it is asked for, and the detection runs in a worker so the list never freezes the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.addItem("Automatic (best available)", "auto")
        self.addItem("CPU", "cpu")
        self._worker: GeneratorWorker | None = None

    def showPopup(self) -> None:  # noqa: N802
        if self._worker is None:
            self.detect()
        super().showPopup()

    def detect(self) -> GeneratorWorker:
        self._worker = GeneratorWorker(detect_devices_job, name="devices", parent=self)
        self._worker.sig_progress.connect(self._on_devices_detected)
        self._worker.sig_errored.connect(lambda msg, _tb: self.setToolTip(f"Device detection failed: {msg}"))
        self._worker.start()
        return self._worker

    def _on_devices_detected(self, options: tuple[Any, ...]) -> None:
        keep = self.currentData()
        self.clear()
        for opt in options:
            self.addItem(opt.label, opt.key)
        i = self.findData(keep)
        self.setCurrentIndex(max(i, 0))

    def set_device(self, key: str) -> None:
        i = self.findData(key)
        if i < 0:
            self.addItem(key, key)
            i = self.count() - 1
        self.setCurrentIndex(i)

    def device(self) -> str:
        return str(self.currentData() or "auto")


class TrainingPanel(QWidget):
    """``sig_message(text)``: a one-line status for the window's status bar."""

    sig_message = Signal(str)

    def __init__(self, controller: TrainingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._recipe_cfg: Any = None
        self._reset_curves()
        self._build()
        self.controller.sig_run_started.connect(self._on_controller_run_started)
        self.controller.sig_event.connect(self._on_controller_event)
        self.controller.sig_run_ended.connect(self._on_controller_run_ended)
        self.controller.sig_errored.connect(self._on_controller_errored)
        self.controller.sig_model_chosen.connect(lambda _p: self._show_model())
        self.history.sig_run_selected.connect(self._on_history_run_selected)
        self.history.sig_use_requested.connect(self._on_history_use_requested)
        self.history.sig_resume_requested.connect(self.resume_run)
        self.history.can_resume = lambda run: not self.controller.running and self.controller.can_resume(run)
        self.recipe.currentIndexChanged.connect(self._on_recipe_changed)
        self._on_recipe_changed()
        self._sync_enabled()

    # building ---------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.recipe = QComboBox(self)
        self.recipe.addItem(DEFAULTS_LABEL, "")
        for name in recipe_names():
            self.recipe.addItem(name, name)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.architecture = self._editable_combo(ARCHITECTURES)
        self.encoder = self._editable_combo(ENCODERS)
        self.loss = QLineEdit(self)
        self.loss.setToolTip("Weighted sum of losses, e.g. 0.5*ce + 0.5*dice (ce, bce, dice, jaccard, focal, lovasz, "
                             "tversky, boundary, hausdorff, aux)")
        self.augment = self._editable_combo(AUGMENT_PRESETS)
        self.epochs = self._spin(1, 10_000, "")
        self.image_size = self._spin(16, 4096, " px", step=16)
        self.batch_size = self._spin(1, 1024, "")
        self.steps = self._spin(0, 1_000_000, "")
        self.steps.setSpecialValueText("all")
        self.steps.setToolTip("Optimiser steps per epoch (all: the whole training split); a small number makes a "
                              "quick trial run")
        self.device = DeviceCombo(self)
        self.threads = self._spin(1, 256, "")
        self.threads.setValue(default_threads())
        self.threads.setToolTip("CPU threads the training may use; one left free keeps the window responsive")
        self.corrections = QCheckBox("Train on my corrections too", self)
        self.corrections.setChecked(True)
        self.corrections.setToolTip("A corrected sample trains with its latest correction instead of its GT")
        settings = QWidget(self)
        form = QFormLayout(settings)
        for label, w in (("Recipe", self.recipe), ("", self.description), ("Architecture", self.architecture),
                         ("Encoder", self.encoder), ("Loss", self.loss), ("Augmentation", self.augment),
                         ("Epochs", self.epochs), ("Image size", self.image_size), ("Batch size", self.batch_size),
                         ("Steps per epoch", self.steps), ("Device", self.device), ("CPU threads", self.threads),
                         ("", self.corrections)):
            form.addRow(label, w)
        self.start_button = QPushButton("Train", self)
        self.start_button.setObjectName("trainButton")
        self.start_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopTrainingButton")
        self.stop_button.setToolTip("Stop after the current batch; the last checkpoint is kept")
        self.stop_button.clicked.connect(self.stop_training)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.state_label = QLabel("Idle", self)
        self.state_label.setObjectName("trainingState")
        self.state_label.setWordWrap(True)  # a long message (a checkpoint path) must not widen the dock
        self.error_label = QLabel(self)
        self.error_label.setObjectName("trainingError")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        self.loss_plot = CurvePlot("Loss", x_label="epoch", parent=self)
        self.metric_plot = CurvePlot("Validation Dice", x_label="epoch", y_range=(0.0, 1.0), parent=self)
        curves = QWidget(self)
        cl = QVBoxLayout(curves)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.loss_plot)
        cl.addWidget(self.metric_plot)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.history = RunHistory(self)
        # the settings scroll: a tall form must not set the dock's (and so the window's) minimum height
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(settings)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(scroll, "Settings")
        self.tabs.addTab(curves, "Curves")
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(self.history, "Runs")
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.state_label)
        lay.addWidget(self.error_label)
        lay.addWidget(self.tabs, 1)

    def _editable_combo(self, items: tuple[str, ...]) -> QComboBox:
        box = QComboBox(self)
        box.setEditable(True)
        box.addItems(list(items))
        return box

    def _spin(self, lo: int, hi: int, suffix: str, *, step: int = 1) -> QSpinBox:
        s = QSpinBox(self)
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setSuffix(suffix)
        return s

    # context ----------------------------------------------------------------------------------------------------
    def set_context(self, dataset: Dataset | None, workspace: Workspace | None) -> None:
        self.controller.set_context(dataset, workspace)
        self.refresh_runs()
        self._show_model()
        self._sync_enabled()

    def refresh_runs(self) -> None:
        self.history.set_runs(self.controller.runs())

    def _show_model(self) -> None:
        path = self.controller.chosen_model()
        self.history.set_model(None, path)

    # config -----------------------------------------------------------------------------------------------------
    def _on_recipe_changed(self, _index: int = 0) -> None:
        name = self.recipe.currentData() or None
        try:
            cfg = make_config(recipe=name)
        except SegstudioError as exc:
            self._show_error_text(str(exc))
            return
        self._recipe_cfg = cfg
        self.description.setText(recipe_description(name) if name else "The engine's defaults: U-Net, CE + Dice.")
        self.architecture.setCurrentText(cfg.model.architecture)
        self.encoder.setCurrentText(cfg.model.encoder)
        self.loss.setText(loss_text(cfg))
        self.augment.setCurrentText(cfg.augment.preset)
        self.epochs.setValue(cfg.epochs)
        self.image_size.setValue(cfg.data.image_size)
        self.batch_size.setValue(cfg.data.batch_size)
        self.steps.setValue(cfg.max_steps_per_epoch)
        if cfg.device != "auto":
            self.device.set_device(cfg.device)

    def overrides(self) -> list[str]:
        """The form as ``key=value`` overrides of the chosen recipe."""
        out = [f"model.architecture={self.architecture.currentText().strip()}",
               f"model.encoder={self.encoder.currentText().strip()}",
               f"augment.preset={self.augment.currentText().strip()}",
               f"epochs={self.epochs.value()}", f"data.image_size={self.image_size.value()}",
               f"data.batch_size={self.batch_size.value()}", f"max_steps_per_epoch={self.steps.value()}",
               f"device={self.device.device()}"]
        # the recipe's loss may carry per-term parameters a text field cannot show: only an edit replaces it
        if self._recipe_cfg is None or self.loss.text().strip() != loss_text(self._recipe_cfg):
            out.append(f"loss.terms={self.loss.text().strip()}")
        return out

    def current_config(self) -> Any:
        """The ``TrainConfig`` the Train button would run (raises ``SegstudioError`` when the form is invalid)."""
        return make_config(recipe=self.recipe.currentData() or None, overrides=self.overrides())

    # start / stop -----------------------------------------------------------------------------------------------
    def start_training(self) -> RunRecord | None:
        if self.controller.running:
            self.sig_message.emit("A training run is in progress already.")
            return None
        try:
            cfg = self.current_config()
            return self.controller.start(cfg, threads=self.threads.value(),
                                         use_corrections=self.corrections.isChecked())
        except SegstudioError as exc:
            self._show_error_text(str(exc))
            show_error("Cannot start training", str(exc))
            return None

    def resume_run(self, run_id: str) -> RunRecord | None:
        """Continue a stopped run (its own config; this form's thread count and corrections choice)."""
        try:
            return self.controller.resume(run_id, threads=self.threads.value(),
                                          use_corrections=self.corrections.isChecked())
        except SegstudioError as exc:
            self._show_error_text(str(exc))
            show_error("Cannot resume the run", str(exc))
            return None

    def stop_training(self) -> None:
        if self.controller.running:
            self.controller.stop()
            self.state_label.setText("Stopping after this batch…")
            self.stop_button.setEnabled(False)

    def stop_for_close(self, *, action: str = "close the window") -> bool:
        """Before the window closes (or another dataset opens): ask, then stop the run and wait for its last
        checkpoint. False when the user chose to keep training."""
        if not self.controller.running:
            return True
        answer = QMessageBox.question(
            self, "Training is running",
            f"A training run is in progress. Stop it to {action}?\n\n"
            "It stops after the current batch and keeps its last checkpoint, so it can be resumed.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.state_label.setText("Stopping…")
        if not self.controller.stop_and_wait():
            show_error("Training did not stop", "The run did not stop in time; its last checkpoint may be missing.")
        return True

    # run display ------------------------------------------------------------------------------------------------
    def _reset_curves(self) -> None:
        self._batch_x: list[float] = []
        self._batch_y: list[float] = []
        self._epoch_x: list[float] = []
        self._train_y: list[float] = []
        self._val_y: list[float] = []
        self._mean_dice: list[float] = []
        self._class_dice: dict[str, list[float]] = {}
        self._epochs, self._first_step = 0, 0

    def _class_colour(self, name: str) -> tuple[int, int, int]:
        ds = self.controller.dataset
        if ds is not None:
            for c in ds.schema.classes:
                if c.name == name and any(c.colour):
                    return tuple(c.colour)  # type: ignore[return-value]
        return (200, 120, 220)

    def _redraw(self) -> None:
        ex = tuple(self._epoch_x)
        self.loss_plot.set_series([
            Series("train (batch)", LOSS_COLOUR, tuple(self._batch_x), tuple(self._batch_y)),
            Series("train (epoch)", LOSS_COLOUR, ex, tuple(self._train_y), dashed=True, markers=True),
            Series("validation", VAL_COLOUR, ex, tuple(self._val_y), markers=True),
        ])
        series = [Series("mean", MEAN_COLOUR, ex, tuple(self._mean_dice), dashed=True, markers=True)]
        series += [Series(n, self._class_colour(n), ex, tuple(v), markers=True) for n, v in self._class_dice.items()]
        self.metric_plot.set_series(series)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(text)
        log.info("training: %s", text)

    def _on_controller_run_started(self, run: RunRecord) -> None:
        self._load_epoch_curves(run)  # a resumed run continues its earlier curves
        self.log_view.clear()
        self.error_label.setVisible(False)
        self.progress.setRange(0, 0)  # busy until the trainer reports its step count
        self.state_label.setText("Preparing the data and the model…")
        self._log(f"run {run.id} started")
        self.refresh_runs()
        self.history.select_run(run.id)
        self.tabs.setCurrentIndex(1)  # the curves
        self._sync_enabled()

    def _on_controller_event(self, ev: object) -> None:
        kind = type(ev).__name__
        e: Any = ev
        if kind == "RunStarted":
            total = (e.epochs - e.start_epoch) * e.steps_per_epoch
            self._epochs, self._first_step = e.epochs, e.start_epoch * e.steps_per_epoch
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(0)
            self._log(f"training on {e.device}: {e.train_samples} training / {e.val_samples} validation samples "
                      f"({e.split_source} split), {e.epochs} epoch(s) × {e.steps_per_epoch} step(s), "
                      f"classes {', '.join(e.class_names)}")
        elif kind == "BatchEnd":
            self.progress.setValue(e.global_step - self._first_step)
            if math.isfinite(e.loss):
                self._batch_x.append(e.epoch + e.step / max(e.steps, 1))
                self._batch_y.append(e.loss)
            self.state_label.setText(f"Epoch {e.epoch + 1}/{self._epochs} · step {e.step}/{e.steps} · "
                                     f"loss {e.loss:.4f} · {format_eta(e.eta_s)}")
            self._redraw()
        elif kind == "EpochEnd":
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
            self._log(f"epoch {e.epoch + 1}/{self._epochs}: train loss {e.train_loss:.4f}{val}, Dice {e.dice:.3f}"
                      f"{f' ({per})' if per else ''}{best}, {e.seconds:.1f} s")
            self.state_label.setText(f"Epoch {e.epoch + 1}/{self._epochs} done · Dice {e.dice:.3f} · "
                                     f"{format_eta(e.eta_s)}")
            self._redraw()
        elif kind == "CheckpointSaved":
            run = self.controller.run
            path = Path(e.path)
            shown = path.relative_to(run.folder) if run is not None and path.is_relative_to(run.folder) else path
            self._log(f"saved the {e.kind} checkpoint (epoch {e.epoch + 1}): {shown}")
        elif kind == "Finished":
            self._log(f"{'stopped' if e.cancelled else 'finished'} after {e.epochs_completed} epoch(s), "
                      f"{e.train_seconds:.0f} s of training")

    def _on_controller_run_ended(self, run: RunRecord) -> None:
        if run.status is RunStatus.FINISHED:
            self.progress.setValue(self.progress.maximum())
        elif self.progress.maximum() == 0:  # ended before its first step: leave the busy state
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        words = {RunStatus.FINISHED: "Finished", RunStatus.CANCELLED: "Stopped", RunStatus.FAILED: "Failed"}
        best = f" · best {run.best_metric_name} {run.best_metric:.3f}" if run.best_metric is not None else ""
        self.state_label.setText(f"{words.get(run.status, run.status.value)}{best} · {run.message}")
        self.state_label.setToolTip(str(run.folder))
        self._log(f"run {run.id}: {run.status.value}{best}")
        self.refresh_runs()
        self._sync_enabled()
        self.sig_message.emit(f"Training {run.status.value}: {run.name or run.id}{best}")

    def _on_controller_errored(self, message: str, details: str) -> None:
        self._show_error_text(message)
        self._log(f"error: {message}")
        self._sync_enabled()
        show_error("Training failed", message, details)

    def _show_error_text(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(True)

    def _on_history_run_selected(self, run_id: str) -> None:
        if self.controller.running:
            return  # the live curves stay while a run is going
        run = next((r for r in self.controller.runs() if r.id == run_id), None)
        if run is None:
            return
        self._load_epoch_curves(run)
        self.state_label.setText(f"Run {run.name or run.id}: {run.status.value} · {run.message}")

    def _load_epoch_curves(self, run: RunRecord) -> None:
        self._reset_curves()
        for row in read_curves(run.folder):
            self._epoch_x.append(row.get("epoch", math.nan) + 1)
            self._train_y.append(row.get("train_loss", math.nan))
            self._val_y.append(row.get("val_loss", math.nan))
            self._mean_dice.append(row.get("dice", math.nan))
            for k, v in row.items():
                if k.startswith("dice:"):
                    self._class_dice.setdefault(k[5:], []).append(v)
        self._redraw()

    def _on_history_use_requested(self, run_id: str) -> None:
        try:
            path = self.controller.use_model(run_id)
        except SegstudioError as exc:
            show_error("Cannot use this run's model", str(exc))
            return
        self.sig_message.emit(f"Model: {path}")

    def _sync_enabled(self) -> None:
        running = self.controller.running
        has_data = self.controller.dataset is not None and self.controller.workspace is not None
        self.start_button.setEnabled(has_data and not running)
        self.stop_button.setEnabled(running)
        for w in (self.recipe, self.architecture, self.encoder, self.loss, self.augment, self.epochs,
                  self.image_size, self.batch_size, self.steps, self.device, self.threads, self.corrections):
            w.setEnabled(not running)
        if not has_data and not running:
            self.state_label.setText("Open a dataset to train on it.")

    def checkpoint_of(self, run_id: str) -> Path | None:
        run = next((r for r in self.controller.runs() if r.id == run_id), None)
        return model_checkpoint(run) if run is not None else None
