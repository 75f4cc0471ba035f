"""Pseudo-labels: a person looks at the model's predictions of unlabelled images (the review queue's
"confident predictions on unlabelled images") and accepts them; an accepted prediction becomes a mask version of
source ``accepted_prediction``, which the next training or retraining round uses like any correction.

Only images without GT and without a correction take part: accepting a prediction never replaces what a person
drew (for a labelled image, Ctrl+Shift+A copies the prediction into the editor, where it is one undoable step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from segstudio.core.errors import SegstudioError
from segstudio.gui.review import ReviewController
from segstudio.workspace import MaskSource, ReviewStatus

log = logging.getLogger(__name__)


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


def accept_predictions(review: ReviewController, sample_ids: list[str], *, author: str = "") -> AcceptOutcome:
    """Save the shown prediction of each unlabelled sample in ``sample_ids`` as its label and mark it accepted."""
    ws, ds = review.workspace, review.dataset
    out = AcceptOutcome()
    if ws is None or ds is None:
        return out
    corrected = ws.versions.corrected_ids()
    for sid in sample_ids:
        if sid not in ds:
            continue
        sample = ds.get(sid)
        if sample.has_gt or sid in corrected:
            out.skipped[sid] = "already labelled or corrected"
            continue
        try:
            pred = review.prediction_mask(sid)
        except SegstudioError as exc:
            out.skipped[sid] = f"prediction unreadable: {exc.message}"
            continue
        if pred is None:
            out.skipped[sid] = "no prediction yet"
            continue
        ws.save_mask(sid, pred, source=MaskSource.ACCEPTED_PREDICTION, author=author,
                     note="pseudo-label: the model's prediction, accepted after review")
        review.set_status(sid, ReviewStatus.ACCEPTED, comment="prediction accepted as a label")
        out.accepted.append(sid)
    log.info("pseudo-labels: %s", out.summary())
    return out
