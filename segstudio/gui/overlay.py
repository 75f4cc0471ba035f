"""Mask → RGBA overlay for the canvas (whole image). Opacity is applied by the canvas layer, not baked in."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from segstudio.core.types import ClassSchema


def class_lut(schema: ClassSchema, visible: Iterable[int]) -> np.ndarray:
    """``(N, 4)`` uint8 RGBA lookup table id → colour; hidden, ignore and background (id 0, semantic) are clear."""
    vis = set(visible)
    size = max(schema.max_id + 1, (schema.ignore_index or 0) + 1, 256 if not schema.multilabel else 1)
    lut = np.zeros((size, 4), np.uint8)
    for c in schema:
        if c.id in vis and not c.ignore and (schema.multilabel or c.id != 0):
            lut[c.id, :3] = c.colour
            lut[c.id, 3] = 255
    return lut


def render_mask_rgba(mask: np.ndarray, schema: ClassSchema, visible: Iterable[int]) -> np.ndarray:
    """``(H, W)`` mask (index map, or uint64 bitmask when multi-label) → ``(H, W, 4)`` uint8 RGBA.

    Multi-label pixels in several visible classes take the colour of the highest class id drawn last.
    """
    lut = class_lut(schema, visible)
    if not schema.multilabel:
        idx = mask if mask.dtype in (np.uint8, np.uint16) else mask.astype(np.uint16)
        if lut.shape[0] < int(idx.max(initial=0)) + 1:
            lut = np.vstack([lut, np.zeros((int(idx.max()) + 1 - lut.shape[0], 4), np.uint8)])
        return lut[idx]
    out = np.zeros((*mask.shape, 4), np.uint8)
    for c in schema:
        if lut[c.id, 3]:
            hit = (mask & np.uint64(1 << c.id)) != 0
            out[hit] = lut[c.id]
    return out
