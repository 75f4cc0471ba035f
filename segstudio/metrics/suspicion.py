"""Label suspicion: which masks of a dataset are most likely wrong, and why — ranked, with reasons in words.

Two passes. The first measures each mask, class by class (parallel, OpenCV releases the GIL): area, parts,
islands, holes, centre, how many vertices its outline needs, how well its outline follows the image's edges, and —
when a prediction is given — Dice, the boundary distance (HD95) and, with the model's probabilities, the share of
pixels the model confidently assigns to another class. The second pass learns each class's distribution over the
dataset (median and spread, robustly: one bad mask cannot move it) and turns every figure into a check value in
``[0, 1]`` by how far it lies outside; declared rules (:mod:`segstudio.metrics.label_rules`) are checked as they
stand. A class's score combines its check values with the weights of :data:`CHECKS` as a noisy-OR,
``1 - Π(1 - weight · value)``: one strong reason is enough, several weak ones add up — except that the model checks
(``disagreement``, ``confident_other``, ``boundary``) are three views of one piece of evidence and count once, by
the strongest. A sample's score is its most suspicious class's; samples that tie are ordered by all their reasons
added up (weight × value).

Checks (weight; what fires it):

==================  ======  ===============================================================================
``missing``          1.0    a class that (nearly) every other image has is absent
``side``             1.0    the class's centre lies on the other side of the image from where it belongs
``parts``            0.8    more or fewer separate parts than the class has (rule, else the dataset's usual)
``position``         0.7    the centre is far from where the class sits in the dataset
``area``             0.6    far larger or smaller than the class usually is (or outside the declared range)
``edges``            0.8    the outline runs where the image has no edge (shifted, eroded, dilated masks); the
                            outer outline only: what the class encloses (a facade's windows) is the enclosed
                            classes' outline and stays where it was when the class is moved
``coarse_outline``   0.8    the outline is a coarse polygon: far fewer vertices than the class's outlines need
``blob``             1.0    a part (of at least ``BLOB_MIN_SHARE`` of the image) is a near-perfect ellipse, far
                            rounder than the class's drawn outlines: a stray brush blob
``islands``          0.4    specks smaller than the minimum island size (a class of specks only is ``missing``)
``holes``            0.3    background enclosed by the class
``overlap``          0.9    two classes share pixels that may not (multi-label)
``disagreement``     1.0    1 − Dice against the model's prediction, far above the dataset's usual
``confident_other``  0.9    share of the class's pixels the model confidently gives to another class
                            (confident learning: per-class thresholds from the model's own mean confidence)
``boundary``         0.6    HD95 between the class's outline and the prediction's, far above the usual
==================  ======  ===============================================================================

The model checks count only as far as the model has earned it: per class by its usual Dice on the class
(:func:`_reliability`: a model that cannot segment windows does not judge window labels), per outline by the
image's edges (:func:`_edge_trust`: where label and model disagree about where an outline runs, the one whose
outline lies on the image's edges is believed).

"Far" is a robust z-score (distance from the median in units of 1.4826 × the median absolute deviation): below
2 nothing, 6 and more the full value. Model checks need a prediction made by a model that did not train on the
image (out-of-fold predictions), else it has memorised the very label it judges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from segstudio.core.types import ClassSchema
from segstudio.metrics.compare import background_ids, class_plane
from segstudio.metrics.label_rules import LabelRules

__all__ = ["CHECKS", "ClassFeatures", "Reason", "SampleFeatures", "SampleSuspicion", "measure_sample",
           "rank_dataset", "score_samples"]

#: check name -> (weight, one-line description)
CHECKS: dict[str, tuple[float, str]] = {
    "missing": (1.0, "a class nearly every image has is absent"),
    "side": (1.0, "the class lies on the wrong side of the image"),
    "parts": (0.8, "more or fewer separate parts than the class has"),
    "position": (0.7, "the class sits far from where it usually is"),
    "area": (0.6, "far larger or smaller than usual"),
    "edges": (0.8, "the outline does not follow the image's edges"),
    "coarse_outline": (0.8, "a coarse polygon outline"),
    "blob": (1.0, "a part is a perfect ellipse, unlike the class's drawn outlines"),
    "islands": (0.4, "specks smaller than the minimum island size"),
    "holes": (0.3, "background enclosed by the class"),
    "overlap": (0.9, "classes overlap that may not"),
    "disagreement": (1.0, "the model disagrees with the label"),
    "confident_other": (0.9, "the model confidently sees another class here"),
    "boundary": (0.6, "the outline is far from the model's"),
}

#: a class present in at least this share of the images is expected in every image
EXPECTED_SHARE = 0.9
#: below this many measured images a class's distribution is not learned (only rules apply)
MIN_FOR_STATS = 8
#: the size images are measured at (the longest side); masks keep their own size for counting
EDGE_SIDE = 512
#: the least spread of the island and hole counts, on their ``log(1 + n)`` scale (counts vary by factors: a facade
#: with 30 holes is not odd beside one with 20; one island where a class never has any is)
COUNT_SPREAD = 0.25
#: how far either side of an outline the image's edge is looked for, in the mask's own pixels (an annotator's
#: brush or a careless outline is off by that many of the image's pixels, whatever size it is measured at): an
#: outline grown, shrunk or moved by up to this much is still measured against the edge it left
EDGE_BAND_PX = 16
#: the least band, in rows of the gradient image (an outline of a 2048 px image is measured at ``EDGE_SIDE``)
MIN_EDGE_ROWS = 4

#: the least share of the image a part must cover to be measured for its shape (``ellipse_gap``)
BLOB_MIN_SHARE = 0.002
#: the least spread of ``log(ellipse_gap)``: outlines drawn with the same care differ by factors (a round window
#: drawn with 16 vertices is 0.01 off its ellipse, one with 40 vertices less)
ELLIPSE_SPREAD = 0.5


def edge_rows(scale: float) -> int:
    """The band of :data:`EDGE_BAND_PX` mask pixels in rows of a gradient image measured at ``scale``."""
    return max(MIN_EDGE_ROWS, int(round(EDGE_BAND_PX * scale)))


@dataclass(frozen=True, kw_only=True)
class ClassFeatures:
    class_id: int
    present: bool
    #: fraction of the image
    area: float = 0.0
    #: parts of at least the minimum island size; specks below it
    parts: int = 0
    islands: int = 0
    holes: int = 0
    #: centre (row, column) as fractions of the image
    cy: float = math.nan
    cx: float = math.nan
    #: outline vertices per 1,000 px of outline after a fine polygon approximation (coarse polygons need few)
    vertex_density: float = math.nan
    #: how well the outline sits on the image's edge: the mean gradient on the two pixel rows either side of the
    #: outline over the strongest mean gradient of any row within ``EDGE_BAND_PX`` px of it (1 = on the edge; a label
    #: grown, shrunk or shifted off its edge scores less, the edge being found a few rows away)
    edge_alignment: float = math.nan
    #: how far the roundest part (of at least ``BLOB_MIN_SHARE`` of the image) lies from an ellipse: the mean
    #: relative distance of its outline from the ellipse fitted to it (a painted blob ≈ 0.01, a drawn polygon ≈ 0.1)
    ellipse_gap: float = math.nan
    ellipse_box: tuple[int, int, int, int] | None = None
    #: bounding boxes (y0, y1, x0, x1) of the largest part and of the smallest extra part (for highlighting)
    box: tuple[int, int, int, int] | None = None
    extra_box: tuple[int, int, int, int] | None = None
    # with a prediction
    dice: float | None = None
    hd95: float | None = None
    confident_other: float | None = None
    #: the prediction's outline measured like ``edge_alignment``: where the label and the model disagree about an
    #: outline, the image's edges say which of the two to believe
    pred_edge_alignment: float | None = None
    #: the prediction's parts of at least the minimum island size
    pred_parts: int | None = None


@dataclass(frozen=True, kw_only=True)
class SampleFeatures:
    sample_id: str
    shape: tuple[int, int]
    classes: tuple[ClassFeatures, ...]
    #: class-id pairs that overlap, with the overlapping fraction of the image (multi-label)
    overlaps: tuple[tuple[int, int, float], ...] = ()
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reason:
    check: str
    class_id: int | None
    class_name: str
    #: the check's value in [0, 1] (before its weight)
    value: float
    text: str
    #: what to highlight: (y0, y1, x0, x1) in the mask's pixels
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, kw_only=True)
class SampleSuspicion:
    sample_id: str
    #: 0..1, higher = look first
    score: float
    #: strongest first
    reasons: tuple[Reason, ...]
    #: class name -> that class's score
    per_class: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "score": round(self.score, 6),
                "per_class": {k: round(v, 6) for k, v in self.per_class.items()},
                "reasons": [{"check": r.check, "class": r.class_name, "value": round(r.value, 4), "text": r.text,
                             "box": list(r.box) if r.box else None} for r in self.reasons],
                "error": self.error}


# measuring -----------------------------------------------------------------------------------------------------------
def _gray_small(image: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    img = image
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY) if img.shape[2] >= 3 else img[..., 0]
    img = img.astype(np.float32)
    scale = min(1.0, EDGE_SIDE / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    return img, scale


def _gradient(gray: np.ndarray) -> np.ndarray:
    import cv2

    blur = cv2.GaussianBlur(gray, (0, 0), 1.5)
    gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def _plane_features(plane: np.ndarray, *, class_id: int, shape: tuple[int, int], min_island_px: int,
                    grad: tuple[np.ndarray, float] | None) -> ClassFeatures:
    import cv2

    h, w = shape
    ys = np.flatnonzero(plane.any(axis=1))
    if ys.size == 0:
        return ClassFeatures(class_id=class_id, present=False)
    xs = np.flatnonzero(plane[ys[0]:ys[-1] + 1].any(axis=0))
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
    crop[1:-1, 1:-1] = plane[y0:y1, x0:x1]
    n, _, stats, cents = cv2.connectedComponentsWithStats(crop, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(areas >= min_island_px)
    order = big[np.argsort(-areas[big])] if big.size else np.argsort(-areas)[:1]
    main = int(order[0]) + 1

    def box_of(label: int) -> tuple[int, int, int, int]:
        bx, by, bw, bh = (int(v) for v in stats[label, :4])
        return (y0 + by - 1, y0 + by - 1 + bh, x0 + bx - 1, x0 + bx - 1 + bw)

    extra = int(order[-1]) + 1 if len(order) > 1 else None
    total = float(areas.sum())
    cy = float((cents[1:, 1] * areas).sum() / total + y0 - 1) / h
    cx = float((cents[1:, 0] * areas).sum() / total + x0 - 1) / w
    contours, hierarchy = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    parents = hierarchy[0][:, 3] if hierarchy is not None else np.empty(0, np.int32)
    holes = int(np.count_nonzero(parents != -1))
    outer = [c for c, p in zip(contours, parents, strict=True) if p == -1 and len(c) >= 8]
    perim = float(sum(cv2.arcLength(c, True) for c in outer))
    vertices = sum(len(cv2.approxPolyDP(c, 1.5, True)) for c in outer)
    density = 1000.0 * vertices / perim if perim > 0 else math.nan
    gap, gap_box = math.nan, None
    for c in outer:
        if len(c) < 12 or cv2.contourArea(c) < BLOB_MIN_SHARE * h * w:
            continue
        g = _ellipse_gap(c)
        if not gap <= g:
            bx, by, bw, bh = cv2.boundingRect(c)
            gap, gap_box = g, (y0 + by - 1, y0 + by - 1 + bh, x0 + bx - 1, x0 + bx - 1 + bw)
    edge = math.nan
    if grad is not None and outer:
        edge = _edge_alignment(plane, grad[0], outer_only=True, rows=edge_rows(grad[1]))
    return ClassFeatures(class_id=class_id, present=True, area=total / (h * w), parts=int(big.size),
                         islands=int(np.count_nonzero(areas < min_island_px)), holes=holes, cy=cy, cx=cx,
                         vertex_density=density, edge_alignment=edge, ellipse_gap=gap, ellipse_box=gap_box,
                         box=box_of(main),
                         extra_box=box_of(extra) if extra is not None else None)


def _ellipse_gap(contour: np.ndarray) -> float:
    """The mean relative distance of an outline's points from the ellipse fitted to them: ``|r - 1|`` with ``r``
    the point's radius in the ellipse's own axes (0 on the ellipse)."""
    import cv2

    (ex, ey), (ew, eh), angle = cv2.fitEllipse(contour)
    if ew <= 0 or eh <= 0:
        return math.nan
    pts = contour.reshape(-1, 2).astype(np.float64) - (ex, ey)
    t = math.radians(angle)
    u = pts[:, 0] * math.cos(t) + pts[:, 1] * math.sin(t)
    v = -pts[:, 0] * math.sin(t) + pts[:, 1] * math.cos(t)
    r = np.sqrt((u / (ew / 2.0)) ** 2 + (v / (eh / 2.0)) ** 2)
    return float(np.mean(np.abs(r - 1.0)))


def _edge_alignment(plane: np.ndarray, mag: np.ndarray, *, outer_only: bool = False, rows: int) -> float:
    """The outline's gradient profile: the image gradient averaged over the rows of pixels at each signed distance
    (-``rows`` + 1 inside .. ``rows`` outside) from the outline, and the share of its peak found on the
    two rows at the outline. Measured at the gradient's scale, in the class's bounding box."""
    import cv2

    mh, mw = mag.shape
    small = plane
    if small.shape != (mh, mw):
        small = cv2.resize(plane.view(np.uint8), (mw, mh), interpolation=cv2.INTER_NEAREST).astype(bool)
    ys = np.flatnonzero(small.any(axis=1))
    if ys.size == 0:
        return math.nan
    xs = np.flatnonzero(small[ys[0]:ys[-1] + 1].any(axis=0))
    d = max(1, rows)
    y0, y1 = max(0, int(ys[0]) - d), min(mh, int(ys[-1]) + 1 + d)
    x0, x1 = max(0, int(xs[0]) - d), min(mw, int(xs[-1]) + 1 + d)
    inside = small[y0:y1, x0:x1].view(np.uint8)
    if outer_only:  # holes filled: what a class encloses (the windows of a facade) is the enclosed classes' outline
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        inside = np.zeros_like(inside)
        cv2.drawContours(inside, contours, -1, 1, thickness=cv2.FILLED)
    if inside.all():
        return math.nan
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
    row = np.where(inside > 0, 1.0 - np.rint(d_in), np.rint(d_out)).astype(np.int32)  # 0 inside, 1 outside the line
    sel = (row > -d) & (row <= d)
    bins = row[sel] + d - 1
    sums = np.bincount(bins, weights=mag[y0:y1, x0:x1][sel], minlength=2 * d)
    counts = np.bincount(bins, minlength=2 * d)
    if counts[d - 1] == 0 or counts[d] == 0:
        return math.nan
    profile = sums / np.maximum(counts, 1)
    peak = float(profile.max())
    return float(profile[d - 1:d + 1].mean() / peak) if peak > 0 else math.nan


def _count_parts(plane: np.ndarray, min_px: int) -> int:
    import cv2

    ys = np.flatnonzero(plane.any(axis=1))
    if ys.size == 0:
        return 0
    xs = np.flatnonzero(plane[ys[0]:ys[-1] + 1].any(axis=0))
    crop = np.ascontiguousarray(plane[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]).view(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px))


def _model_figures(plane: np.ndarray, pred_plane: np.ndarray | None, *, scale: float) -> tuple[float | None, float | None]:
    if pred_plane is None:
        return None, None
    inter = int(np.count_nonzero(plane & pred_plane))
    total = int(np.count_nonzero(plane)) + int(np.count_nonzero(pred_plane))
    dice = 1.0 if total == 0 else 2.0 * inter / total
    hd = None
    if plane.any() and pred_plane.any():
        import cv2

        from segstudio.metrics.scores import hd95

        if scale < 1.0:  # measured at the edge size; reported in the mask's pixels
            size = (max(1, round(plane.shape[1] * scale)), max(1, round(plane.shape[0] * scale)))
            a = cv2.resize(plane.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
            b = cv2.resize(pred_plane.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
            hd = float(hd95(a, b)) / scale if a.any() and b.any() else None
        else:
            hd = float(hd95(plane, pred_plane))
    return dice, hd


def measure_sample(sample_id: str, mask: np.ndarray, *, schema: ClassSchema, image: np.ndarray | None = None,
                   prediction: np.ndarray | None = None, probabilities: np.ndarray | None = None,
                   thresholds: np.ndarray | None = None, min_island_px: int = 16) -> SampleFeatures:
    """Pass one for one sample: the figures of every assessed class (not background, not ignored).

    ``probabilities``: ``(K, H, W)`` the model's class probabilities, in the order of ``schema``'s ids; with
    ``thresholds`` (``(K,)``, :func:`class_thresholds`) the ``confident_other`` share is measured."""
    h, w = mask.shape[:2]
    skip = set(background_ids(schema)) | {c.id for c in schema if c.ignore}
    ids = [c.id for c in schema if c.id not in skip]
    grad = None
    scale = min(1.0, EDGE_SIDE / max(h, w))
    if image is not None and image.shape[:2] == (h, w):
        gray, scale = _gray_small(image)
        grad = (_gradient(gray), scale)
    pred = prediction if prediction is not None and prediction.shape == mask.shape else None
    conf_other: dict[int, float] = {}
    if probabilities is not None and thresholds is not None and probabilities.shape[1:] == mask.shape \
            and not schema.multilabel:
        conf_other = _confident_other(mask, probabilities, thresholds, schema)
    out = []
    planes: dict[int, np.ndarray] = {}
    for cid in ids:
        plane = class_plane(mask, schema=schema, class_id=cid)
        f = _plane_features(plane, class_id=cid, shape=(h, w), min_island_px=min_island_px, grad=grad)
        if pred is not None:
            pred_plane = class_plane(pred, schema=schema, class_id=cid)
            dice, hd = _model_figures(plane, pred_plane, scale=scale)
            pe = (_edge_alignment(pred_plane, grad[0], rows=edge_rows(grad[1]))
                  if grad is not None and f.present and pred_plane.any() else None)
            f = replace(f, dice=dice, hd95=hd, pred_edge_alignment=pe,
                        pred_parts=_count_parts(pred_plane, min_island_px) if f.present else None)
        if cid in conf_other:
            f = replace(f, confident_other=conf_other[cid])
        out.append(f)
        if schema.multilabel and f.present:
            planes[cid] = plane
    overlaps = []
    if schema.multilabel:
        keys = sorted(planes)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                n = int(np.count_nonzero(planes[a] & planes[b]))
                if n:
                    overlaps.append((a, b, n / (h * w)))
    return SampleFeatures(sample_id=sample_id, shape=(h, w), classes=tuple(out), overlaps=tuple(overlaps))


def class_thresholds(pairs: Iterable[tuple[np.ndarray, np.ndarray]], schema: ClassSchema) -> np.ndarray:
    """Confident learning's per-class thresholds: for each class, the model's mean probability of that class over
    the pixels labelled with it (``pairs``: ``(mask, probabilities (K, H, W))``)."""
    ids = list(schema.ids)
    sums = np.zeros(len(ids))
    counts = np.zeros(len(ids))
    for mask, probs in pairs:
        for k, cid in enumerate(ids):
            sel = mask == cid
            n = int(np.count_nonzero(sel))
            if n:
                sums[k] += float(probs[k][sel].sum())
                counts[k] += n
    out: np.ndarray = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
    return out


def _confident_other(mask: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
                     schema: ClassSchema) -> dict[int, float]:
    ids = list(schema.ids)
    above = probs >= thresholds[:, None, None]
    out = {}
    for k, cid in enumerate(ids):
        sel = mask == cid
        n = int(np.count_nonzero(sel))
        if not n:
            continue
        others = np.delete(above, k, axis=0)
        # a pixel labelled ``cid`` whose probability of some other class reaches that class's threshold, while its
        # own does not: the model confidently says "another class" here
        flagged = sel & others.any(axis=0) & ~above[k]
        out[cid] = float(np.count_nonzero(flagged)) / n
    return out


# scoring -------------------------------------------------------------------------------------------------------------
def _robust(values: Sequence[float], *, floor: float = 1e-6) -> tuple[float, float] | None:
    """Median and spread (1.4826 × MAD, at least 5 % of the median and ``floor``: counts spread by at least 1)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size < MIN_FOR_STATS:
        return None
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    spread = max(mad, 0.05 * abs(med), floor)
    return med, spread


def _outlier(x: float | None, stats: tuple[float, float] | None, *, side: str = "both") -> float:
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


def _count(n: int) -> float:
    return 1.0 - 0.5**n


@dataclass
class _ClassStats:
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
    #: how far the model's checks are believed on this class (:func:`_reliability`)
    reliability: float = 1.0
    #: the model's median Dice on the images that have the class (None without predictions)
    model_dice: float | None = None


def _class_stats(feats: Sequence[SampleFeatures], cid: int) -> _ClassStats:
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
    return _ClassStats(
        present=len(present), measured=len(fs), same_side=same, model_dice=model_dice,
        reliability=_reliability(model_dice),
        islands=_robust([math.log1p(f.islands) for f in present], floor=COUNT_SPREAD),
        holes=_robust([math.log1p(f.holes) for f in present], floor=COUNT_SPREAD),
        ellipse=_robust([math.log(f.ellipse_gap) for f in present if f.ellipse_gap > 0], floor=ELLIPSE_SPREAD),
        present_share=len(present) / len(fs) if fs else 0.0,
        area=_robust([math.log(f.area) for f in present if f.area > 0]), cy=_robust([f.cy for f in present]), cx=_robust([f.cx for f in present]),
        density=_robust([f.vertex_density for f in present]), edge=_robust([f.edge_alignment for f in present]),
        parts_mode=mode, parts_share=mode_share,
        dice_loss=_robust([1.0 - f.dice for f in fs if f.dice is not None]),
        hd95=_robust([f.hd95 for f in present if f.hd95 is not None]),
        conf=_robust([f.confident_other for f in present if f.confident_other is not None]),
    )


#: the model's median Dice on a class below which its checks on that class are not believed at all, and from which
#: they are believed fully
UNRELIABLE_DICE, RELIABLE_DICE = 0.5, 0.8


def _reliability(model_dice: float | None) -> float:
    """A model that cannot segment a class cannot judge its labels: its checks on a class count in proportion to
    its usual (median, out-of-fold) Dice on it, nothing at :data:`UNRELIABLE_DICE`, fully from
    :data:`RELIABLE_DICE`. Too few images to tell: believed."""
    if model_dice is None:
        return 1.0
    return float(min(1.0, max(0.0, (model_dice - UNRELIABLE_DICE) / (RELIABLE_DICE - UNRELIABLE_DICE))))


def _side_of(f: ClassFeatures) -> tuple[str, str]:
    return ("left" if f.cx < 0.5 else "right"), ("top" if f.cy < 0.5 else "bottom")


#: how much a model check is believed where the image's edges side with the label instead (see :func:`_edge_trust`)
LEAST_TRUST = 0.2


def _edge_trust(f: ClassFeatures) -> float:
    """How far to believe the model where it disagrees with the label about an outline: the image's edges arbitrate.
    1 where the model's outline lies on the image's edges clearly better than the label's (an eroded, grown or
    shifted label), ½ where both fit them equally (a hard image the model gets wrong as often as the label is
    wrong), down to :data:`LEAST_TRUST` where the label's fits clearly better. Only where the two largely overlap
    (Dice ≥ ½), have as many parts and both outlines were measured: a missing, swapped or merged class, a stray
    part or a lost one is not a question of where an outline runs."""
    le, pe = f.edge_alignment, f.pred_edge_alignment
    if f.dice is None or f.dice < 0.5 or pe is None or not (math.isfinite(le) and math.isfinite(pe)) \
            or f.pred_parts != f.parts:
        return 1.0
    return float(min(1.0, max(LEAST_TRUST, 0.5 + 2.5 * (pe - le))))


def _trust_words(f: ClassFeatures, trust: float) -> str:
    if trust >= 1.0 or f.pred_edge_alignment is None:
        return ""
    return (f"; the image's edges side with the label as much as with the model (edge alignment "
            f"{f.edge_alignment:.2f} against the model's {f.pred_edge_alignment:.2f})" if trust >= 0.5 else
            f"; the image's edges side with the label (edge alignment {f.edge_alignment:.2f} against the "
            f"model's {f.pred_edge_alignment:.2f})")


def _reliability_words(st: _ClassStats) -> str:
    if st.reliability >= 1.0 or st.model_dice is None:
        return ""
    return f"; believed in part: the model's usual Dice on this class is {st.model_dice:.2f}"


def _speck_reason(f: ClassFeatures, st: _ClassStats, name: str, add: Callable[..., None]) -> None:
    if f.islands:
        v = _outlier(math.log1p(f.islands), st.islands, side="high") if st.islands is not None else _count(f.islands)
        add("islands", v, f"{name} has {f.islands} speck(s) smaller than the minimum island size", f.extra_box)


def _class_reasons(f: ClassFeatures, st: _ClassStats, name: str, rules: LabelRules,
                   n_images: int) -> list[Reason]:
    cid = f.class_id
    rule = rules.of(cid)
    out: list[Reason] = []

    def add(check: str, value: float, text: str, box: tuple[int, int, int, int] | None = None) -> None:
        if value > 0.0:
            out.append(Reason(check=check, class_id=cid, class_name=name, value=min(1.0, value), text=text,
                              box=box if box is not None else f.box))

    if not f.present or f.parts == 0:
        # a class of specks only has no body to measure: it is missing, and its specks are specks
        if f.present:
            _speck_reason(f, st, name, add)
        need = rule is not None and rule.components is not None and rule.components[0] > 0
        others = st.measured - 1
        share = st.present / others if others > 0 else 0.0
        if need or (others >= MIN_FOR_STATS and share >= EXPECTED_SHARE):
            if need:
                why = "the rules require it"
            elif st.present == others:
                why = f"all {others} other images have it"
            else:
                why = f"{st.present} of the {others} other images have it"
            left = f"; only {f.islands} speck(s) of it are left" if f.present else ""
            add("missing", 1.0, f"{name} is missing ({why}{left})")
        if f.dice is not None and f.dice < 0.5:
            add("disagreement", st.reliability, f"{name}: the model finds it here, the label has none"
                                                f"{_reliability_words(st)}")
        return out
    # declared rules
    if rule is not None and rule.components is not None:
        lo, hi = rule.components
        if not lo <= f.parts <= hi:
            want = str(lo) if lo == hi else f"{lo}–{hi}"
            add("parts", 1.0, f"{name} has {f.parts} separate parts where it has {want}",
                f.extra_box if f.parts > hi else f.box)
    elif st.parts_mode is not None and f.parts != st.parts_mode:
        # as strong as the dataset is unanimous: a part count 80 % of the images share is a habit, not a rule
        add("parts", min(1.0, 0.6 + 0.2 * abs(f.parts - st.parts_mode)) * min(1.0, (st.parts_share - 0.75) / 0.2),
            f"{name} has {f.parts} separate parts; in this dataset it has {st.parts_mode}",
            f.extra_box if f.parts > st.parts_mode else f.box)
    if rule is not None and rule.area is not None and not rule.area[0] <= f.area <= rule.area[1]:
        add("area", 1.0, f"{name} covers {f.area:.1%} of the image, outside the declared {rule.area[0]:.1%}–"
                         f"{rule.area[1]:.1%}")
    else:
        # on a log scale: areas vary by factors, and a class twice its usual size is as odd as one half of it
        v = _outlier(math.log(f.area), st.area) if f.area > 0 else 0.0
        if v and st.area is not None:
            usual = math.exp(st.area[0])
            word = "larger" if f.area > usual else "smaller"
            add("area", v, f"{name} is much {word} than usual ({f.area:.1%} of the image; usually {usual:.1%})")
    side_rule = rule.image_side if rule is not None else None
    if side_rule is not None:
        lr, tb = _side_of(f)
        if side_rule not in (lr, tb):
            add("side", 1.0, f"{name} lies on the image's {lr if side_rule in ('left', 'right') else tb} side, "
                             f"where the rules put it on the {side_rule}")
    elif (st.cx is not None and math.isfinite(f.cx) and abs(st.cx[0] - 0.5) > 0.15 and st.same_side >= 0.95
          and (f.cx - 0.5) * (st.cx[0] - 0.5) < 0):
        add("side", 1.0, f"{name} lies on the other side of the image (centre at {f.cx:.0%} of the width, usually "
                         f"{st.cx[0]:.0%}): left and right swapped?")
    pos = max(_outlier(f.cx, st.cx), _outlier(f.cy, st.cy))
    if pos and st.cx is not None and st.cy is not None:
        add("position", pos, f"{name} sits away from its usual place (centre at {f.cx:.0%}, {f.cy:.0%}; usually "
                             f"{st.cx[0]:.0%}, {st.cy[0]:.0%})")
    v = _outlier(f.edge_alignment, st.edge, side="low")
    if v and st.edge is not None:
        add("edges", v, f"{name}'s outline runs beside the image's edges, not on them (alignment "
                        f"{f.edge_alignment:.2f}, usually {st.edge[0]:.2f}): grown, shrunk or shifted?")
    v = _outlier(f.vertex_density, st.density, side="low")
    if v and st.density is not None:
        add("coarse_outline", v, f"{name}'s outline is a coarse polygon ({f.vertex_density:.0f} vertices per 1,000 px "
                                 f"of outline; usually {st.density[0]:.0f})")
    v = _outlier(math.log(f.ellipse_gap), st.ellipse, side="low") if f.ellipse_gap > 0 else 0.0
    if v and st.ellipse is not None:
        add("blob", v, f"{name} has a part that is a near-perfect ellipse ({f.ellipse_gap:.1%} off the ellipse fitted "
                       f"to it; its parts usually {math.exp(st.ellipse[0]):.0%}): a stray brush blob?", f.ellipse_box)
    # specks and holes: counted against what is usual for the class (a facade encloses its windows)
    _speck_reason(f, st, name, add)
    if f.holes:
        v = _outlier(math.log1p(f.holes), st.holes, side="high") if st.holes is not None else _count(f.holes)
        add("holes", v, f"{name} encloses {f.holes} hole(s)")
    # against the model, believed as far as the image's edges side with it (:func:`_edge_trust`)
    # and as far as the model can segment this class at all (:func:`_reliability`)
    trust = _edge_trust(f) * st.reliability
    why = _trust_words(f, _edge_trust(f)) + _reliability_words(st)
    if f.dice is not None:
        v = _outlier(1.0 - f.dice, st.dice_loss, side="high")
        if st.dice_loss is None:
            v = max(0.0, min(1.0, (0.8 - f.dice) / 0.5))
        if v:
            add("disagreement", v * trust, f"the model disagrees with {name} (Dice {f.dice:.2f}){why}")
    if f.hd95 is not None:
        v = _outlier(f.hd95, st.hd95, side="high")
        if v:
            add("boundary", v * trust, f"{name}'s outline is {f.hd95:.0f} px from the model's (HD95){why}")
    if f.confident_other is not None:
        v = _outlier(f.confident_other, st.conf, side="high")
        if st.conf is None:
            v = min(1.0, f.confident_other * 2.0)
        if v:
            add("confident_other", v * trust, f"the model is confident that {f.confident_other:.0%} of {name} is "
                                              f"another class{why}")
    return out


def score_samples(features: Sequence[SampleFeatures], schema: ClassSchema, *,
                  rules: LabelRules | None = None) -> list[SampleSuspicion]:
    """Pass two: every sample's suspicion against the dataset's distributions and the rules, most suspicious
    first (ties in dataset order)."""
    rules = rules or LabelRules()
    names = {c.id: c.name for c in schema}
    ok = [f for f in features if f.error is None]
    ids = sorted({c.class_id for f in ok for c in f.classes})
    stats = {cid: _class_stats(ok, cid) for cid in ids}
    out = []
    for order, s in enumerate(features):
        if s.error is not None:
            out.append((order, SampleSuspicion(sample_id=s.sample_id, score=0.0, reasons=(), error=s.error)))
            continue
        reasons: list[Reason] = []
        per_class: dict[str, float] = {}
        for f in s.classes:
            rs = _class_reasons(f, stats[f.class_id], names.get(f.class_id, str(f.class_id)), rules, len(ok))
            reasons += rs
            per_class[names.get(f.class_id, str(f.class_id))] = _combine(rs)
        for a, b, frac in s.overlaps:
            if not rules.overlap_allowed(a, b) and (rules.may_overlap or not rules.empty):
                r = Reason(check="overlap", class_id=a, class_name=names.get(a, str(a)), value=min(1.0, 0.5 + frac * 50),
                           text=f"{names.get(a, a)} and {names.get(b, b)} overlap ({frac:.2%} of the image), which the "
                                "rules do not allow")
                reasons.append(r)
                per_class[r.class_name] = max(per_class.get(r.class_name, 0.0), _combine([r]))
        score = max(per_class.values(), default=0.0)
        reasons.sort(key=lambda r: -CHECKS[r.check][0] * r.value)
        out.append((order, SampleSuspicion(sample_id=s.sample_id, score=score, reasons=tuple(reasons),
                                           per_class=per_class)))
    out.sort(key=lambda t: (t[1].error is not None, -t[1].score, -_evidence(t[1].reasons), t[0]))
    return [s for _, s in out]


def _evidence(reasons: Sequence[Reason]) -> float:
    """All of a sample's reasons added up (weight × value): what orders samples whose scores tie (several at 1.0,
    each with one certain reason): the one with more, or stronger, further reasons first."""
    return float(sum(CHECKS[r.check][0] * r.value for r in reasons))


#: the checks that read the model's prediction: three views of one piece of evidence (the model disagrees), so a
#: class's score counts only the strongest of them
MODEL_CHECKS = frozenset({"disagreement", "confident_other", "boundary"})


def _combine(reasons: Sequence[Reason]) -> float:
    keep = 1.0
    model = 0.0
    for r in reasons:
        if r.check in MODEL_CHECKS:
            model = max(model, CHECKS[r.check][0] * r.value)
        else:
            keep *= 1.0 - CHECKS[r.check][0] * r.value
    return 1.0 - keep * (1.0 - model)


def rank_dataset(dataset: Any, *, masks: Callable[[str], np.ndarray | None] | None = None,
                 predictions: Callable[[str], np.ndarray | None] | None = None,
                 probabilities: Callable[[str], np.ndarray | None] | None = None,
                 images: Callable[[str], np.ndarray] | None = None, rules: LabelRules | None = None,
                 sample_ids: Sequence[str] | None = None, workers: int = 2, use_images: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> list[SampleSuspicion]:
    """Rank the labels of ``dataset`` (a ``segstudio.datasets.base.Dataset``), most suspicious first.

    ``masks``: the labels to judge (default the GT; a correction store or a corrupted copy can stand in).
    ``predictions`` / ``probabilities``: the model's, per sample id (out-of-fold, so the model has not learned the
    label it judges); None = model-free checks only. ``images``: default ``dataset.load_image``; ``use_images=False``
    skips the image (no ``edges`` check). A sample whose files cannot be read is listed last with its error."""
    from segstudio.core.errors import SegstudioError

    schema: ClassSchema = dataset.schema
    ids = list(sample_ids) if sample_ids is not None else [s.id for s in dataset.samples]
    load_mask = masks or dataset.load_gt
    load_image = images or dataset.load_image
    thresholds = None
    if probabilities is not None:
        thresholds = class_thresholds(((m, p) for m, p in ((load_mask(i), probabilities(i)) for i in ids)
                                       if m is not None and p is not None), schema)

    def measure(sid: str) -> SampleFeatures:
        try:
            mask = load_mask(sid)
            if mask is None:
                return SampleFeatures(sample_id=sid, shape=(0, 0), classes=(), error="no label")
            image = load_image(sid) if use_images else None
            return measure_sample(sid, mask, schema=schema, image=image,
                                  prediction=predictions(sid) if predictions is not None else None,
                                  probabilities=probabilities(sid) if probabilities is not None else None,
                                  thresholds=thresholds)
        except (SegstudioError, OSError, ValueError) as exc:
            return SampleFeatures(sample_id=sid, shape=(0, 0), classes=(), error=str(exc).splitlines()[0])

    feats: list[SampleFeatures] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segstudio-quality") as pool:
        for i, f in enumerate(pool.map(measure, ids)):
            feats.append(f)
            if progress is not None:
                progress(i + 1, len(ids))
    return score_samples([f for f in feats if f.error != "no label"], schema, rules=rules)
