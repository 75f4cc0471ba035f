"""Pseudo-labels from the Review panel: :func:`segstudio.workspace.pseudo_labels.accept_predictions` with the
predictions the window shows (the panels hear of each accepted sample from the workspace's own events)."""

from __future__ import annotations

from segstudio.gui.screen.review import ReviewController
from segstudio.workspace.pseudo_labels import AcceptOutcome
from segstudio.workspace.pseudo_labels import accept_predictions as accept_in_workspace

__all__ = ["AcceptOutcome", "accept_predictions"]


def accept_predictions(review: ReviewController, sample_ids: list[str], *, author: str = "") -> AcceptOutcome:
    """Save the shown prediction of each unlabelled sample in ``sample_ids`` as its label and mark it accepted."""
    ws, ds = review.workspace, review.dataset
    if ws is None or ds is None:
        return AcceptOutcome()
    return accept_in_workspace(ws, ds, sample_ids, prediction=review.prediction_mask,
                               author=author or review.reviewer)
