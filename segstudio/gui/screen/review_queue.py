"""The "next to review" queue in the window: which sample comes next under the chosen strategy (see
``segstudio.workspace.queue``), from the per-sample figures of the current prediction source: the model's, written
when the app predicts, or a predictions folder's, written when the review controller scores it — or, under
"Most suspicious label", from the label-suspicion ranking (``workspace.suspicion_store``)."""

from __future__ import annotations

from PySide6.QtCore import QObject

from segstudio.datasets.predictions import PredictionFolder
from segstudio.gui.screen.review import ReviewController
from segstudio.workspace.queue import (
    MODEL_METRICS_KEY,
    SOURCE_FOLDER,
    SOURCE_MODEL,
    STRATEGIES,
    QueueItem,
    default_strategy,
    metrics_key_for,
    next_in_queue,
    unavailable_reason,
    workspace_entries,
    workspace_queue,
)
from segstudio.workspace.records import MetricsEntry

#: workspace state key of the chosen strategy
STRATEGY_STATE_KEY = "review_queue_strategy"
DEFAULT_STRATEGY = default_strategy(SOURCE_MODEL)


class ReviewQueue(QObject):
    def __init__(self, review: ReviewController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.review = review

    @property
    def source(self) -> str:
        """``SOURCE_FOLDER`` while a predictions folder is the prediction source, else ``SOURCE_MODEL``."""
        return SOURCE_FOLDER if isinstance(self.review.predictions, PredictionFolder) else SOURCE_MODEL

    @property
    def strategy(self) -> str:
        ws = self.review.workspace
        value = ws.state.get(STRATEGY_STATE_KEY) if ws is not None else None
        # until the user chooses, the first strategy that works with what is open
        return value if isinstance(value, str) and value in STRATEGIES else default_strategy(self.source)

    def unavailable(self, strategy: str | None = None) -> str | None:
        """Why ``strategy`` (default: the chosen one) cannot work with the current prediction source."""
        return unavailable_reason(self.strategy if strategy is None else strategy, source=self.source)

    def set_strategy(self, key: str) -> None:
        ws = self.review.workspace
        if ws is not None and key in STRATEGIES and key != self.strategy:
            ws.state.set(STRATEGY_STATE_KEY, key)

    def _entries(self) -> list[MetricsEntry]:
        ws, ds = self.review.workspace, self.review.dataset
        if ws is None or ds is None:
            return []
        # the scores of the current source (model or predictions folder); only the fields the queue reads: this
        # runs on every image change
        key = self.review.metrics_key if self.source == SOURCE_FOLDER else MODEL_METRICS_KEY
        return workspace_entries(ws, ds, key=metrics_key_for(self.strategy, source_key=key))

    def items(self, entries: list[MetricsEntry] | None = None) -> list[QueueItem]:
        ws, ds = self.review.workspace, self.review.dataset
        if ws is None or ds is None:
            return []
        return workspace_queue(ws, ds, self.strategy, entries=self._entries() if entries is None else entries)

    def next_after(self, current: str | None) -> QueueItem | None:
        return next_in_queue(self.items(), current)

    def describe(self, current: str | None) -> str:
        """One line for the panel: how many are queued and what comes next (or why nothing does)."""
        ws = self.review.workspace
        if ws is None:
            return ""
        entries = self._entries()
        items = self.items(entries)
        nxt = next_in_queue(items, current)
        if nxt is None:
            reason = self.unavailable()
            if reason is not None:
                return reason
            if not entries and self.strategy == "suspicion":
                return "The labels are not ranked yet: Review → Rank Labels by Suspicion (Ctrl+Shift+Q)."
            if self.strategy == "suspicion":
                return "Nothing left under this strategy: every ranked label is reviewed."
            if not entries and self.source == SOURCE_FOLDER:
                return ("No scores for the predictions folder yet: they are computed in the background (the "
                        "folder needs predictions of images with GT or a correction).")
            if not entries:
                return "No model predictions yet: predict the images (Model menu) to fill the queue."
            if self.strategy == "pseudo-labels":
                return "No unlabelled image with a prediction is waiting."
            return "Nothing left under this strategy: every scored sample is reviewed."
        ds = self.review.dataset
        name = ds.get(nxt.sample_id).name if ds is not None and nxt.sample_id in ds else nxt.sample_id
        return f"{len(items)} in the queue · next: {name} ({nxt.reason})"
