"""Scores from pixel counts (Dice, IoU, pixel accuracy, precision, recall) and the 95th-percentile Hausdorff
distance from two binary masks.

Empty conventions (one place, so the GUI, the CLI and the engine agree):

* A class absent from both GT and prediction (``tp + fp + fn == 0``) has Dice, IoU, precision and recall
  ``NaN`` — "not applicable" — and is left out of every mean (``np.nanmean``). Scoring it 1.0 would let a model
  that predicts nothing look perfect on rare classes; scoring it 0.0 would punish a correct "nothing here".
* Precision is ``NaN`` when nothing was predicted (``tp + fp == 0``), recall when the GT is empty.
* HD95 is ``NaN`` when both masks are empty and ``inf`` when exactly one is.
* A per-sample mean over no applicable class (both masks empty everywhere) is defined in
  ``segstudio.metrics.compare`` as 1.0: GT and prediction agree perfectly.
"""

from __future__ import annotations

import math

import numpy as np

from segstudio.metrics.confusion import ClassCounts


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def dice(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` Dice = 2TP / (2TP + FP + FN) per class; ``NaN`` where the class is in neither mask."""
    return _ratio(2 * counts.tp, 2 * counts.tp + counts.fp + counts.fn)


def iou(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` IoU (Jaccard) = TP / (TP + FP + FN) per class; ``NaN`` where the class is in neither mask."""
    return _ratio(counts.tp, counts.tp + counts.fp + counts.fn)


def precision(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` TP / (TP + FP); ``NaN`` where the class was not predicted."""
    return _ratio(counts.tp, counts.tp + counts.fp)


def recall(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` TP / (TP + FN) (sensitivity); ``NaN`` where the class is not in the GT."""
    return _ratio(counts.tp, counts.tp + counts.fn)


def class_accuracy(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` one-vs-rest accuracy (TP + TN) / valid; ``NaN`` when no pixel counted."""
    return _ratio(counts.tp + counts.tn, np.full(counts.tp.shape, counts.valid))


def pixel_accuracy(gt: np.ndarray, pred: np.ndarray, *, valid: np.ndarray | None = None) -> float:
    """Fraction of (valid) pixels where ``gt == pred`` (semantic index maps, or whole multi-label words).

    ``valid``: optional ``bool`` array of the masks' shape; ``NaN`` when it selects no pixel.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"GT and prediction differ in shape: {gt.shape} vs {pred.shape}")
    eq = gt == pred
    if valid is not None:
        n = int(np.count_nonzero(valid))
        return float(np.count_nonzero(eq & valid)) / n if n else math.nan
    return float(np.count_nonzero(eq)) / eq.size if eq.size else math.nan


def _surface_points(mask: np.ndarray) -> np.ndarray | None:
    """``(N, 2) float64`` (row, col) of the pixels of ``mask`` with an 8-neighbour outside it; ``None`` if empty.

    Eroded on the mask's bounding box padded with one background pixel, so a mask touching the image edge has
    its surface there, and the cost follows the object's size, not the image's.
    """
    import cv2

    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    inner = cv2.erode(crop, np.ones((3, 3), np.uint8))
    pts = np.argwhere((crop != 0) & (inner == 0)).astype(np.float64)
    pts += (y0 - 1, x0 - 1)
    return pts


def hd95(
    a: np.ndarray,
    b: np.ndarray,
    *,
    spacing: tuple[float, float] = (1.0, 1.0),
    percentile: float = 95.0,
) -> float:
    """95th-percentile symmetric Hausdorff distance between the surfaces of two 2-D ``bool`` masks.

    ``max(P95(d(surface a → surface b)), P95(d(surface b → surface a)))`` — the convention of MONAI's
    ``compute_hausdorff_distance(percentile=95)`` — in units of ``spacing`` (row, column pixel size).
    Exact nearest-surface distances come from k-d trees over the surface points (scipy), so the cost grows
    with the objects' outline length, not their area: a full-size lung on a 2048² image costs ~10x less than
    a Euclidean distance transform of its bounding box, with identical results.
    ``NaN`` when both masks are empty, ``inf`` when only one is.
    """
    from scipy.spatial import cKDTree

    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"hd95 needs two 2-D masks of one shape, got {a.shape} and {b.shape}")
    pa, pb = _surface_points(a), _surface_points(b)
    if pa is None and pb is None:
        return math.nan
    if pa is None or pb is None:
        return math.inf
    scale = np.asarray(spacing, np.float64)
    pa *= scale
    pb *= scale
    d_ab, _ = cKDTree(pb).query(pa)
    d_ba, _ = cKDTree(pa).query(pb)
    return float(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile)))
