"""The window's side of the human-in-the-loop loop beyond training and predicting: the "next to review" queue
(Q, the Review panel's strategy box), pseudo-labels (accepting predictions of unlabelled images) and refreshing
the predictions once a retrained model is promoted. The window composes; this class holds the behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from segstudio.gui.pseudo_labels import accept_predictions
from segstudio.gui.review_queue import ReviewQueue
from segstudio.workspace.queue import STRATEGIES

if TYPE_CHECKING:
    from segstudio.gui.main_window import MainWindow


class LoopView(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.queue = ReviewQueue(window.review, self)
        window.review_panel.sig_queue_next_requested.connect(self.go_next_in_queue)
        window.review_panel.sig_queue_strategy_changed.connect(self._on_queue_strategy_changed)
        window.training_panel.sig_promoted.connect(lambda _p: window.predictions_view.refresh_predictions())
        window.session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        # scores of a predictions folder arrive in the background: the queue's line follows them (coalesced)
        self._info_timer = QTimer(self, singleShot=True, interval=200)
        self._info_timer.timeout.connect(self.update_queue_info)
        window.review.sig_scored.connect(lambda _sid, _comp: self._info_timer.start())
        window.review.sig_scoring_finished.connect(self.update_queue_info)

    # the queue --------------------------------------------------------------------------------------------------
    def go_next_in_queue(self) -> None:
        w = self.w
        cur = w.session.current
        w.save_current()  # a correction just made changes what is left to review
        nxt = self.queue.next_after(cur.sample.id if cur is not None else None)
        if nxt is None:
            w.statusBar().showMessage(self.queue.describe(None), 6000)
            return
        w.go_to_sample(nxt.sample_id)
        w.statusBar().showMessage(f"Next to review: {nxt.reason}", 6000)

    def _on_session_dataset_opened(self, _ds: object) -> None:
        self.w.review_panel.set_strategy(self.queue.strategy)
        self.update_queue_info()

    def _on_queue_strategy_changed(self, key: str) -> None:
        self.queue.set_strategy(key)
        self.update_queue_info()

    def update_queue_info(self) -> None:
        self._info_timer.stop()
        cur = self.w.session.current
        self.w.review_panel.set_strategy_notes({k: self.queue.unavailable(k) for k in STRATEGIES})
        self.w.review_panel.set_queue_info(self.queue.describe(cur.sample.id if cur is not None else None))

    # pseudo-labels ----------------------------------------------------------------------------------------------
    def accept_selected_predictions(self) -> None:
        """The predictions of the selected unlabelled images (else the shown one) become their labels."""
        w = self.w
        cur = w.session.current
        ids = w.browser.selected_ids() or ([cur.sample.id] if cur is not None else [])
        w.save_current()
        outcome = accept_predictions(w.review, ids, author=w.review.reviewer)
        for sid in outcome.accepted:
            w.session.invalidate(sid)
        if cur is not None and cur.sample.id in outcome.accepted:
            w.session.reload_current()
        self.update_queue_info()
        w.statusBar().showMessage(outcome.summary(), 8000)
