"""Pseudo-labels: a person looks at the model's predictions of unlabelled images (the review queue's
"confident predictions on unlabelled images") and accepts them; an accepted prediction becomes a mask version of
source ``accepted_prediction``, which the next training or retraining round uses like any correction.

Only images without GT and without a correction take part: accepting a prediction never replaces what a person
drew (for a labelled image, the app's Ctrl+Shift+A copies the prediction into the editor, one undoable step).
The app (Review panel) and ``segstudio pseudo-label`` both call :func:`accept_predictions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.workspace.records import MaskSource, ReviewState, ReviewStatus
from segstudio.workspace.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = ["AcceptOutcome", "accept_predictions"]

#: the note of every accepted prediction's mask version
NOTE = "pseudo-label: the model's prediction, accepted after review"


@dataclass
class AcceptOutcome:
    accepted: list[str] = field(default_factory=list)
    #: sample id -> why it was left alone
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{len(self.accepted)} prediction(s) accepted as labels"
        if self.skipped:
            reasons = sorted(set(self.skipped.values()))
            text += f"; {len(self.skipped)} left alone ({'; '.join(reasons)})"
        return text


def accept_predictions(workspace: Workspace, dataset: Dataset, sample_ids: Iterable[str], *,
                       prediction: Callable[[str], np.ndarray | None], author: str = "",
                       on_review: Callable[[str, ReviewState], None] | None = None) -> AcceptOutcome:
    """Save ``prediction(sample_id)`` of each unlabelled sample in ``sample_ids`` as its label (a mask version of
    source ``accepted_prediction``) and mark the sample accepted (``on_review`` hears of each new review state)."""
    out = AcceptOutcome()
    corrected = workspace.versions.corrected_ids()
    for sid in sample_ids:
        if sid not in dataset:
            out.skipped[sid] = "not in the dataset"
            continue
        if dataset.get(sid).has_gt or sid in corrected:
            out.skipped[sid] = "already labelled or corrected"
            continue
        try:
            pred = prediction(sid)
        except SegstudioError as exc:
            out.skipped[sid] = f"prediction unreadable: {exc.message}"
            continue
        if pred is None:
            out.skipped[sid] = "no prediction yet"
            continue
        workspace.save_mask(sid, pred, source=MaskSource.ACCEPTED_PREDICTION, author=author, note=NOTE)
        state = workspace.reviews.set(sid, ReviewStatus.ACCEPTED, comment="prediction accepted as a label",
                                      reviewer=author)
        if on_review is not None:
            on_review(sid, state)
        out.accepted.append(sid)
    log.info("pseudo-labels: %s", out.summary())
    return out
