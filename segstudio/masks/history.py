"""Patch-based undo/redo bounded by memory (DESIGN rule 4).

A :class:`Patch` is one change: its ``bbox``, the changed-pixel mask inside the box, and the change stored
as an XOR ``delta`` (``old ^ new``) at the changed pixels, so that ``new = old ^ delta`` and ``old = new ^ delta``.
Applying a patch and reverting it are the same operation, exact for every dtype, and one representation serves
undo and redo. The delta is kept in the cheapest of three forms, chosen when the patch is built:

- uniform: every changed pixel has the same delta (a multi-label bit, a flood fill of one label, paint over
  background): one scalar plus the bit-packed changed mask — 1 bit per box pixel;
- sparse: a 1-D array, one value per changed pixel (row-major), plus the packed mask;
- dense: a 2-D array over the box, zero where nothing changed — used when at least half the box changed, where
  it costs at most ~1.8x the sparse form and spares the gather/scatter on big fills (an 8192² polygon).

A :class:`Step` (one undo step) holds one patch, or for a brush stroke a few patches, each merged from the stamps
of one neighbourhood, so that releasing a long stroke never allocates a delta over its whole bounding box.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from segstudio.masks.geometry import BBox

log = logging.getLogger(__name__)

#: Default memory budget of one mask's history: large enough for hundreds of big fills, bounded all the same.
DEFAULT_HISTORY_BUDGET = 256 * 1024 * 1024

_CV2_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
# below this, numpy is as fast and cv2's scalar handling has edge cases (a 1x1 source is taken for a scalar)
_CV2_MIN_PIXELS = 4096
_EMPTY = np.zeros(0, np.uint8)


def use_cv2(a: np.ndarray) -> bool:
    """True when OpenCV's (threaded, SIMD) element-wise ops are the faster choice for ``a``."""
    # a one-column array of up to four rows is taken by OpenCV's bindings for a Scalar, not a matrix: numpy then
    return a.dtype in _CV2_DTYPES and a.size >= _CV2_MIN_PIXELS and a.ndim == 2 and min(a.shape) > 1


def nonzero_u8(a: np.ndarray) -> np.ndarray:
    """A ``uint8`` array that is non-zero exactly where ``a`` is (a view when ``a`` is ``uint8``/``bool``)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    return (a != 0).view(np.uint8)


def _pack(changed: np.ndarray) -> np.ndarray:
    # row-wise packing reads strided crops at full speed (flat packing of a strided view is ~4x slower)
    return np.packbits(changed, axis=1)


@dataclass(frozen=True, eq=False)
class Patch:
    """One reversible change of a 2-D label array.

    ``bbox``: the box every changed pixel lies in (nothing outside it is ever touched).
    ``packed``: the ``bool (bbox.height, bbox.width)`` changed mask packed row by row (``np.packbits(axis=1)``;
    empty for a dense delta).
    ``delta``: ``old ^ new`` of the mask dtype: 0-D (uniform), 1-D (one per changed pixel, row-major) or 2-D
    ``(bbox.height, bbox.width)`` (dense, zero where unchanged).
    ``count``: number of changed pixels.
    """

    bbox: BBox
    packed: np.ndarray
    delta: np.ndarray
    count: int

    @staticmethod
    def from_change(
        bbox: BBox, changed: np.ndarray, delta: np.ndarray | int, *, dtype: np.dtype
    ) -> Patch | None:
        """Build a patch from a ``bool (h, w)`` ``changed`` crop of ``bbox`` and its delta; None if nothing changed.

        ``delta`` is a scalar or a 1-D array aligned with ``changed``'s true pixels. The box is tightened to the
        changed pixels so history holds no empty margin.
        """
        built = Patch.build(bbox, changed, delta, dtype=dtype)
        return None if built is None else built[0]

    @staticmethod
    def build(
        bbox: BBox,
        changed: np.ndarray,
        delta: np.ndarray | int,
        *,
        dtype: np.dtype,
    ) -> tuple[Patch, np.ndarray] | None:
        """Like :meth:`from_change`, also returning the tightened changed crop (saves an unpack when applying)."""
        tight = BBox.of_nonzero(changed, origin=bbox)
        if tight is None:
            return None
        if tight != bbox:
            changed = changed[tight.offset_within(bbox).slices]
        count = int(cv2.countNonZero(changed.view(np.uint8))) if changed.dtype == np.bool_ else int(
            np.count_nonzero(changed)
        )
        d = np.asarray(delta, dtype=dtype)
        if d.ndim == 1:
            if d.size != count:
                raise ValueError(f"delta has {d.size} values for {count} changed pixels")
            if count and d.min() == d.max():
                d = d[:1].reshape(())
        elif d.ndim != 0:
            raise ValueError(f"delta must be a scalar or 1-D, got shape {d.shape}")
        packed = _pack(changed)
        return Patch(bbox=tight, packed=packed, delta=d, count=count), changed

    @staticmethod
    def uniform_region(bbox: BBox, changed: np.ndarray, delta: int, *, dtype: np.dtype, count: int) -> Patch:
        """A uniform patch whose ``bbox`` is already tight around the ``count`` true pixels of ``changed``."""
        return Patch(bbox, _pack(changed), np.asarray(delta, dtype=dtype), int(count))

    @staticmethod
    def from_dense(
        bbox: BBox, dense: np.ndarray
    ) -> tuple[Patch, np.ndarray | None] | None:
        """Build a patch from ``dense`` (``(bbox.height, bbox.width)``, ``old ^ new``, zero where unchanged).

        Picks the uniform, sparse or dense form (module docstring). Returns ``(patch, changed)`` where
        ``changed`` is the tight ``bool`` changed crop (None for the dense form), or None if nothing changed.
        """
        nz = nonzero_u8(dense)
        tight = BBox.of_nonzero(nz, origin=bbox)
        if tight is None:
            return None
        if tight != bbox:
            sl = tight.offset_within(bbox).slices
            dense, nz = dense[sl], nz[sl]
        count = int(cv2.countNonZero(nz)) if nz.size else 0
        if dense.dtype in _CV2_DTYPES:
            lo, hi, _, _ = cv2.minMaxLoc(dense, mask=nz)
        else:
            vals = dense[nz.view(np.bool_)]  # nz is a 0/1 (a != 0) view here
            lo, hi = vals.min(), vals.max()
        if lo == hi:
            changed = dense != 0
            d = np.asarray(int(lo), dtype=dense.dtype)
            return Patch(tight, _pack(changed), d, count), changed
        if 2 * count >= tight.area:
            # a crop that is nearly the whole buffer is kept as a view: copying it would cost more than it frees
            keep = dense if 10 * tight.area >= 9 * bbox.area else np.ascontiguousarray(dense)
            return Patch(tight, _EMPTY, keep, count), None
        changed = dense != 0
        return Patch(tight, _pack(changed), dense[changed], count), changed

    @property
    def uniform(self) -> bool:
        return self.delta.ndim == 0

    @property
    def dense(self) -> bool:
        return self.delta.ndim == 2

    @property
    def nbytes(self) -> int:
        """Memory this patch holds (arrays plus a fixed object overhead)."""
        return int(self.packed.nbytes + self.delta.nbytes + 200)

    def changed(self) -> np.ndarray:
        """The ``bool (bbox.height, bbox.width)`` changed-pixel mask."""
        if self.dense:
            return self.delta != 0
        return np.unpackbits(self.packed, axis=1, count=self.bbox.width).view(np.bool_)

    def apply_to(self, array: np.ndarray, *, changed: np.ndarray | None = None) -> None:
        """Toggle the change in ``array`` (``(H, W)`` label array) in place: applies it or reverts it.

        ``changed``: this patch's changed crop when the caller still has it (skips unpacking the bits).
        """
        crop = array[self.bbox.slices]
        if self.dense:
            if use_cv2(crop):
                cv2.bitwise_xor(crop, self.delta, dst=crop)
            else:
                np.bitwise_xor(crop, self.delta, out=crop)
            return
        if changed is None:
            changed = self.changed()
        if self.uniform:
            if use_cv2(crop):
                # cv2's masked xor is several times faster than numpy's where= on large uint8/uint16 fills
                cv2.bitwise_xor(crop, self.delta.item(), dst=crop, mask=changed.view(np.uint8))
            else:
                np.bitwise_xor(crop, self.delta, out=crop, where=changed)
        else:
            crop[changed] ^= self.delta


@dataclass(frozen=True, eq=False)
class Step:
    """One undo step: one patch, or the patches of one brush stroke (merged per neighbourhood at release).

    XOR patches commute, so the parts apply in any order and applying the step twice restores the array.
    ``serial`` identifies the state after the step (for the clean/dirty flag).
    """

    patches: tuple[Patch, ...]
    serial: int
    bbox: BBox = field(init=False)

    def __post_init__(self) -> None:
        if not self.patches:
            raise ValueError("a step holds at least one patch")
        box = self.patches[0].bbox
        for p in self.patches[1:]:
            box = box.union(p.bbox)
        object.__setattr__(self, "bbox", box)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)

    def apply_to(self, array: np.ndarray) -> None:
        """Toggle the step in ``array`` in place (undo and redo are the same call)."""
        for p in self.patches:
            p.apply_to(array)


class History:
    """Undo and redo stacks of patches, bounded by ``budget_bytes`` (oldest steps are dropped first).

    A new push clears redo. A single patch larger than the whole budget is kept alone (the user's last action is
    always undoable) and dropped at the next push.
    """

    def __init__(self, *, budget_bytes: int = DEFAULT_HISTORY_BUDGET) -> None:
        if budget_bytes <= 0:
            raise ValueError("history budget must be positive")
        self._budget = int(budget_bytes)
        self._undo: deque[Step] = deque()
        self._redo: list[Step] = []
        self._nbytes = 0
        self._serial = 0
        # serial of the state at the bottom of the undo stack (moves up as old steps are dropped)
        self._base_serial = 0

    @property
    def budget_bytes(self) -> int:
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        if value <= 0:
            raise ValueError("history budget must be positive")
        self._budget = int(value)
        self._evict()

    @property
    def nbytes(self) -> int:
        """Memory held by all undo and redo patches."""
        return self._nbytes

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    @property
    def top_serial(self) -> int:
        """Serial of the step the array is at (0 at the bottom): compares states for the clean/dirty flag."""
        return self._undo[-1].serial if self._undo else self._base_serial

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def push(self, step: Step) -> None:
        for p in self._redo:
            self._nbytes -= p.nbytes
        self._redo.clear()
        self._undo.append(step)
        self._nbytes += step.nbytes
        self._evict()

    def pop_undo(self) -> Step | None:
        """The step to revert for one undo (moved to the redo stack), or None."""
        if not self._undo:
            return None
        p = self._undo.pop()
        self._redo.append(p)
        return p

    def pop_redo(self) -> Step | None:
        """The step to re-apply for one redo (moved back to the undo stack), or None."""
        if not self._redo:
            return None
        p = self._redo.pop()
        self._undo.append(p)
        return p

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0
        self._base_serial = self.next_serial()

    def _evict(self) -> None:
        while self._nbytes > self._budget and len(self._undo) > 1:
            old = self._undo.popleft()
            self._nbytes -= old.nbytes
            self._base_serial = old.serial
            log.debug("history over budget (%d > %d bytes): dropped oldest step", self._nbytes, self._budget)
