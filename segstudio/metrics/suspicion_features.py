"""Label suspicion, the first pass: what each mask of a dataset measures, class by class.

Area, parts, islands, holes, centre, how many vertices its outline needs, how well its outline follows the image's
edges, how close its roundest part is to an ellipse (a stray brush blob) and, when a prediction is given, Dice, the
boundary distance (HD95) and, with the model's probabilities, the share of pixels the model confidently gives to
another class (confident learning). Figures only: :mod:`segstudio.metrics.suspicion` learns each class's
distribution over the dataset and turns them into checks, reasons and scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from segstudio.core.content import content_box
from segstudio.core.types import ClassSchema
from segstudio.metrics.compare import background_ids, class_plane
from segstudio.metrics.edge_fit import Band, EdgeFit, edge_fit, outline_band
from segstudio.metrics.outline_fit import OutlineFit, fit_to_prediction

__all__ = ["BLOB_MIN_SHARE", "EDGE_BAND_PX", "ClassFeatures", "SampleFeatures", "class_thresholds",
           "confident_other", "edge_rows", "measure_sample"]

#: the size images are measured at (the longest side); masks keep their own size for counting
EDGE_SIDE = 512
#: how far either side of an outline the image's edge is looked for, in the mask's own pixels (an annotator's
#: brush or a careless outline is off by that many of the image's pixels, whatever size it is measured at): an
#: outline grown, shrunk or moved by up to this much is still measured against the edge it left
EDGE_BAND_PX = 16
#: the least band, in rows of the gradient image (an outline of a 2048 px image is measured at ``EDGE_SIDE``)
MIN_EDGE_ROWS = 4

#: the least share of the image a part must cover to be measured for its shape (``ellipse_gap``)
BLOB_MIN_SHARE = 0.002

def edge_rows(scale: float) -> int:
    """The band of :data:`EDGE_BAND_PX` mask pixels in rows of a gradient image measured at ``scale``."""
    return max(MIN_EDGE_ROWS, int(round(EDGE_BAND_PX * scale)))


@dataclass(frozen=True, kw_only=True)
class ClassFeatures:
    class_id: int
    present: bool
    #: fraction of the image (of its content, without constant bands along its sides: :func:`content_box`)
    area: float = 0.0
    #: parts of at least the minimum island size; specks below it
    parts: int = 0
    islands: int = 0
    holes: int = 0
    #: centre (row, column) as fractions of the image (of its content box)
    cy: float = math.nan
    cx: float = math.nan
    #: outline vertices per 1,000 px of outline after a fine polygon approximation (coarse polygons need few)
    vertex_density: float = math.nan
    #: how well the outline sits on the image's edge: the mean gradient on the two pixel rows either side of the
    #: outline over the strongest mean gradient of any row within ``EDGE_BAND_PX`` px of it (1 = on the edge; a label
    #: grown, shrunk or shifted off its edge scores less, the edge being found a few rows away)
    edge_alignment: float = math.nan
    #: how much more edge the outline would meet if it were grown, shrunk or moved (:mod:`edge_fit`)
    edge_fit: EdgeFit | None = None
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
    #: how much better the label agrees with the prediction moved or grown (:mod:`segstudio.metrics.outline_fit`)
    fit: OutlineFit | None = None


@dataclass(frozen=True, kw_only=True)
class SampleFeatures:
    sample_id: str
    shape: tuple[int, int]
    classes: tuple[ClassFeatures, ...]
    #: class-id pairs that overlap, with the overlapping fraction of the image (multi-label)
    overlaps: tuple[tuple[int, int, float], ...] = ()
    error: str | None = None
    #: the image's content (:func:`content_box`), which areas and centres are fractions of; None: the whole image
    frame: tuple[int, int, int, int] | None = None


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


class _Gradient(NamedTuple):
    """The image's gradient at the edge size: magnitude, the image pixels per mask pixel, and its two components."""
    mag: np.ndarray
    scale: float
    gx: np.ndarray
    gy: np.ndarray


def _gradient(gray: np.ndarray, scale: float) -> _Gradient:
    import cv2

    blur = cv2.GaussianBlur(gray, (0, 0), 1.5)
    gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3)
    return _Gradient(cv2.magnitude(gx, gy), scale, gx, gy)


def _plane_features(plane: np.ndarray, *, class_id: int, shape: tuple[int, int], min_island_px: int,
                    grad: _Gradient | None,
                    frame: tuple[int, int, int, int] | None = None) -> ClassFeatures:
    """``frame``: the image's content (:func:`content_box`), to which area and centre are relative."""
    import cv2

    h, w = shape
    fy0, fy1, fx0, fx1 = frame or (0, h, 0, w)
    fh, fw = fy1 - fy0, fx1 - fx0
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
    cy = float((cents[1:, 1] * areas).sum() / total + y0 - 1 - fy0) / fh
    cx = float((cents[1:, 0] * areas).sum() / total + x0 - 1 - fx0) / fw
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
    edge, moved = math.nan, None
    if grad is not None and outer:
        got = _band(plane, grad, outer_only=True)
        if got is not None:
            band, box = got
            by0, by1, bx0, bx1 = box
            edge = _edge_alignment(band, box, grad.mag)
            moved = edge_fit(band, grad.gx[by0:by1, bx0:bx1], grad.gy[by0:by1, bx0:bx1], scale=grad.scale)
    return ClassFeatures(class_id=class_id, present=True, area=total / (fh * fw), parts=int(big.size),
                         islands=int(np.count_nonzero(areas < min_island_px)), holes=holes, cy=cy, cx=cx,
                         vertex_density=density, edge_alignment=edge, edge_fit=moved, ellipse_gap=gap, ellipse_box=gap_box,
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


def _band(plane: np.ndarray, grad: _Gradient, *, outer_only: bool = False) -> tuple[Band, tuple[int, int, int, int]] | None:
    """The plane's outline at the gradient's scale, in its bounding box plus the edge band (``edge_rows``) on every
    side, and that box (y0, y1, x0, x1) in the gradient's pixels. ``outer_only``: holes filled (what a class
    encloses, the windows of a facade, is the enclosed classes' outline). None: nothing to measure."""
    import cv2

    mh, mw = grad.mag.shape
    d = edge_rows(grad.scale)
    small = plane
    if small.shape != (mh, mw):
        small = cv2.resize(plane.view(np.uint8), (mw, mh), interpolation=cv2.INTER_NEAREST).astype(bool)
    ys = np.flatnonzero(small.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(small[ys[0]:ys[-1] + 1].any(axis=0))
    y0, y1 = max(0, int(ys[0]) - d), min(mh, int(ys[-1]) + 1 + d)
    x0, x1 = max(0, int(xs[0]) - d), min(mw, int(xs[-1]) + 1 + d)
    inside = small[y0:y1, x0:x1].view(np.uint8)
    if outer_only:
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        inside = np.zeros_like(inside)
        cv2.drawContours(inside, contours, -1, 1, thickness=cv2.FILLED)
    band = outline_band(np.ascontiguousarray(inside), d)
    return (band, (y0, y1, x0, x1)) if band is not None else None


def _edge_alignment(band: Band, box: tuple[int, int, int, int], mag: np.ndarray) -> float:
    """The outline's gradient profile: the image gradient averaged over the rows of pixels at each signed distance
    (-``rows`` + 1 inside .. ``rows`` outside) from the outline, and the share of its peak found on the
    two rows at the outline. Measured at the gradient's scale, in the class's bounding box."""
    y0, y1, x0, x1 = box
    row, d = band.row, band.rows
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
    frame = None
    if image is not None and image.shape[:2] == (h, w):
        gray, scale = _gray_small(image)
        grad = _gradient(gray, scale)
        frame = content_box(image)
    pred = prediction if prediction is not None and prediction.shape == mask.shape else None
    conf_other: dict[int, float] = {}
    if probabilities is not None and thresholds is not None and probabilities.shape[1:] == mask.shape \
            and not schema.multilabel:
        conf_other = confident_other(mask, probabilities, thresholds, schema)
    out = []
    planes: dict[int, np.ndarray] = {}
    for cid in ids:
        plane = class_plane(mask, schema=schema, class_id=cid)
        f = _plane_features(plane, class_id=cid, shape=(h, w), min_island_px=min_island_px, grad=grad, frame=frame)
        if pred is not None:
            pred_plane = class_plane(pred, schema=schema, class_id=cid)
            dice, hd = _model_figures(plane, pred_plane, scale=scale)
            pe = None
            if grad is not None and f.present and pred_plane.any():
                pband = _band(pred_plane, grad)
                pe = _edge_alignment(*pband, grad.mag) if pband is not None else math.nan
            f = replace(f, dice=dice, hd95=hd, pred_edge_alignment=pe,
                        pred_parts=_count_parts(pred_plane, min_island_px) if f.present else None,
                        fit=fit_to_prediction(plane, pred_plane) if dice is not None and dice < 1.0 else None)
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
    return SampleFeatures(sample_id=sample_id, shape=(h, w), classes=tuple(out), overlaps=tuple(overlaps), frame=frame)


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


def confident_other(mask: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
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
