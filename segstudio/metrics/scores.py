"""Scores from pixel counts (Dice, IoU, pixel accuracy, precision, recall, specificity) and, re-exported from
:mod:`segstudio.metrics.surface`, the surface distances (HD95, average surface distance) of two binary masks.

Definitions, per class ``c`` from its one-vs-rest counts over the counted (non-ignored) pixels
(:class:`~segstudio.metrics.confusion.ClassCounts`):

* Dice = 2TP / (2TP + FP + FN); IoU (Jaccard) = TP / (TP + FP + FN);
* precision = TP / (TP + FP); recall (sensitivity) = TP / (TP + FN); specificity = TN / (TN + FP);
* class accuracy = (TP + TN) / counted pixels; pixel accuracy = share of counted pixels where GT == prediction.

Empty conventions (one place, so the GUI, the CLI and the engine agree). The rule under all of them is
``_ratio``'s: **a ratio whose denominator is zero is ``NaN``** ("not applicable"), never 0 or 1, and ``NaN`` is
left out of every mean (``np.nanmean``). What that means case by case:

* A class absent from both GT and prediction (``tp + fp + fn == 0``) scores ``NaN`` in Dice, IoU, precision,
  recall **and specificity** — the whole row is "not applicable" and every class mean runs over the same
  classes. Scoring it 1.0 would let a model that predicts nothing look perfect on rare classes; scoring it 0.0
  would punish a correct "nothing here". (Specificity's own denominator TN + FP is not zero there — scikit-learn
  and MONAI's ``ConfusionMatrixMetric`` would say 1.0 — it is set to ``NaN`` on purpose, for that consistency.)
  Class accuracy is the exception: it is 1.0 for such a class (its denominator is the pixel count).
* Precision is ``NaN`` when nothing was predicted (``tp + fp == 0``), recall when the GT is empty
  (``tp + fn == 0``), specificity when the class covers every counted pixel of the GT (``tn + fp == 0``).
* Pixel accuracy and class accuracy are ``NaN`` when no pixel counted.
* HD95 and ASD are ``NaN`` when both masks are empty and ``inf`` when exactly one is (MONAI's values, except
  its percentile HD of a single empty mask: see :mod:`segstudio.metrics.surface`).
* A per-sample mean over no applicable class (both masks empty everywhere) is defined in
  ``segstudio.metrics.compare`` as 1.0: GT and prediction agree perfectly.
"""

from __future__ import annotations

import math

import numpy as np

from segstudio.metrics.confusion import ClassCounts
from segstudio.metrics.surface import average_surface_distance, hd95, surface_distances, surface_points

__all__ = [
    "average_surface_distance",
    "class_accuracy",
    "dice",
    "hd95",
    "iou",
    "pixel_accuracy",
    "precision",
    "recall",
    "specificity",
    "surface_distances",
    "surface_points",
]


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


def specificity(counts: ClassCounts) -> np.ndarray:
    """``(K,) float64`` TN / (TN + FP) (true-negative rate); ``NaN`` where the class is in neither mask, or
    where it covers every counted pixel of the GT (no negative to reject)."""
    out = _ratio(counts.tn, counts.tn + counts.fp)
    out[(counts.tp + counts.fp + counts.fn) == 0] = np.nan
    return out


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
