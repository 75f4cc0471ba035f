"""Label suspicion, the second pass's statistics: each class's distribution over a dataset, learned robustly (median
and spread: one bad mask cannot move it), and how far one mask's figure lies outside it.

:mod:`segstudio.metrics.suspicion` turns these into checks, reasons and scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segstudio.metrics.suspicion_features import SampleFeatures

__all__ = ["COUNT_SPREAD", "ELLIPSE_SPREAD", "EXPECTED_SHARE", "MIN_FOR_STATS", "RELIABLE_DICE", "UNRELIABLE_DICE",
           "ClassStats", "box_in", "class_stats", "count_value", "outlier", "reliability_of", "robust"]

#: a class present in at least this share of the images is expected in every image
EXPECTED_SHARE = 0.9
#: below this many measured images a class's distribution is not learned (only rules apply)
MIN_FOR_STATS = 8
#: the least spread of the island and hole counts, on their ``log(1 + n)`` scale (counts vary by factors: a facade
#: with 30 holes is not odd beside one with 20; one island where a class never has any is)
COUNT_SPREAD = 0.25
#: the least spread of ``log(ellipse_gap)``: outlines drawn with the same care differ by factors (a round window
#: drawn with 16 vertices is 0.01 off its ellipse, one with 40 vertices less)
ELLIPSE_SPREAD = 0.5


def robust(values: Sequence[float], *, floor: float = 1e-6) -> tuple[float, float] | None:
    """Median and spread (1.4826 × MAD, at least 5 % of the median and ``floor``: counts spread by at least 1)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size < MIN_FOR_STATS:
        return None
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    spread = max(mad, 0.05 * abs(med), floor)
    return med, spread


def outlier(x: float | None, stats: tuple[float, float] | None, *, side: str = "both") -> float:
    if x is None or stats is None or not math.isfinite(x):
        return 0.0
    med, spread = stats
    z = (x - med) / spread
    if side == "high":
        z = max(z, 0.0)
    elif side == "low":
        z = max(-z, 0.0)
    else:
        z = abs(z)
    return float(min(max((z - 2.0) / 4.0, 0.0), 1.0))


def count_value(n: int) -> float:
    return 1.0 - 0.5**n


@dataclass
class ClassStats:
    present: int
    measured: int
    present_share: float
    area: tuple[float, float] | None
    cy: tuple[float, float] | None
    cx: tuple[float, float] | None
    density: tuple[float, float] | None
    edge: tuple[float, float] | None
    parts_mode: int | None
    #: the share of the images with the class whose part count is ``parts_mode``
    parts_share: float
    dice_loss: tuple[float, float] | None
    hd95: tuple[float, float] | None
    conf: tuple[float, float] | None
    islands: tuple[float, float] | None = None
    holes: tuple[float, float] | None = None
    #: the class's ``log(ellipse_gap)``
    ellipse: tuple[float, float] | None = None
    #: the share of images whose centre lies on the same side (left/right) as the median's
    same_side: float = 0.0
    #: how far the model's checks are believed on this class (:func:`reliability_of`)
    reliability: float = 1.0
    #: the share of edge strength the class's outlines gain when moved or grown (:mod:`edge_fit`)
    edge_fit: tuple[float, float] | None = None
    #: the model's median Dice on the images that have the class (None without predictions)
    model_dice: float | None = None
    #: where the class usually lies: the median box (y0, y1, x0, x1) of its largest part, as fractions of the
    #: image's content (where a missing class is framed)
    usual_box: tuple[float, float, float, float] | None = None
    #: the pixels the class's ``fit`` puts right (``explained_px``; a model that differs from every label the same
    #: way is not judging the labels)
    fit: tuple[float, float] | None = None


def frame_of(s: SampleFeatures) -> tuple[int, int, int, int]:
    return s.frame or (0, s.shape[0], 0, s.shape[1])


def usual_box_of(feats: Sequence[SampleFeatures], cid: int) -> tuple[float, float, float, float] | None:
    boxes = []
    for s in feats:
        fy0, fy1, fx0, fx1 = frame_of(s)
        for f in s.classes:
            if f.class_id == cid and f.present and f.box is not None and fy1 > fy0 and fx1 > fx0:
                y0, y1, x0, x1 = f.box
                boxes.append(((y0 - fy0) / (fy1 - fy0), (y1 - fy0) / (fy1 - fy0),
                              (x0 - fx0) / (fx1 - fx0), (x1 - fx0) / (fx1 - fx0)))
    if len(boxes) < MIN_FOR_STATS:
        return None
    med = np.median(np.asarray(boxes), axis=0)
    return float(med[0]), float(med[1]), float(med[2]), float(med[3])


def box_in(s: SampleFeatures, usual: tuple[float, float, float, float] | None) -> tuple[int, int, int, int] | None:
    """``usual`` (fractions of the content) in the pixels of sample ``s``."""
    if usual is None:
        return None
    fy0, fy1, fx0, fx1 = frame_of(s)
    h, w = s.shape
    y0 = min(h - 1, max(0, int(fy0 + usual[0] * (fy1 - fy0))))
    x0 = min(w - 1, max(0, int(fx0 + usual[2] * (fx1 - fx0))))
    return (y0, min(h, max(y0 + 1, int(round(fy0 + usual[1] * (fy1 - fy0))))),
            x0, min(w, max(x0 + 1, int(round(fx0 + usual[3] * (fx1 - fx0))))))


def class_stats(feats: Sequence[SampleFeatures], cid: int) -> ClassStats:
    fs = [f for s in feats for f in s.classes if f.class_id == cid]
    present = [f for f in fs if f.present and f.parts > 0]  # a class of specks only counts as absent
    parts = [f.parts for f in present]
    mode, mode_share = None, 0.0
    if len(parts) >= MIN_FOR_STATS:
        values, counts = np.unique(parts, return_counts=True)
        mode_share = float(counts.max()) / len(parts)
        if mode_share >= 0.8:
            mode = int(values[int(np.argmax(counts))])
    dices = [f.dice for f in present if f.dice is not None]
    model_dice = float(np.median(dices)) if len(dices) >= MIN_FOR_STATS else None
    cxs = [f.cx for f in present if math.isfinite(f.cx)]
    med_cx = float(np.median(cxs)) if cxs else 0.5
    same = sum(1 for x in cxs if (x - 0.5) * (med_cx - 0.5) > 0) / len(cxs) if cxs else 0.0
    return ClassStats(
        present=len(present), measured=len(fs), same_side=same, model_dice=model_dice,
        usual_box=usual_box_of(feats, cid),
        fit=robust([f.fit.explained_px for f in present if f.fit is not None]),
        reliability=reliability_of(model_dice),
        islands=robust([math.log1p(f.islands) for f in present], floor=COUNT_SPREAD),
        holes=robust([math.log1p(f.holes) for f in present], floor=COUNT_SPREAD),
        ellipse=robust([math.log(f.ellipse_gap) for f in present if f.ellipse_gap > 0], floor=ELLIPSE_SPREAD),
        present_share=len(present) / len(fs) if fs else 0.0,
        area=robust([math.log(f.area) for f in present if f.area > 0]), cy=robust([f.cy for f in present]), cx=robust([f.cx for f in present]),
        density=robust([f.vertex_density for f in present]), edge=robust([f.edge_alignment for f in present]),
        edge_fit=robust([f.edge_fit.gain for f in present if f.edge_fit is not None]),
        parts_mode=mode, parts_share=mode_share,
        dice_loss=robust([1.0 - f.dice for f in fs if f.dice is not None]),
        hd95=robust([f.hd95 for f in present if f.hd95 is not None]),
        conf=robust([f.confident_other for f in present if f.confident_other is not None]),
    )


#: the model's median Dice on a class below which its checks on that class are not believed at all, and from which
#: they are believed fully
UNRELIABLE_DICE, RELIABLE_DICE = 0.5, 0.8


def reliability_of(model_dice: float | None) -> float:
    """A model that cannot segment a class cannot judge its labels: its checks on a class count in proportion to
    its usual (median, out-of-fold) Dice on it, nothing at :data:`UNRELIABLE_DICE`, fully from
    :data:`RELIABLE_DICE`. Too few images to tell: believed."""
    if model_dice is None:
        return 1.0
    return float(min(1.0, max(0.0, (model_dice - UNRELIABLE_DICE) / (RELIABLE_DICE - UNRELIABLE_DICE))))
