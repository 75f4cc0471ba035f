"""What the window shows of the model's predictions: the Model menu's handlers, the prediction source (a
predictions folder the user opened, or the model's predictions in the workspace), predictions appearing as they
arrive (prediction layer, error map, Dice/IoU columns), stale marking, the uncertainty heat map and the
progress bar with its Stop button in the status bar.

The window composes; this controller holds the behaviour (DESIGN rule 10). It receives its collaborators (session,
review, training controller, browser, editor, canvas, layers panel, view, status bar) and never computes a
prediction itself: ``InferenceController`` runs the engine in the background.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton

from segstudio.datasets.base import Dataset
from segstudio.gui.common.errors import show_error
from segstudio.gui.loop.inference import InferenceController, SamplePredicted
from segstudio.gui.loop.training import TrainingController
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import ERROR_LAYER, PRED_LAYER, EditorController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import LoadedSample, SessionController
from segstudio.gui.screen.view import ViewController
from segstudio.workspace.model_predictions import ModelPredictions

log = logging.getLogger(__name__)

UNC_LAYER = "uncertainty"
UNC_Z = 3.5  # above the error map: it is looked at on its own
PRED_TITLE = "Prediction"
STALE_PRED_TITLE = "Prediction (older model)"
#: entropy below this is drawn fully transparent: the heat map shows only where the model hesitates
UNC_FLOOR = 0.1
#: entropy from which the heat map is fully opaque (then scaled by the layer's opacity slider)
UNC_FULL = 0.6


def uncertainty_rgba(unc: np.ndarray) -> np.ndarray:
    """``(H, W) float`` entropy in [0, 1] → ``(H, W, 4) uint8`` heat map (inferno), alpha rising with the entropy
    and zero where the model is certain."""
    u = np.clip(np.nan_to_num(np.asarray(unc, np.float32)), 0.0, 1.0)
    u8 = np.rint(u * 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    alpha = np.clip((u - UNC_FLOOR) / (UNC_FULL - UNC_FLOOR), 0.0, 1.0)
    out = np.empty((*u.shape, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    return out


class PredictionsController(QObject):
    sig_predictions_changed = Signal()  # which samples have a prediction may have changed (the status line)

    def __init__(self, *, session: SessionController, review: ReviewController, training: TrainingController,
                 browser: SampleBrowser, editor: EditorController, canvas: ImageCanvas, layers: LayersPanel,
                 view: ViewController, status_bar: QStatusBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.review, self.training = session, review, training
        self.browser, self.editor, self.canvas, self.layers, self.view = browser, editor, canvas, layers, view
        self.status_bar = status_bar
        self.actions: Mapping[str, QAction] = {}
        self.inference = InferenceController(self)
        self.inference.checkpoint = lambda: training.chosen_model()
        bar = status_bar
        self.stale_label = QLabel()
        self.stale_label.setObjectName("status_prediction")
        self.stale_label.setContentsMargins(0, 0, 8, 0)
        self.progress = QProgressBar()
        self.progress.setObjectName("predictProgress")
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("predicting %v/%m")
        self.eta = QLabel()
        self.eta.setObjectName("predictEta")
        self.stop_button = QToolButton()
        self.stop_button.setObjectName("predictStop")
        self.stop_button.setText("Stop")
        self.stop_button.setToolTip("Stop predicting after the current batch (Ctrl+.)")
        self.stop_button.clicked.connect(self.stop)
        for wdg in (self.stale_label, self.progress, self.eta, self.stop_button):
            bar.addPermanentWidget(wdg)
        self._unc_sample: str | None = None
        self._set_busy(False)

        self.inference.sig_predicted.connect(self._on_inference_predicted)
        self.inference.sig_progress.connect(self._on_inference_progress)
        self.inference.sig_ended.connect(self._on_inference_ended)
        self.inference.sig_errored.connect(self._on_inference_errored)
        self.inference.sig_message.connect(lambda text: bar.showMessage(text, 8000))
        training.sig_model_chosen.connect(self._on_training_model_chosen)
        session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        session.sig_sample_loaded.connect(self._on_session_sample_loaded)
        layers.sig_layer_visibility_changed.connect(self._on_layers_visibility_changed)

    def bind_actions(self, actions: Mapping[str, QAction]) -> None:
        """The window's actions (built after this controller: some of their handlers are its methods)."""
        self.actions = actions
        self._set_busy(self.inference.running())

    # the source -------------------------------------------------------------------------------------------------
    @property
    def source(self) -> ModelPredictions | None:
        p = self.review.predictions
        return p if isinstance(p, ModelPredictions) else None

    def dataset_opening(self, *, explicit_folder: bool) -> None:
        """The review controller just opened a dataset (before it is shown): without a predictions folder the
        model's predictions in the workspace become the prediction layer's source."""
        review = self.review
        self.inference.set_context(review.dataset, review.workspace)
        self.inference.reference = review.reference_mask
        if not explicit_folder:
            self._attach(only_if_any=True)

    def _attach(self, *, only_if_any: bool = False) -> bool:
        review, ds, ws = self.review, self.review.dataset, self.review.workspace
        if ds is None or ws is None:
            return False
        ckpt = self.training.chosen_model() if self.training.workspace is ws else _chosen_in(ws)
        src = ModelPredictions(ws.predictions, ds, checkpoint=ckpt)
        if only_if_any and not len(src) and ckpt is None:
            return False
        review.predictions = src
        return True

    def _switch_to_model(self) -> None:
        """Show the model's predictions (the chosen model changed, or a prediction run starts)."""
        # this replaces an opened predictions folder too: predicting (or choosing a model) is the user asking for it
        self._attach()
        self.refresh_all()

    def refresh_all(self) -> None:
        """Browser columns, stale marks, layer availability and the current sample after a source change."""
        ds, review, model = self.session.dataset, self.review, self.browser.model_
        if ds is None:
            return
        src = self.source
        model.set_scores_many({s.id: (None, None) for s in ds.samples})
        model.set_scores_many(review.cached_scores())
        preds = review.predictions
        has = [s.id for s in ds.samples if preds is not None and preds.path_for(s) is not None]
        model.set_predictions(has)
        self.sig_predictions_changed.emit()
        model.set_stale(src.stale_ids() if src is not None else [])
        self._show_columns(bool(has))
        for sid in has:
            self.session.invalidate(sid)
        cur = self.session.current
        if cur is not None:
            self._reload_prediction(cur.sample.id)

    def _show_columns(self, on: bool) -> None:
        self.browser.set_score_columns_visible(on)
        self.layers.set_layer_available(PRED_LAYER, on)
        self.layers.set_layer_available(ERROR_LAYER, on)

    # the Model menu ---------------------------------------------------------------------------------------------
    def predict_current(self) -> bool:
        cur = self.session.current
        if cur is None:
            self.status_bar.showMessage("Open a dataset first.", 5000)
            return False
        if self.inference.checkpoint() is not None and self.source is None:
            self._switch_to_model()
        return self.inference.predict_current(cur.sample.id)

    def predict_all(self) -> bool:
        return self._predict_many(None)

    def predict_selected(self) -> bool:
        return self._predict_many(self.browser.selected_ids())

    def _predict_many(self, ids: list[str] | None) -> bool:
        if self.inference.checkpoint() is not None and self.source is None and self.session.dataset is not None:
            self._switch_to_model()
        return self.inference.predict_samples(ids)

    def refresh_predictions(self) -> bool:
        """After a retrained model was promoted: predict every image again with it (a run of the previous model
        is stopped first); until each lands, the older model's prediction shows, marked stale."""
        if self.inference.running():
            self.inference.stop_and_wait(60)
        started = self.predict_all()
        if started:
            self.status_bar.showMessage("Refreshing every prediction with the promoted model…", 10000)
        return started

    def stop(self) -> None:
        self.inference.stop()

    def set_uncertainty_visible(self, on: bool) -> None:
        self.layers.set_layer_visible(UNC_LAYER, on)

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_session_dataset_opened(self, _ds: Dataset) -> None:
        src = self.source
        self.browser.model_.set_stale(src.stale_ids() if src is not None else [])
        if src is not None:
            self._show_columns(len(src) > 0)  # a chosen model with nothing predicted yet: no empty columns
        self._unc_sample = None

    def _on_session_sample_loaded(self, cur: LoadedSample) -> None:
        self._unc_sample = None
        self._show_stale(cur.sample.id)
        self._render_uncertainty(cur.sample.id)

    def _on_training_model_chosen(self, _path: object) -> None:
        if self.review.dataset is not None and (self.review.predictions is None or self.source is not None):
            self._switch_to_model()
            n = len(self.source.stale_ids()) if self.source is not None else 0
            if n:
                self.status_bar.showMessage(f"{n} prediction(s) are by an older model and marked as such; "
                                               "Model → Predict All Images refreshes them.", 10000)

    def _on_inference_predicted(self, ev: SamplePredicted) -> None:
        src = self.source
        if src is None:  # a predictions folder was opened meanwhile: the result is stored, not shown
            return
        if ev.entry is not None:
            src.note(ev.entry)
        comp = ev.comparison
        model = self.browser.model_
        model.set_scores(ev.sample_id, comp.mean_dice if comp is not None else None,
                         comp.mean_iou if comp is not None else None)
        model.mark_predicted(ev.sample_id, stale=src.is_stale(ev.sample_id))
        self._show_columns(True)
        self.session.invalidate(ev.sample_id)  # a prefetched copy holds the old prediction
        cur = self.session.current
        if cur is not None and cur.sample.id == ev.sample_id:
            self._apply_prediction(ev.sample_id, ev.mask, ev.uncertainty)

    def _on_inference_progress(self, done: int, total: int, eta: object) -> None:
        self._set_busy(True)
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.eta.setText(f"ETA {_duration(float(eta))}" if isinstance(eta, (int, float)) and done < total else "")

    def _on_inference_ended(self, job: str, outcome: str, done: int, total: int) -> None:
        self.sig_predictions_changed.emit()  # "· N predictions"
        if job == "batch":
            self._set_busy(False)
        elif outcome == "finished":
            self.status_bar.showMessage("The current image is predicted.", 5000)

    def _on_inference_errored(self, message: str, details: str) -> None:
        show_error("Cannot predict", message, details)

    def _on_layers_visibility_changed(self, name: str, on: bool) -> None:
        if name != UNC_LAYER:
            return
        cur = self.session.current
        if on and cur is not None and self._unc_sample != cur.sample.id:
            self._render_uncertainty(cur.sample.id)
        self.canvas.set_layer_visible(UNC_LAYER, on)

    # drawing ----------------------------------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        for wdg in (self.progress, self.eta, self.stop_button):
            wdg.setVisible(busy)
        stop = self.actions.get("predict_stop")
        if stop is not None:
            stop.setEnabled(busy)

    def _show_stale(self, sample_id: str) -> None:
        src = self.source
        stale = src is not None and src.is_stale(sample_id)
        self.stale_label.setText("prediction by an older model" if stale else "")
        self.stale_label.setToolTip("This prediction was made by another model than the current one; "
                                    "Model → Predict Current Image refreshes it." if stale else "")
        self.layers.set_layer_title(PRED_LAYER, STALE_PRED_TITLE if stale else PRED_TITLE)

    def _reload_prediction(self, sample_id: str) -> None:
        preds = self.review.predictions
        try:
            mask = preds.load(sample_id) if preds is not None else None
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, the window goes on
            log.warning("cannot read the prediction of %s: %s", sample_id, exc)
            mask = None
        src = self.source
        self._apply_prediction(sample_id, mask, src.uncertainty(sample_id) if src is not None else None)

    def _apply_prediction(self, sample_id: str, mask: np.ndarray | None, unc: np.ndarray | None) -> None:
        editor = self.editor
        if editor.target is None or editor.target.sample_id != sample_id:
            return
        if mask is not None and mask.shape != editor.target.base.shape:
            mask = None
        editor.set_prediction(mask)
        self.view.apply_layer_visibility()
        self.view.refresh_secondary()
        self._show_stale(sample_id)
        self._unc_sample = None
        self._render_uncertainty(sample_id, unc=unc)

    def _render_uncertainty(self, sample_id: str, *, unc: np.ndarray | None = None) -> None:
        """Draw the heat map of the shown sample (only while the layer is visible: it is read on first show)."""
        canvas = self.canvas
        if not self.layers.layer_visible(UNC_LAYER):
            canvas.set_layer(UNC_LAYER, None, z=UNC_Z)
            return
        src = self.source
        if unc is None and src is not None:
            unc = src.uncertainty(sample_id)
        editor = self.editor
        if unc is not None and (editor.target is None or unc.shape != editor.target.base.shape):
            unc = None
        canvas.set_layer(UNC_LAYER, uncertainty_rgba(unc) if unc is not None else None, z=UNC_Z)
        canvas.set_layer_opacity(UNC_LAYER, self.layers.layer_opacity(UNC_LAYER))
        canvas.set_layer_visible(UNC_LAYER, True)
        self._unc_sample = sample_id


def _chosen_in(ws: Any) -> Path | None:
    cur = ws.models.current()
    return cur.checkpoint if cur is not None else None


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"
