"""Edit guards: locked classes and "paint only inside class X", applied by every edit of a label mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class EditGuard:
    """Which pixels an edit may change.

    ``locked``: class ids whose pixels are never modified (semantic: pixels holding a locked id keep it and no
    pixel becomes a locked id; multi-label: the locked bits never change). ``paint_inside``: when set, only pixels
    currently in that class may change (semantic: value equals it; multi-label: its bit is set).
    """

    locked: frozenset[int] = frozenset()
    paint_inside: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.locked) or self.paint_inside is not None

    def locked_bits(self) -> int:
        """The locked classes as a multi-label bitmask."""
        bits = 0
        for c in self.locked:
            bits |= 1 << c
        return bits

    def locked_lut(self, dtype: np.dtype) -> np.ndarray:
        """``bool`` table over every value of a semantic ``dtype``: True for locked class ids."""
        lut = np.zeros(1 << (8 * np.dtype(dtype).itemsize), np.bool_)
        for c in self.locked:
            if 0 <= c < lut.size:
                lut[c] = True
        return lut

    def allowed_semantic(self, old: np.ndarray) -> np.ndarray:
        """``bool`` array like ``old`` (semantic values): True where the guard lets the pixel change."""
        ok = np.ones(old.shape, np.bool_)
        if self.paint_inside is not None:
            ok &= old == self.paint_inside
        if self.locked:
            if old.dtype == np.uint8:
                # cv2.LUT is the fast path for 8-bit lookups on large crops
                locked_px = cv2.LUT(old, self.locked_lut(old.dtype).view(np.uint8)).view(np.bool_)
            else:
                locked_px = self.locked_lut(old.dtype)[old]
            ok &= ~locked_px
        return ok


NO_GUARD = EditGuard()
