"""How much better a label's outline would sit on the image's edges if it were moved, grown or shrunk.

The model-free counterpart of :mod:`segstudio.metrics.outline_fit`. A label drawn off by a constant amount (an
outline traced with too wide or too narrow a brush, a mask misregistered by a few pixels) runs beside the object's
edge all along its outline, at the same distance: inside it when shrunk, outside when grown, inside on one side and
outside on the other when shifted. A label drawn on the object's edge has its edge where it is, and a label on a
textured region (foliage) has no edge anywhere in particular. So the *gain* of the best growth, and of the best
move, in how much edge the outline meets tells a misplaced or mis-sized label from a correct one.

The edge is measured across the outline: the image gradient's component along the outline's normal (the gradient
of the label's signed distance), so that texture, whose gradients point every way, counts less than an edge
parallel to the outline. Around the outline, up to ``rows`` rows either side, the gradient is averaged per row
(signed distance from the outline) and per direction of the outline's normal (8 sectors): a profile per sector.
Grown by ``t`` rows, every sector's outline lies on its row ``t``; moved by ``(dy, dx)``, the sector whose normal is
``n`` lies on its row ``n · (dx, dy)``. Every growth and every move within the band is read off the profiles at
once, without redrawing the label.

Ring 1: numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = ["Band", "EdgeFit", "edge_fit", "outline_band"]

#: directions of the outline's normal that are told apart
SECTORS = 8
_ANGLES = np.arange(SECTORS) * (2.0 * math.pi / SECTORS)
_NX, _NY = np.cos(_ANGLES), np.sin(_ANGLES)


@dataclass(frozen=True, kw_only=True)
class EdgeFit:
    #: the mean edge strength across the outline as drawn, and at the best growth / move (gradient units)
    strength: float
    grow_strength: float
    move_strength: float
    #: grown by ``grow`` mask pixels (negative: shrunk) the outline meets the most edge
    grow: int
    #: moved by ``(dy, dx)`` mask pixels (down and right positive) the outline meets the most edge
    move: tuple[int, int]

    @property
    def grow_gain(self) -> float:
        """The share of the best growth's edge strength that the outline as drawn misses (0: on the edge)."""
        return _gain(self.strength, self.grow_strength)

    @property
    def move_gain(self) -> float:
        return _gain(self.strength, self.move_strength)

    @property
    def gain(self) -> float:
        return max(self.grow_gain, self.move_gain)

    @property
    def by_growth(self) -> bool:
        """Whether the best explanation is a growth (or shrinkage) rather than a move."""
        return self.grow_gain >= self.move_gain


#: tan(22.5°): where a direction passes from one of the 8 sectors to the next
_TAN_HALF = math.tan(math.pi / SECTORS)


def _sector(nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """The sector (0: right, 2: down, 4: left, 6: up, odd: the diagonals between) of each direction."""
    ax, ay = np.abs(nx), np.abs(ny)
    right, down = nx >= 0, ny >= 0
    out = np.where(right, np.where(down, 1, 7), np.where(down, 3, 5))  # diagonal unless nearly straight
    out = np.where(ay <= _TAN_HALF * ax, np.where(right, 0, 4), out)
    out = np.where(ax <= _TAN_HALF * ay, np.where(down, 2, 6), out)
    return out.astype(np.int64)


@lru_cache(maxsize=16)
def _moves(reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every move ``(vx, vy)`` within ``reach`` rows, and the row each sector's outline lands on for each."""
    span = np.arange(-reach, reach + 1)
    vx, vy = np.meshgrid(span, span)
    disc = vx**2 + vy**2 <= reach**2
    vx, vy = vx[disc], vy[disc]
    offsets = np.rint(vx[:, None] * _NX[None, :] + vy[:, None] * _NY[None, :]).astype(np.int64)
    return vx, vy, offsets


def _gain(asis: float, best: float) -> float:
    return max(0.0, (best - asis) / best) if best > 0 else 0.0


class Band(NamedTuple):
    """The pixels around a label's outline: each one's signed row (0: the label's outermost pixels, 1: the first
    outside, negative inside) and signed distance (positive outside), in a box around the label."""
    row: np.ndarray
    phi: np.ndarray
    #: how many rows either side of the outline are measured
    rows: int


def outline_band(inside: np.ndarray, rows: int) -> Band | None:
    """``inside``: the label's filled region (uint8 0/1), cut to its bounding box plus ``rows`` on every side.
    None when it has no outline in the box. Where the label reaches the image's border it has no outline (the
    distance transform does not count what lies beyond the picture as background): the object goes on beyond the
    picture."""
    import cv2

    if inside.all() or not inside.any():
        return None
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
    row = np.where(inside > 0, 1.0 - np.rint(d_in), np.rint(d_out)).astype(np.int32)
    return Band(row, d_out - d_in, max(1, int(rows)))


def edge_fit(band: Band, gx: np.ndarray, gy: np.ndarray, *, scale: float = 1.0) -> EdgeFit | None:
    """``band``: the label's outline (:func:`outline_band`); ``gx``, ``gy``: the image's gradients on the same
    pixels. ``band.rows`` is also the largest growth or move looked at; ``scale``: these pixels per mask pixel (the
    figures are given back in mask pixels). None when the outline has too few pixels to measure."""
    import cv2

    d = band.rows
    row = band.row.ravel()
    idx = np.flatnonzero((row > -d) & (row <= d))
    if idx.size == 0:
        return None
    nx = cv2.Sobel(band.phi, cv2.CV_32F, 1, 0, ksize=3).ravel()[idx]
    ny = cv2.Sobel(band.phi, cv2.CV_32F, 0, 1, ksize=3).ravel()[idx]
    norm = np.hypot(nx, ny)
    norm[norm == 0] = np.inf  # no direction: counts for nothing
    across = np.abs(gx.ravel()[idx] * nx + gy.ravel()[idx] * ny) / norm
    bins = _sector(nx, ny) * (2 * d) + (row[idx] + d - 1)
    sums = np.bincount(bins, weights=across, minlength=SECTORS * 2 * d).reshape(SECTORS, 2 * d)
    counts = np.bincount(bins, minlength=SECTORS * 2 * d).reshape(SECTORS, 2 * d)
    profile = sums / np.maximum(counts, 1)
    # each sector weighs as much as its share of the outline (its pixels on the two rows at the outline)
    weight = counts[:, d - 1:d + 1].sum(axis=1).astype(np.float64)
    if weight.sum() <= 0:
        return None
    weight /= weight.sum()
    # the outline between rows o and o + 1: the mean of the two
    pair = (profile[:, :-1] + profile[:, 1:]) / 2.0  # (SECTORS, 2d - 1), column o + d - 1
    sectors = np.arange(SECTORS)

    def strength(offsets: np.ndarray) -> np.ndarray:
        """``offsets``: (..., SECTORS) rows; the weighted strength of each set of offsets."""
        cols = np.clip(offsets + d - 1, 0, 2 * d - 2)
        return (pair[sectors, cols] * weight).sum(axis=-1)

    reach = d - 1
    asis = float(strength(np.zeros(SECTORS, np.int64)))
    grows = np.arange(-reach, reach + 1)
    g = strength(np.repeat(grows[:, None], SECTORS, axis=1))
    gi = int(np.argmax(g))
    vx, vy, offsets = _moves(reach)
    m = strength(offsets)
    mi = int(np.argmax(m))
    to_mask = 1.0 / scale if scale > 0 else 1.0
    return EdgeFit(strength=asis, grow_strength=max(asis, float(g[gi])), move_strength=max(asis, float(m[mi])),
                   grow=int(round(grows[gi] * to_mask)),
                   move=(int(round(vy[mi] * to_mask)), int(round(vx[mi] * to_mask))))
