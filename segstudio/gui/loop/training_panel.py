"""The training panel: choose a recipe, adjust the key settings, start / stop, and watch the run — progress with
ETA, live loss and per-class Dice curves, a log — beside the workspace's run history with "use this model".

The panel shows and asks; ``TrainingController`` (``gui/training.py``) runs and records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.config import MAX_MEMBERS
from segstudio.gui.common.errors import show_error
from segstudio.gui.loop.device_combo import DeviceCombo
from segstudio.gui.loop.gate_settings import GateSettings
from segstudio.gui.loop.model_history import ModelHistory
from segstudio.gui.loop.retrain_dialog import RetrainDialog
from segstudio.gui.loop.run_history import RunHistory
from segstudio.gui.loop.run_monitor import RunMonitor
from segstudio.gui.loop.training import (
    RETRAIN_EPOCHS,
    TrainingController,
    default_threads,
    make_config,
    recipe_description,
    recipe_names,
    run_checkpoint,
    summarise,
)
from segstudio.workspace import RunRecord, Workspace

log = logging.getLogger(__name__)

DEFAULTS_LABEL = "(defaults)"
NO_DATA_TEXT = "Open a dataset to train on it."
READ_ONLY_TEXT = ("This workspace is open read-only: training and retraining need a writable workspace (close the "
                  "other segstudio, or free disk space, and reopen).")
# Suggestions only: the fields stay editable and the engine's registries judge the value when a run starts (an
# unknown key fails with the list of valid ones), so this list never has to import the engine to be right.
ARCHITECTURES = ("unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet", "manet", "pan",
                 "upernet", "segformer", "dpt", "fcn", "segnet")
ENCODERS = ("resnet18", "resnet34", "resnet50", "efficientnet-b0", "efficientnet-b3", "mobilenet_v2",
            "mit_b0", "mit_b2", "tu-convnext_tiny", "vgg16")
AUGMENT_PRESETS = ("none", "light", "medical", "dermoscopy", "street", "xray", "chest", "strong")


def loss_text(cfg: Any) -> str:
    return " + ".join(f"{t.weight:g}*{t.name}" for t in cfg.loss.terms)


class TrainingPanel(QWidget):
    """``sig_message(text)``: a one-line status for the window's status bar."""

    sig_message = Signal(str)
    #: a retrained model became the current model (by itself or on the user's word): predictions need refreshing
    sig_promoted = Signal(object)

    def __init__(self, controller: TrainingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._recipe_cfg: Any = None
        #: the verdict of the last retraining round, while it is shown
        self.retrain_dialog: RetrainDialog | None = None
        self._build()
        self.controller.sig_run_started.connect(self._on_controller_run_started)
        self.controller.sig_event.connect(self.monitor.on_event)
        self.controller.sig_run_ended.connect(self._on_controller_run_ended)
        self.controller.sig_errored.connect(self._on_controller_errored)
        self.controller.sig_model_chosen.connect(lambda _p: self._on_model_chosen())
        self.controller.sig_retrain_compared.connect(self._on_controller_retrain_compared)
        self.history.sig_run_selected.connect(self._on_history_run_selected)
        self.history.sig_use_requested.connect(self._on_history_use_requested)
        self.history.sig_resume_requested.connect(self.resume_run)
        self.history.can_resume = lambda run: not self.controller.running and self.controller.can_resume(run)
        self.history.idle = lambda: not self.controller.running
        self.recipe.currentIndexChanged.connect(self._on_recipe_changed)
        self._on_recipe_changed()
        self.sync_enabled()

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
        self.loss.setToolTip("Weighted sum of losses, e.g. 0.5*ce + 0.5*dice (ce, bce, dice, dice_image, jaccard, focal, "
                             "lovasz, tversky, boundary, hausdorff, aux)")
        self.augment = self._editable_combo(AUGMENT_PRESETS)
        self.members = self._spin(1, MAX_MEMBERS, " networks")
        self.members.setSpecialValueText("one network")
        self.members.setToolTip("An ensemble trained as one model: this many networks, each from its own random "
                                "weights, learn side by side and the model predicts the mean of their "
                                "probabilities; each adds a network's memory and steps")
        self.epochs = self._spin(1, 10_000, "")
        self.image_size = self._spin(16, 4096, " px", step=16)
        self.batch_size = self._spin(1, 1024, "")
        self.holdout = self._spin(0, 90, " %", step=5)
        self.holdout.setSpecialValueText("none: every image trains")
        self.holdout.setToolTip("Labelled images kept out of training to pick the best epoch and to score the run "
                                "(reports and sweeps need one); none trains on every image, as the small-data "
                                "recipes do")
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
        self.retrain_epochs = self._spin(1, 1000, "")
        self.retrain_epochs.setValue(RETRAIN_EPOCHS)
        self.retrain_epochs.setToolTip("Epochs of fine-tuning in a retraining round (from the current model)")
        self.reviewed_weight = QDoubleSpinBox(self)
        self.reviewed_weight.setRange(0.0, 20.0)
        self.reviewed_weight.setSingleStep(0.5)
        self.reviewed_weight.setDecimals(1)
        self.reviewed_weight.setSuffix("×")
        self.reviewed_weight.setValue(1.0)
        self.reviewed_weight.setToolTip("How often a corrected or accepted image is drawn in a retraining round, "
                                        "relative to an image that only has its original GT")
        self.model_label = QLabel("No current model yet.", self)
        self.model_label.setObjectName("currentModelLabel")
        self.model_label.setWordWrap(True)
        self.validation_label = QLabel(self)
        self.validation_label.setWordWrap(True)
        self.reset_validation_button = QPushButton("Choose the validation images again", self)
        self.reset_validation_button.setToolTip("The next round freezes a new validation split from the current "
                                                "model's config (rounds are only comparable on the same split)")
        self.reset_validation_button.clicked.connect(self._on_reset_validation_clicked)
        self.gate = GateSettings(self)
        self.gate.sig_message.connect(self.sig_message.emit)
        self.model_history = ModelHistory(self)
        self.model_history.sig_rollback_requested.connect(self.rollback)
        settings = QWidget(self)
        form = QFormLayout(settings)
        # in a narrow dock a field goes under its label instead of widening the form past the dock (a sideways scroll)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Recipe", self.recipe)
        form.addRow(self.description)  # the whole width under the recipe: a narrow field column clips it
        for label, w in (("Architecture", self.architecture), ("Encoder", self.encoder), ("Ensemble", self.members),
                         ("Loss", self.loss), ("Augmentation", self.augment), ("Epochs", self.epochs), ("Image size", self.image_size),
                         ("Batch size", self.batch_size), ("Hold-out", self.holdout), ("Steps per epoch", self.steps),
                         ("Device", self.device), ("CPU threads", self.threads), ("", self.corrections)):
            form.addRow(label, w)
        heading = QLabel("<b>Retraining round</b>", self)
        form.addRow(heading)
        for label, row_widget in (("Current model", self.model_label), ("Fine-tune epochs", self.retrain_epochs),
                                  ("Reviewed images weigh", self.reviewed_weight),
                                  ("Validation", self.validation_label), ("", self.reset_validation_button)):
            form.addRow(label, row_widget)
        form.addRow(QLabel("<b>Promotion gate</b>", self))
        form.addRow(self.gate)
        form.addRow(QLabel("<b>Model history</b>", self))
        form.addRow(self.model_history)
        self.start_button = QPushButton("Train", self)
        self.start_button.setObjectName("trainButton")
        self.start_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopTrainingButton")
        self.stop_button.setToolTip("Stop after the current batch; the last checkpoint is kept")
        self.stop_button.clicked.connect(self.stop_training)
        self.retrain_button = QPushButton("Retrain", self)
        self.retrain_button.setObjectName("retrainButton")
        self.retrain_button.setToolTip("Fine-tune the current model on the GT and your corrections, compare it with "
                                       "the current model on the same validation images; promoted when the gate proves it "
                                       "better")
        self.retrain_button.clicked.connect(self.start_retrain)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.retrain_button)
        buttons.addWidget(self.stop_button)
        self.monitor = RunMonitor(self)
        m = self.monitor
        self.progress, self.state_label, self.error_label = m.progress, m.state_label, m.error_label
        self.loss_plot, self.metric_plot, self.log_view = m.loss_plot, m.metric_plot, m.log_view
        curves = QWidget(self)
        cl = QVBoxLayout(curves)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.loss_plot)
        cl.addWidget(self.metric_plot)
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
        # a sweep another process trains moves on while nobody looks: the list is read again when shown
        self.tabs.currentChanged.connect(lambda i: self.refresh_runs() if self.tabs.widget(i) is self.history else None)
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
        self.sync_enabled()

    def refresh_runs(self) -> None:
        self.history.set_runs(self.controller.runs(), self.controller.sweeps())

    def _show_model(self) -> None:
        path = self.controller.chosen_model()
        self.history.set_model(None, path)
        ws = self.controller.workspace
        run_id = self.controller.chosen_run_id()
        if path is None:
            self.model_label.setText("No current model yet: train one, or pick one in Runs (Use this model).")
        else:
            name = ""
            found = self.controller.find_run(run_id) if run_id else None
            name = found.name if found is not None else ""
            self.model_label.setText(f"{name or run_id or path.parent.parent.name} · {path.name} checkpoint")
            self.model_label.setToolTip(str(path))
        if ws is not None:
            self.reviewed_weight.setValue(ws.settings.reviewed_weight)
        self.gate.set_workspace(ws)
        names = {r.id: r.name for r in self.controller.runs()}
        names.update({r.id: f"{s.name} / {r.label}" for s in self.controller.sweeps() for r in s.runs})
        self.model_history.set_history(self.controller.history(), names)
        frozen = self.controller.validation_ids()
        self.validation_label.setText(
            f"{len(frozen)} image(s), frozen since the first round" if frozen
            else "Chosen by the first round (the current model's own hold-out), then kept fixed")
        self.sync_enabled()

    def _on_model_chosen(self) -> None:
        self._show_model()
        self.refresh_runs()

    def _on_reset_validation_clicked(self) -> None:
        self.controller.reset_validation()
        self._show_model()
        self.sig_message.emit("The next retraining round chooses its validation images again.")

    # config -----------------------------------------------------------------------------------------------------
    def _on_recipe_changed(self, _index: int = 0) -> None:
        name = self.recipe.currentData() or None
        try:
            cfg = make_config(recipe=name)
        except SegstudioError as exc:
            self.monitor.show_error(str(exc))
            return
        self._recipe_cfg = cfg
        full = recipe_description(name) if name else "The engine's defaults: U-Net, CE + Dice."
        short = summarise(full)
        self.description.setText(short)
        # the rest (why the recipe's settings are what they are) on hover; nothing to add when it all shows
        self.description.setToolTip(full if short != full else "")
        self.architecture.setCurrentText(cfg.model.architecture)
        self.encoder.setCurrentText(cfg.model.encoder)
        self.members.setValue(cfg.model.members)
        self.loss.setText(loss_text(cfg))
        self.augment.setCurrentText(cfg.augment.preset)
        self.epochs.setValue(cfg.epochs)
        self.image_size.setValue(cfg.data.image_size)
        self.batch_size.setValue(cfg.data.batch_size)
        self.holdout.setValue(round(cfg.data.val_fraction * 100))
        self.steps.setValue(cfg.max_steps_per_epoch)
        if cfg.device != "auto":
            self.device.set_device(cfg.device)

    def overrides(self) -> list[str]:
        """The form as ``key=value`` overrides of the chosen recipe."""
        out = [f"model.architecture={self.architecture.currentText().strip()}",
               f"model.encoder={self.encoder.currentText().strip()}",
               f"model.members={self.members.value()}",
               f"augment.preset={self.augment.currentText().strip()}",
               f"epochs={self.epochs.value()}", f"data.image_size={self.image_size.value()}",
               f"data.batch_size={self.batch_size.value()}", f"data.val_fraction={self.holdout.value() / 100:g}",
               f"max_steps_per_epoch={self.steps.value()}",
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
        return self._launch("Cannot start training", lambda: self.controller.start(
            self.current_config(), threads=self.threads.value(), use_corrections=self.corrections.isChecked()))

    def _launch(self, title: str, start: Callable[[], RunRecord]) -> RunRecord | None:
        """Start a run; a refusal (bad config, no model, busy) shows in the panel and as a message box."""
        try:
            return start()
        except SegstudioError as exc:
            self.monitor.show_error(str(exc))
            show_error(title, str(exc))
            return None

    def start_retrain(self) -> RunRecord | None:
        """One click: a retraining round from the current model (see ``TrainingController.retrain``)."""
        if self.controller.running:
            self.sig_message.emit("A training run is in progress already.")
            return None
        return self._launch("Cannot retrain", lambda: self.controller.retrain(
            epochs=self.retrain_epochs.value(), reviewed_weight=self.reviewed_weight.value(),
            threads=self.threads.value()))

    def _on_controller_retrain_compared(self, run: RunRecord, comparison: Any) -> None:
        promoted = self.controller.chosen_model() == comparison.new_checkpoint
        self._show_model()
        if self.retrain_dialog is not None:
            self.retrain_dialog.close()
        dlg = RetrainDialog(comparison, promoted=promoted, run_name=run.name, parent=self.window())
        dlg.sig_promote_requested.connect(lambda: self._promote(comparison))
        dlg.sig_keep_previous_requested.connect(lambda: self._keep_previous(comparison))
        self.retrain_dialog = dlg
        dlg.show()
        dlg.raise_()
        if promoted:
            self.sig_promoted.emit(comparison.new_checkpoint)

    def _promote(self, comparison: Any) -> None:
        try:
            path = self.controller.promote(comparison)
        except SegstudioError as exc:
            show_error("Cannot promote the model", str(exc))
            return
        self.sig_promoted.emit(path)

    def rollback(self) -> None:
        """Back to the model before the current one (the Roll back button of the model history)."""
        try:
            path = self.controller.rollback()
        except SegstudioError as exc:
            show_error("Cannot roll back", str(exc))
            return
        self.sig_message.emit(f"Rolled back: {path} is the current model again.")
        self.sig_promoted.emit(path)

    def _keep_previous(self, comparison: Any) -> None:
        try:
            self.controller.keep_previous(comparison)
        except SegstudioError as exc:
            show_error("Cannot go back to the previous model", str(exc))

    def resume_run(self, run_id: str) -> RunRecord | None:
        """Continue a stopped run (its own config; this form's thread count and corrections choice)."""
        return self._launch("Cannot resume the run", lambda: self.controller.resume(
            run_id, threads=self.threads.value(), use_corrections=self.corrections.isChecked()))

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
    def _on_controller_run_started(self, run: RunRecord) -> None:
        self.monitor.schema = self.controller.dataset.schema if self.controller.dataset is not None else None
        self.monitor.begin(run)  # a resumed run continues its earlier curves
        self.refresh_runs()
        self.history.select_run(run.id)
        self.tabs.setCurrentIndex(1)  # the curves
        self.sync_enabled()

    def _on_controller_run_ended(self, run: RunRecord) -> None:
        summary = self.monitor.end(run)
        self.refresh_runs()
        self.sync_enabled()
        self.sig_message.emit(summary)

    def _on_controller_errored(self, message: str, details: str) -> None:
        self.monitor.show_error(message)
        self.monitor.log(f"error: {message}")
        self.sync_enabled()
        show_error("Training failed", message, details)

    def _on_history_run_selected(self, run_id: str) -> None:
        if self.controller.running:
            return  # the live curves stay while a run is going
        run = self.controller.find_run(run_id)
        if run is not None:
            self.monitor.schema = self.controller.dataset.schema if self.controller.dataset is not None else None
            self.monitor.show_run(run)

    def _on_history_use_requested(self, run_id: str) -> None:
        try:
            path = self.controller.use_model(run_id)
        except SegstudioError as exc:
            show_error("Cannot use this run's model", str(exc))
            return
        self.sig_message.emit(f"Model: {path}")

    def sync_enabled(self) -> None:
        running = self.controller.running
        ws = self.controller.workspace
        read_only = ws is not None and ws.read_only
        has_data = self.controller.dataset is not None and ws is not None and not read_only
        self.start_button.setEnabled(has_data and not running)
        self.retrain_button.setEnabled(has_data and not running and self.controller.chosen_model() is not None)
        self.stop_button.setEnabled(running)
        self.history.refresh_buttons()
        for w in (self.recipe, self.architecture, self.encoder, self.members, self.loss, self.augment, self.epochs,
                  self.image_size, self.batch_size, self.holdout, self.steps, self.device, self.threads,
                  self.corrections, self.retrain_epochs, self.reviewed_weight, self.reset_validation_button):
            w.setEnabled(not running)
        if read_only and not running:
            self.state_label.setText(READ_ONLY_TEXT)
        elif not has_data and not running:
            self.state_label.setText(NO_DATA_TEXT)
        elif self.state_label.text() in (READ_ONLY_TEXT, NO_DATA_TEXT):
            # a dataset has been opened since: the reason it could not train no longer holds
            self.state_label.setText("Ready to train: choose a recipe or settings below and press Train.")

    def checkpoint_of(self, run_id: str) -> Path | None:
        run = self.controller.find_run(run_id)
        return run_checkpoint(run.folder) if run is not None else None
