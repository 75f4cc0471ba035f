"""How much better a label would agree with a model's prediction if it were moved, grown or shrunk.

A label drawn off by a constant amount — a mask misregistered by a crop or a resize, an outline drawn with too wide
or too narrow a brush — disagrees with a good model all along its outline, by the same amount. Moved back (or
grown, or shrunk) by that amount, it agrees again. A model's own mistakes are local (a lung base it misses, a
window it merges with the next) and no single move or growth explains them. So the *gain* of the best move, and
of the best growth, within a few dozen pixels, tells a misplaced or mis-sized label from a model that errs:

- move: every translation within ``radius`` px, from the cross-correlation of the two planes (the overlap of the
  label moved by ``(dy, dx)`` with the prediction, all offsets at once);
- grow or shrink: the label's signed distance map; the label grown by ``r`` px is ``distance <= r``, so one
  histogram of the distances over the prediction's pixels and one over all pixels give Dice for every ``r``.

Both are measured on the bounding box of the two planes (plus the radius), at most ``side`` px on its longest side
(the figures are given back in the mask's own pixels). Ring 1: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FIT_RADIUS_PX", "FIT_SIDE", "OutlineFit", "fit_to_prediction"]

#: the largest move or growth looked for, in the mask's own pixels
FIT_RADIUS_PX = 24
#: the planes are measured at most this many pixels on the longest side of the mask
FIT_SIDE = 512
#: the least radius in measured pixels (a 4096 px mask is measured at an eighth)
MIN_RADIUS = 3


@dataclass(frozen=True, kw_only=True)
class OutlineFit:
    #: Dice of the label as drawn against the prediction
    dice: float
    #: Dice gained by the best move, and by the best growth (``>= 0``)
    move_gain: float
    grow_gain: float
    #: the label lies ``(dy, dx)`` mask pixels from where the prediction puts it (down and right positive): moved
    #: by ``(-dy, -dx)`` it agrees best
    move: tuple[int, int]
    #: grown by ``grow`` mask pixels (negative: shrunk) the label agrees best
    grow: int
    #: the label's outline length over its area, per mask pixel: ``gain / outline_share`` is about how many pixels
    #: of the outline the move or growth puts right, whatever the object's size (a Dice gain is larger on a small
    #: object for the same pixels)
    outline_share: float = 0.0

    @property
    def gain(self) -> float:
        return max(self.move_gain, self.grow_gain)

    @property
    def explained_px(self) -> float:
        """About how far, in mask pixels, the label's outline lies from where the move or growth puts it."""
        return self.gain / self.outline_share if self.outline_share > 0 else 0.0

    @property
    def kind(self) -> str:
        """``"move"`` or ``"grow"``: which of the two explains more of the disagreement."""
        return "move" if self.move_gain >= self.grow_gain else "grow"


def _dice(inter: np.ndarray | float, a: np.ndarray | float, b: float) -> np.ndarray:
    total = np.asarray(a, np.float64) + b
    return np.where(total > 0, 2.0 * np.asarray(inter, np.float64) / np.maximum(total, 1e-12), 1.0)


def fit_to_prediction(label: np.ndarray, prediction: np.ndarray, *, radius_px: int = FIT_RADIUS_PX,
                      side: int = FIT_SIDE) -> OutlineFit | None:
    """The best move and growth of ``label`` (bool ``(H, W)``) towards ``prediction`` (bool, same shape); None
    when either plane is empty (there is nothing to move, or nothing to move it to)."""
    import cv2

    if label.shape != prediction.shape:
        raise ValueError(f"label {label.shape} and prediction {prediction.shape} differ in size")
    if not label.any() or not prediction.any():
        return None
    h, w = label.shape
    scale = min(1.0, side / max(h, w))
    r = max(MIN_RADIUS, int(round(radius_px * scale)))
    # the box of both planes, plus the radius, in the mask's pixels
    rows = np.flatnonzero(label.any(axis=1) | prediction.any(axis=1))
    cols = np.flatnonzero(label.any(axis=0) | prediction.any(axis=0))
    pad = int(np.ceil(r / scale)) + 1
    y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    a: np.ndarray = np.ascontiguousarray(label[y0:y1, x0:x1], dtype=np.uint8)
    b: np.ndarray = np.ascontiguousarray(prediction[y0:y1, x0:x1], dtype=np.uint8)
    if scale < 1.0:
        size = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_NEAREST)
        b = cv2.resize(b, size, interpolation=cv2.INTER_NEAREST)
    na, nb = float(np.count_nonzero(a)), float(np.count_nonzero(b))
    if not na or not nb:
        return None
    bf = b.astype(np.float32)
    d0 = float(_dice(float(np.count_nonzero(a & b)), na, nb))
    # move: overlap of the label at every offset within r; the label's area is the same at every offset as long as
    # it stays inside the padded box, which it does (the box holds it with r to spare on every side it does not touch)
    corr = cv2.matchTemplate(np.pad(a.astype(np.float32), r), bf, cv2.TM_CCORR)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    move_dice = float(_dice(float(corr[iy, ix]), na, nb))
    # grow/shrink: signed distance from the label's outline (> 0 outside, < 0 inside)
    outside = cv2.distanceTransform(1 - a, cv2.DIST_L2, 3)
    inside = cv2.distanceTransform(a, cv2.DIST_L2, 3)
    signed = np.where(a > 0, -np.ceil(inside), np.ceil(outside)).astype(np.int64)
    signed = np.clip(signed, -r - 1, r + 1) + r + 1  # bins 0 .. 2r + 2
    every = np.cumsum(np.bincount(signed.ravel(), minlength=2 * r + 3))
    on_pred = np.cumsum(np.bincount(signed[b > 0], minlength=2 * r + 3))
    # grown by g (|g| <= r): the pixels with signed distance <= g, i.e. bins 0 .. g + r + 1; g = 0 is the label
    # itself only when no pixel has distance 0, which a distance of at least 1 either side guarantees
    ks = np.arange(-r, r + 1)
    grow_dice = _dice(on_pred[ks + r + 1 - (ks <= 0)], every[ks + r + 1 - (ks <= 0)], nb)
    best = int(np.argmax(grow_dice))
    # Dice ≈ 1 - outline · d / area for an outline off by d px: the outline's pixels (the label less its erosion)
    # over its area, per mask pixel
    outline = float(np.count_nonzero(a)) - float(np.count_nonzero(cv2.erode(a, np.ones((3, 3), np.uint8))))
    return OutlineFit(dice=d0, move_gain=max(0.0, move_dice - d0), grow_gain=max(0.0, float(grow_dice[best]) - d0),
                      move=(int(round((iy - r) / scale)), int(round((ix - r) / scale))),
                      grow=int(round(int(ks[best]) / scale)), outline_share=outline / na * scale)
