"""Collects the patches of one brush stroke and merges them, neighbourhood by neighbourhood, into few patches.

Each mouse move applies its own small patch at once (the canvas shows it). Stamps of one neighbourhood (joint box
up to :data:`MERGE_AREA` pixels) merge into one patch as soon as the stroke leaves it, so a stroke ends up as a
handful of patches, release costs one small merge, and nothing is allocated over a whole stroke's box. XOR patches
compose in any order, so overlapping neighbourhoods stay exact.
"""

from __future__ import annotations

import numpy as np

from segstudio.masks.geometry import BBox
from segstudio.masks.history import Patch

#: stamps merge into one patch while their joint box stays under this many pixels
MERGE_AREA = 256 * 256


def merge_patches(parts: list[Patch], dtype: np.dtype) -> Patch | None:
    """One patch equal to applying all ``parts`` (any order); None when they cancel out."""
    if len(parts) == 1:
        return parts[0]
    box = parts[0].bbox
    for p in parts[1:]:
        box = box.union(p.bbox)
    dense = np.zeros(box.shape, dtype)
    for p in parts:
        sub = dense[p.bbox.offset_within(box).slices]
        if p.dense:
            sub ^= p.delta
        elif p.uniform:
            np.bitwise_xor(sub, p.delta, out=sub, where=p.changed())
        else:
            sub[p.changed()] ^= p.delta
    built = Patch.from_dense(box, dense)
    return None if built is None else built[0]


class StrokeRecorder:
    """The patches of one open stroke over a mask of ``dtype``."""

    def __init__(self, dtype: np.dtype) -> None:
        self._dtype = np.dtype(dtype)
        self._open: list[Patch] = []
        self._open_box: BBox | None = None
        self._done: list[Patch] = []

    def add(self, patch: Patch) -> None:
        """Record an applied ``patch``; merges the open neighbourhood when ``patch`` lies beyond it."""
        joined = patch.bbox.union(self._open_box)
        if self._open and joined.area > MERGE_AREA:
            merged = merge_patches(self._open, self._dtype)
            if merged is not None:
                self._done.append(merged)
            self._open = [patch]
            self._open_box = patch.bbox
        else:
            self._open.append(patch)
            self._open_box = joined

    def __bool__(self) -> bool:
        return bool(self._open) or bool(self._done)

    def finish(self) -> list[Patch]:
        """The stroke as merged patches (empty when it changed nothing)."""
        out = list(self._done)
        if self._open:
            last = merge_patches(self._open, self._dtype)
            if last is not None:
                out.append(last)
        return out

    def parts(self) -> list[Patch]:
        """Every patch recorded so far (merged or not): applying them all reverts the stroke."""
        return self._done + self._open
