"""Pixel geometry for editing: bounding boxes, brush footprints swept along a segment, polygon rasters.

Coordinates: a pointer position ``(x, y)`` is in image pixels as floats; pixel ``(row i, col j)`` covers
``[j, j + 1) x [i, i + 1)`` and its centre is ``(j + 0.5, i + 0.5)``. A footprint contains the pixels whose centre
lies inside the shape, plus the pixels a 1-px line between the two end pixels crosses, so that a thin brush
moved fast never leaves a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

BrushShape = Literal["round", "square"]
BRUSH_SHAPES: tuple[str, ...] = ("round", "square")

# cv2 rasterises polygons in fixed point; 8 fractional bits keep sub-pixel vertices where the user put them.
_POLY_SHIFT = 8


@dataclass(frozen=True)
class BBox:
    """Half-open pixel rectangle: rows ``y0 <= i < y1``, columns ``x0 <= j < x1``. Empty when either side <= 0."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def area(self) -> int:
        return self.height * self.width

    @property
    def is_empty(self) -> bool:
        return self.height == 0 or self.width == 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``arr[bbox.slices]`` is the region (row slice, column slice)."""
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))

    @staticmethod
    def full(shape: tuple[int, ...]) -> BBox:
        """The whole image of ``shape`` (``(H, W)`` or longer; extra axes ignored)."""
        return BBox(0, 0, int(shape[0]), int(shape[1]))

    def union(self, other: BBox | None) -> BBox:
        if other is None or other.is_empty:
            return self
        if self.is_empty:
            return other
        return BBox(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def intersect(self, other: BBox) -> BBox:
        b = BBox(max(self.y0, other.y0), max(self.x0, other.x0), min(self.y1, other.y1), min(self.x1, other.x1))
        return b if not b.is_empty else BBox(0, 0, 0, 0)

    def clip(self, shape: tuple[int, ...]) -> BBox:
        """This box cut to an image of ``shape``."""
        return self.intersect(BBox.full(shape))

    def pad(self, n: int) -> BBox:
        return BBox(self.y0 - n, self.x0 - n, self.y1 + n, self.x1 + n)

    def contains(self, other: BBox) -> bool:
        return other.is_empty or (
            self.y0 <= other.y0 and self.x0 <= other.x0 and self.y1 >= other.y1 and self.x1 >= other.x1
        )

    def offset_within(self, outer: BBox) -> BBox:
        """This box in the coordinates of ``outer``'s top-left corner (for indexing a crop of ``outer``)."""
        return BBox(self.y0 - outer.y0, self.x0 - outer.x0, self.y1 - outer.y0, self.x1 - outer.x0)

    @staticmethod
    def of_nonzero(mask: np.ndarray, *, origin: BBox | None = None) -> BBox | None:
        """Tight box of the non-zero pixels of a 2-D ``bool``/``uint8`` ``mask``; None when there are none.

        ``origin`` is the box ``mask`` was cropped from, so the result is in image coordinates.
        """
        m = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
        if m.dtype != np.uint8:
            m = (m != 0).view(np.uint8)
        x, y, w, h = cv2.boundingRect(m)
        if w == 0 or h == 0:
            return None
        oy, ox = (origin.y0, origin.x0) if origin is not None else (0, 0)
        return BBox(oy + y, ox + x, oy + y + h, ox + x + w)


def segment_bbox(
    p0: tuple[float, float], p1: tuple[float, float], *, size: float, shape: tuple[int, ...]
) -> BBox:
    """Box around a brush of diameter ``size`` swept from ``p0`` to ``p1`` (``(x, y)``), clipped to ``shape``."""
    h = size / 2.0 + 1.0
    xs = (p0[0], p1[0])
    ys = (p0[1], p1[1])
    b = BBox(int(np.floor(min(ys) - h)), int(np.floor(min(xs) - h)), int(np.ceil(max(ys) + h)) + 1,
             int(np.ceil(max(xs) + h)) + 1)
    return b.clip(shape)


def _pixel_line(p0: tuple[float, float], p1: tuple[float, float], bbox: BBox, out: np.ndarray) -> None:
    """Set in ``out`` (the ``bbox`` crop) the pixels a line between the end pixels visits (no gaps)."""
    c0, r0 = int(np.floor(p0[0])), int(np.floor(p0[1]))
    c1, r1 = int(np.floor(p1[0])), int(np.floor(p1[1]))
    n = max(abs(c1 - c0), abs(r1 - r0)) + 1
    cols = np.rint(np.linspace(c0, c1, n)).astype(np.intp) - bbox.x0
    rows = np.rint(np.linspace(r0, r1, n)).astype(np.intp) - bbox.y0
    keep = (rows >= 0) & (rows < out.shape[0]) & (cols >= 0) & (cols < out.shape[1])
    out[rows[keep], cols[keep]] = True


def segment_footprint(
    p0: tuple[float, float],
    p1: tuple[float, float],
    *,
    size: float,
    brush: BrushShape,
    shape: tuple[int, ...],
) -> tuple[BBox, np.ndarray]:
    """Pixels covered by a brush of diameter ``size`` swept from ``p0`` to ``p1`` (both ``(x, y)`` floats).

    Returns ``(bbox, footprint)`` with ``footprint`` a ``bool (bbox.height, bbox.width)`` array. Round brushes
    sweep a capsule (distance to the segment <= size/2); square brushes sweep an axis-aligned square (the exact
    Minkowski sum, so diagonal strokes are as wide as the square, not thinner).
    """
    bbox = segment_bbox(p0, p1, size=size, shape=shape)
    out = np.zeros(bbox.shape, np.bool_)
    if bbox.is_empty:
        return bbox, out
    half = max(size, 0.0) / 2.0
    # pixel centres relative to p0, as a (h, 1) column and a (1, w) row so numpy broadcasts to the crop
    cy = (np.arange(bbox.y0, bbox.y1, dtype=np.float64) + 0.5 - p0[1])[:, None]
    cx = (np.arange(bbox.x0, bbox.x1, dtype=np.float64) + 0.5 - p0[0])[None, :]
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if brush == "round":
        d2 = dx * dx + dy * dy
        if d2 < 1e-18:
            out |= cx * cx + cy * cy <= half * half
        else:
            t = np.clip((cx * dx + cy * dy) / d2, 0.0, 1.0)
            ex, ey = cx - t * dx, cy - t * dy
            out |= ex * ex + ey * ey <= half * half
    elif brush == "square":
        # the square centred at p0 + t*(dx, dy) holds the centre iff t lies in both per-axis intervals
        lo = np.zeros(bbox.shape)
        hi = np.ones(bbox.shape)
        for c, d in ((cx, dx), (cy, dy)):
            if abs(d) < 1e-9:  # no motion along this axis (also avoids overflow on denormal moves)
                inside = np.abs(c) <= half
                lo = np.where(inside, lo, 2.0)
            else:
                a, b = (c - half) / d, (c + half) / d
                lo = np.maximum(lo, np.minimum(a, b))
                hi = np.minimum(hi, np.maximum(a, b))
        out |= lo <= hi
    else:
        raise ValueError(f"Unknown brush shape {brush!r}; valid: {', '.join(BRUSH_SHAPES)}")
    _pixel_line(p0, p1, bbox, out)
    return bbox, out


def polygon_bbox(points: Sequence[tuple[float, float]], shape: tuple[int, ...]) -> BBox:
    """Box around polygon vertices ``(x, y)``, clipped to ``shape``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return BBox(0, 0, 0, 0)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return BBox(int(y0) - 1, int(x0) - 1, int(y1) + 2, int(x1) + 2).clip(shape)


def polygon_footprint(
    points: Sequence[tuple[float, float]], *, shape: tuple[int, ...]
) -> tuple[BBox, np.ndarray]:
    """Pixels inside the closed polygon through ``points`` (``(x, y)`` floats), cropped to its box.

    Returns ``(bbox, footprint)``; ``footprint`` is ``bool (bbox.height, bbox.width)``. Fewer than 3 vertices
    give the pixels along the open line (a click or a drag is still visible).
    """
    bbox = polygon_bbox(points, shape)
    crop = np.zeros(bbox.shape, np.uint8)
    if bbox.is_empty:
        return bbox, crop.view(np.bool_)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    # pixel centres sit at +0.5 in pointer coordinates and at integers in cv2's
    fixed = np.rint((pts - [bbox.x0 + 0.5, bbox.y0 + 0.5]) * (1 << _POLY_SHIFT)).astype(np.int32)
    if len(fixed) >= 3:
        cv2.fillPoly(crop, [fixed.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=_POLY_SHIFT)
    else:
        cv2.polylines(crop, [fixed.reshape(-1, 1, 2)], False, 1, lineType=cv2.LINE_8, shift=_POLY_SHIFT)
    return bbox, crop.view(np.bool_)


def rectangle_footprint(
    p0: tuple[float, float], p1: tuple[float, float], *, shape: tuple[int, ...]
) -> tuple[BBox, np.ndarray]:
    """Pixels whose centre lies in the axis-aligned rectangle with corners ``p0``, ``p1`` (``(x, y)``).

    The pixels under both corners are always included. Returns ``(bbox, bool footprint)``.
    """
    xa, xb = sorted((p0[0], p1[0]))
    ya, yb = sorted((p0[1], p1[1]))
    # first/last pixel whose centre is inside, widened to the corner pixels themselves
    c0 = min(int(np.ceil(xa - 0.5)), int(np.floor(xa)))
    c1 = max(int(np.floor(xb - 0.5)), int(np.floor(xb)))
    r0 = min(int(np.ceil(ya - 0.5)), int(np.floor(ya)))
    r1 = max(int(np.floor(yb - 0.5)), int(np.floor(yb)))
    bbox = BBox(r0, c0, r1 + 1, c1 + 1).clip(shape)
    return bbox, np.ones(bbox.shape, np.bool_)
