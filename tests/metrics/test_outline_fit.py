"""The outline fit on real lung masks (Montgomery, 512²): a label moved, eroded or dilated against the true mask as
the model's prediction is recognised as such, by how much and which way; a model's local mistake (a lung base it
missed) is not explained by any move or growth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.metrics.outline_fit import FIT_RADIUS_PX, fit_to_prediction


@pytest.fixture(scope="module")
def lung(montgomery: Path) -> np.ndarray:
    """The left lung of the first Montgomery film, as drawn (512²)."""
    from segstudio.datasets.registry import open_dataset

    ds = open_dataset(montgomery, format="class-folders")
    ids = {c.name: c.id for c in ds.schema}
    gt = ds.load_gt(ds.samples[0])
    plane = gt == ids["left lung"]
    assert plane.shape == (512, 512) and plane.mean() > 0.05
    return plane


def _grown(plane: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(px) + 1, 2 * abs(px) + 1))
    op = cv2.dilate if px > 0 else cv2.erode
    return op(plane.astype(np.uint8), k).astype(bool)


@pytest.mark.parametrize("dy,dx", [(12, -8), (-15, 0), (0, 20)])
def test_a_moved_label_is_found_moved_by_as_much(lung: np.ndarray, dy: int, dx: int) -> None:
    label = np.roll(lung, (dy, dx), axis=(0, 1))
    fit = fit_to_prediction(label, lung)
    assert fit is not None and fit.kind == "move"
    assert abs(fit.move[0] - dy) <= 1 and abs(fit.move[1] - dx) <= 1
    assert fit.dice < 0.95 and fit.dice + fit.move_gain > 0.99  # moved back, it is the same mask


@pytest.mark.parametrize("px", [6, 12, -6, -12])
def test_an_eroded_or_dilated_label_is_found_grown_or_shrunk(lung: np.ndarray, px: int) -> None:
    label = _grown(lung, -px)  # eroded by 6 px: it must grow by 6 to agree
    fit = fit_to_prediction(label, lung)
    assert fit is not None and fit.kind == "grow"
    assert abs(fit.grow - px) <= 1
    assert fit.grow_gain > 0.03 and fit.dice + fit.grow_gain > 0.98


def test_a_models_local_mistake_is_not_explained_by_a_move_or_growth(lung: np.ndarray) -> None:
    """The model misses the lowest 30 % of the lung (its rows): as much disagreement as a 5 px erosion, but no
    single move or growth of the (correct) label buys any of it back."""
    rows = np.flatnonzero(lung.any(axis=1))
    cut = rows[0] + int(0.7 * (rows[-1] - rows[0]))
    pred = lung.copy()
    pred[cut:] = False
    fit = fit_to_prediction(lung, pred)
    eroded = fit_to_prediction(_grown(lung, -5), lung)
    assert fit is not None and eroded is not None
    assert fit.dice < eroded.dice + 0.02  # the model disagrees at least as much
    assert fit.gain < 0.02 < eroded.gain


def test_agreement_and_empty_planes(lung: np.ndarray) -> None:
    same = fit_to_prediction(lung, lung)
    assert same is not None and same.dice == 1.0 and same.gain == 0.0
    assert fit_to_prediction(np.zeros_like(lung), lung) is None
    assert fit_to_prediction(lung, np.zeros_like(lung)) is None
    with pytest.raises(ValueError, match="differ in size"):
        fit_to_prediction(lung, lung[:100])


def test_a_large_mask_is_measured_smaller_and_answered_in_its_own_pixels(lung: np.ndarray) -> None:
    big = cv2.resize(lung.astype(np.uint8), (2048, 2048), interpolation=cv2.INTER_NEAREST).astype(bool)
    fit = fit_to_prediction(np.roll(big, (16, 0), axis=(0, 1)), big)
    assert fit is not None and fit.kind == "move"
    assert abs(fit.move[0] - 16) <= 4 and abs(fit.move[1]) <= 4  # measured at a quarter: 4 px steps
    far = fit_to_prediction(np.roll(big, (3 * FIT_RADIUS_PX, 0), axis=(0, 1)), big)
    assert far is not None and far.move[0] <= FIT_RADIUS_PX + 4  # no further than the radius looks
