"""The window's side of the human-in-the-loop loop beyond predicting: starting training and retraining rounds
(the Training panel shows them), the "next to review" queue (Q, the Review panel's strategy box), pseudo-labels
(accepting predictions of unlabelled images) and refreshing the predictions once a retrained model is promoted.
The window composes; this controller holds the behaviour and receives its collaborators."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDockWidget

from segstudio.datasets.base import Dataset
from segstudio.gui.loop.pseudo_labels import accept_predictions
from segstudio.gui.loop.training import TrainingController
from segstudio.gui.loop.training_panel import TrainingPanel
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.navigation import NavigationController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.review_queue import ReviewQueue
from segstudio.gui.screen.session import SessionController
from segstudio.workspace.queue import STRATEGIES


class LoopController(QObject):
    def __init__(self, *, session: SessionController, review: ReviewController, navigation: NavigationController,
                 browser: SampleBrowser, review_panel: ReviewPanel, training: TrainingController,
                 training_panel: TrainingPanel, training_dock: QDockWidget,
                 refresh_predictions: Callable[[], object], show_message: Callable[[str, int], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.review, self.navigation = session, review, navigation
        self.browser, self.review_panel = browser, review_panel
        self.training_panel, self.training_dock = training_panel, training_dock
        self._show_message = show_message
        self.queue = ReviewQueue(review, self)
        review_panel.sig_queue_next_requested.connect(self.go_next_in_queue)
        review_panel.sig_queue_strategy_changed.connect(self._on_queue_strategy_changed)
        training_panel.sig_promoted.connect(lambda _p: refresh_predictions())
        training.sig_run_started.connect(lambda _run: self.show_training_panel())
        session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        # scores of a predictions folder arrive in the background: the queue's line follows them (coalesced)
        self._info_timer = QTimer(self, singleShot=True, interval=200)
        self._info_timer.timeout.connect(self.update_queue_info)
        review.sig_scored.connect(lambda _sid, _comp: self._info_timer.start())
        review.sig_scoring_finished.connect(self.update_queue_info)

    # training ---------------------------------------------------------------------------------------------------
    def start_training(self) -> None:
        self.show_training_panel()
        self.training_panel.start_training()

    def start_retrain(self) -> None:
        self.navigation.save_current()  # the round trains on the corrections as saved
        self.show_training_panel()
        self.training_panel.start_retrain()

    def show_training_panel(self) -> None:
        self.training_dock.show()
        self.training_dock.raise_()

    # the queue --------------------------------------------------------------------------------------------------
    def go_next_in_queue(self) -> None:
        cur = self.session.current
        self.navigation.save_current()  # a correction just made changes what is left to review
        nxt = self.queue.next_after(cur.sample.id if cur is not None else None)
        if nxt is None:
            self._show_message(self.queue.describe(None), 6000)
            return
        self.navigation.go_to_sample(nxt.sample_id)
        self._show_message(f"Next to review: {nxt.reason}", 6000)

    def _on_session_dataset_opened(self, ds: Dataset) -> None:
        self.training_panel.set_context(ds, self.review.workspace)
        self.review_panel.set_strategy(self.queue.strategy)
        self.update_queue_info()

    def _on_queue_strategy_changed(self, key: str) -> None:
        self.queue.set_strategy(key)
        self.update_queue_info()

    def update_queue_info(self) -> None:
        self._info_timer.stop()
        cur = self.session.current
        self.review_panel.set_strategy_notes({k: self.queue.unavailable(k) for k in STRATEGIES})
        self.review_panel.set_queue_info(self.queue.describe(cur.sample.id if cur is not None else None))

    # pseudo-labels ----------------------------------------------------------------------------------------------
    def accept_selected_predictions(self) -> None:
        """The predictions of the selected unlabelled images (else the shown one) become their labels."""
        cur = self.session.current
        ids = self.browser.selected_ids() or ([cur.sample.id] if cur is not None else [])
        self.navigation.save_current()
        outcome = accept_predictions(self.review, ids, author=self.review.reviewer)
        for sid in outcome.accepted:
            self.session.invalidate(sid)
        if cur is not None and cur.sample.id in outcome.accepted:
            self.session.reload_current()
        self.update_queue_info()
        self._show_message(outcome.summary(), 8000)
