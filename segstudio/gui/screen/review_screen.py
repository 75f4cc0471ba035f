"""Keeps the review screen's widgets in step with the session and the review: a dataset opened (browser, class
and layer panels, score columns, background scoring), a sample loaded (editor, layers, title, panels, the
neighbours' prefetch), a review decision or a saved version (browser row, Review panel, summary), the undo state
and the classes shown. It holds no state of its own beyond what it was given."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction

from segstudio.datasets.base import Dataset
from segstudio.gui.panels.class_panel import ClassPanel
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.editor import ERROR_LAYER, PRED_LAYER, EditorController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import LoadedSample, SessionController
from segstudio.gui.screen.status import StatusController
from segstudio.gui.screen.tools import ToolController
from segstudio.gui.screen.view import ViewController
from segstudio.workspace import MaskVersion, ReviewState, ReviewStatus


class ReviewScreenController(QObject):
    sig_review_shown = Signal(str)  # sample id: its review state is on screen (the queue's line follows)

    def __init__(self, *, session: SessionController, review: ReviewController, editor: EditorController,
                 view: ViewController, tools: ToolController, status: StatusController, browser: SampleBrowser,
                 class_panel: ClassPanel, layers_panel: LayersPanel, review_panel: ReviewPanel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.review, self.editor, self.view, self.tools = session, review, editor, view, tools
        self.status, self.browser, self.class_panel = status, browser, class_panel
        self.layers_panel, self.review_panel = layers_panel, review_panel
        self.actions: Mapping[str, QAction] = {}
        session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        session.sig_sample_loaded.connect(self._on_session_sample_loaded)
        class_panel.sig_visibility_changed.connect(self._on_class_panel_visibility_changed)
        review.sig_review_changed.connect(self._on_review_changed)
        review.sig_scored.connect(self._on_review_scored)
        editor.sig_history_changed.connect(self._on_editor_history_changed)
        editor.sig_saved.connect(self._on_editor_saved)

    def bind_actions(self, actions: Mapping[str, QAction]) -> None:
        self.actions = actions

    def prepare_sample(self, sample_id: str, image, gt, prediction=None):  # noqa: ANN001, ANN201 - in a worker
        """Everything a sample needs before it is shown, done off the GUI thread: latest correction, overlays
        drawn in the current style (the prediction was read beside the image by the prefetcher)."""
        ds = self.review.dataset
        if ds is None or sample_id not in ds:
            return None
        return self.review.target_for(ds.get(sample_id), image, gt, style=self.editor.overlay_style,
                                      error_class=self.editor.error_class, prediction=prediction)

    def show_review(self, sample_id: str) -> None:
        self.review_panel.set_state(self.review.review(sample_id), self.review.history(sample_id))
        ws = self.review.workspace
        versions = ws.versions.versions(sample_id) if ws is not None else []
        current = self.editor.target.base_version if self.editor.target is not None else 0
        self.review_panel.set_versions(versions, current=current)
        self.status.show_review_status(self.review.review(sample_id).status.value)
        self.sig_review_shown.emit(sample_id)

    def update_summary(self) -> None:
        ds = self.session.dataset
        if ds is not None:
            self.review_panel.set_summary(self.review.summary(), len(ds))

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_session_dataset_opened(self, ds: Dataset) -> None:
        self.browser.set_dataset(ds)
        self.browser.model_.set_reviews(self.review.reviews())
        self.browser.model_.set_scores_many(self.review.cached_scores())
        self.class_panel.set_schema(ds.schema)
        default = 1 if (not ds.schema.multilabel and ds.schema.has_id(1)) else ds.schema.ids[0]
        self.class_panel.select_class(default)
        self.layers_panel.set_schema(ds.schema)
        self.editor.set_workspace(self.review.workspace)
        self.status.update_dataset_status()
        preds = self.review.predictions
        self.browser.set_score_columns_visible(preds is not None)
        if preds is not None:
            self.browser.model_.set_predictions([s.id for s in ds.samples if preds.path_for(s) is not None])
        self.layers_panel.set_layer_available(PRED_LAYER, preds is not None)
        self.layers_panel.set_layer_available(ERROR_LAYER, preds is not None)
        self.update_summary()
        cached = self.review.cached_scores()
        missing = [s.id for s in ds.samples if s.id not in cached]
        if preds is not None and missing:
            self.review.start_scoring([sid for sid in missing if preds.path_for(sid) is not None])

    def _on_session_sample_loaded(self, cur: LoadedSample) -> None:
        if cur.extra is not None:
            target, problem = cur.extra
        else:
            target, problem = self.review.target_for(cur.sample, cur.image, cur.gt)
        self.view.sample_shown(cur)
        self.editor.load(target)
        self.view.apply_layer_visibility()
        self.view.refresh_secondary()
        self.tools.sync_context()
        self.status.update_title()
        msg = cur.error or problem
        if msg:
            # the whole message on one line: what is wrong, the file, the fix
            self.status.show_message(" · ".join(line.strip() for line in msg.splitlines() if line.strip()), 15000)
        # The canvas paints first; the panels and the neighbours' prefetch follow in the next event-loop turn.
        QTimer.singleShot(0, lambda sid=cur.sample.id: self._after_sample_shown(sid))

    def _after_sample_shown(self, sample_id: str) -> None:
        cur = self.session.current
        if cur is None or cur.sample.id != sample_id:
            return  # the user has moved on already
        self.browser.select_sample(sample_id)
        self.browser.model_.refresh_problems()
        self.session.prefetch([self.browser.next_id(sample_id), self.browser.previous_id(sample_id)])
        self.show_review(sample_id)

    def _on_class_panel_visibility_changed(self, _class_id: int, _visible: bool) -> None:
        ds = self.session.dataset
        if ds is None:
            return
        hidden = frozenset(set(ds.schema.ids) - self.class_panel.visible_ids())
        self.editor.set_overlay_style(hidden=hidden)
        self.view.refresh_secondary()

    def _on_review_changed(self, sample_id: str, state: ReviewState) -> None:
        self.browser.model_.set_review(sample_id, state)
        cur = self.session.current
        if cur is not None and cur.sample.id == sample_id:
            self.show_review(sample_id)
        self.update_summary()

    def _on_review_scored(self, sample_id: str, comparison) -> None:  # noqa: ANN001
        if comparison is None:
            self.browser.model_.set_scores(sample_id, None, None)
        else:
            self.browser.model_.set_scores(sample_id, comparison.mean_dice, comparison.mean_iou)

    def _on_editor_history_changed(self) -> None:
        m = self.editor.mask
        if "undo" in self.actions:
            self.actions["undo"].setEnabled(m is not None and m.can_undo)
            self.actions["redo"].setEnabled(m is not None and m.can_redo)
        if m is not None:
            ds, cur = self.session.dataset, self.session.current
            spacing = ds.pixel_spacing(cur.sample) if ds is not None and cur is not None else None
            self.class_panel.set_pixel_counts(self.editor.class_pixel_counts(), spacing=spacing)

    def _on_editor_saved(self, rec: MaskVersion) -> None:
        self.session.invalidate(rec.sample_id)  # a prefetched copy holds the old mask
        # a saved correction is the decision, also for a label that was rejected or flagged: the fix is in (and a
        # corrected label trains again)
        if self.review.review(rec.sample_id).status in (ReviewStatus.UNREVIEWED, ReviewStatus.REJECTED,
                                                         ReviewStatus.FLAGGED):
            self.review.set_status(rec.sample_id, ReviewStatus.CORRECTED, comment=self.review_panel.comment_text())
        cur = self.session.current
        if cur is not None and cur.sample.id == rec.sample_id:
            self.show_review(rec.sample_id)
        if self.review.predictions is not None:
            self.review.start_scoring([rec.sample_id])
