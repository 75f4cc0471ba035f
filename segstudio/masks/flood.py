"""Flood-fill regions (contiguous same label, optionally within an intensity tolerance: the magic wand).

OpenCV's scanline flood fill does the work on the full image and reports the filled rectangle, so everything
after it (the patch, the redraw) runs on that box only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from segstudio.masks.geometry import BBox

FillScope = Literal["value", "plane"]
FILL_SCOPES: tuple[str, ...] = ("value", "plane")


@dataclass(frozen=True)
class FloodRegion:
    """A filled region: ``bbox``, ``region`` (``bool (bbox.height, bbox.width)``) and the label every region
    pixel holds (``value``; None when the region is defined by one multi-label plane only)."""

    bbox: BBox
    region: np.ndarray
    value: int | None


class FloodFiller:
    """Computes flood regions; keeps its ``(H + 2, W + 2)`` work buffer between calls (a fresh 64 MB buffer per
    click on an 8192² mask would cost more than the fill)."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def _buffer(self, shape: tuple[int, int]) -> np.ndarray:
        want = (shape[0] + 2, shape[1] + 2)
        if self._buf is None or self._buf.shape != want:
            self._buf = np.zeros(want, np.uint8)
        return self._buf

    def region(
        self,
        labels: np.ndarray,
        x: int,
        y: int,
        *,
        multilabel: bool = False,
        class_id: int = 0,
        scope: FillScope = "value",
        connectivity: int = 4,
        image: np.ndarray | None = None,
        tolerance: float | None = None,
    ) -> FloodRegion | None:
        """The contiguous region around pixel ``(x, y)`` as an owned copy; arguments as :meth:`filled`."""
        with self.filled(
            labels, x, y, multilabel=multilabel, class_id=class_id, scope=scope, connectivity=connectivity,
            image=image, tolerance=tolerance,
        ) as found:
            if found is None:
                return None
            return FloodRegion(bbox=found.bbox, region=found.region.copy(), value=found.value)

    @contextmanager
    def filled(
        self,
        labels: np.ndarray,
        x: int,
        y: int,
        *,
        multilabel: bool = False,
        class_id: int = 0,
        scope: FillScope = "value",
        connectivity: int = 4,
        image: np.ndarray | None = None,
        tolerance: float | None = None,
    ) -> Iterator[FloodRegion | None]:
        """Context manager: the contiguous region around pixel ``(x, y)`` of ``labels`` (``(H, W)`` label array).

        The region is a view of the work buffer, valid inside the ``with`` block only (no copy of a region that
        may cover most of an 8192² image); the buffer is cleared on exit.

        ``scope="value"``: pixels with the seed's label value (multi-label: the whole bitmask). ``scope="plane"``
        (multi-label only): pixels whose bit ``class_id`` matches the seed's. With ``image`` (``(H, W)`` or
        ``(H, W, 3)``, any numeric dtype) and ``tolerance``, the region is further limited to pixels whose
        intensity is within ``tolerance`` of the seed's (per channel), still inside the seed's label region.
        Yields None when the seed is outside the image.
        """
        h, w = labels.shape
        if not (0 <= x < w and 0 <= y < h):
            yield None
            return
        if scope not in FILL_SCOPES:
            raise ValueError(f"Unknown fill scope {scope!r}; valid: {', '.join(FILL_SCOPES)}")
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        seed_value = int(labels[y, x])
        plane = multilabel and scope == "plane"
        buf = self._buffer((h, w))
        fill = 1
        use_wand = image is not None and tolerance is not None
        if use_wand:
            assert image is not None and tolerance is not None
            same = self._same_label(labels, seed_value, plane=plane, class_id=class_id)
            # pixels of another label block the wand: pre-mark them in the mask, fill with a distinct value
            np.logical_not(same, out=buf[1:-1, 1:-1].view(np.bool_))
            fill = 2
            src = self._wand_image(image, (h, w))
            tol = (float(tolerance),) * 4
            flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (fill << 8)
            _, _, _, rect = cv2.floodFill(src, buf, (x, y), 0, tol, tol, flags)
        else:
            if not multilabel and labels.dtype == np.uint8:
                src = labels  # mask-only fill never writes the source
            else:
                src = self._same_label(labels, seed_value, plane=plane, class_id=class_id).view(np.uint8)
            # fixed range 0 (compare with the seed) finds the same region as the default and runs faster
            flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (fill << 8)
            _, _, _, rect = cv2.floodFill(src, buf, (x, y), 0, 0, 0, flags)
        rx, ry, rw, rh = (int(v) for v in rect)
        bbox = BBox(ry, rx, ry + rh, rx + rw)
        inner = buf[1 + bbox.y0 : 1 + bbox.y1, 1 + bbox.x0 : 1 + bbox.x1]
        try:
            region = inner.view(np.bool_) if fill == 1 else inner == fill
            yield FloodRegion(bbox=bbox, region=region, value=None if plane else seed_value)
        finally:
            # leave the buffer zeroed for the next call; a wand fill marked the whole image, a plain one its box
            if use_wand:
                buf[:] = 0
            else:
                inner[:] = 0

    @contextmanager
    def painted(
        self, labels: np.ndarray, x: int, y: int, value: int, *, connectivity: int = 4
    ) -> Iterator[tuple[BBox, np.ndarray, int]]:
        """Context manager: flood-fill ``labels`` (``uint8 (H, W)``) in place with ``value`` from ``(x, y)``.

        Yields ``(bbox, region, count)``: the filled box, its ``bool`` region (a buffer view, valid inside the
        block) and the number of pixels filled. One OpenCV pass both finds and paints the region — the fastest
        path, used for plain semantic fills. The seed must lie inside ``labels``.
        """
        if labels.dtype != np.uint8:
            raise ValueError(f"in-place flood fill needs a uint8 label array, got {labels.dtype}")
        if connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        buf = self._buffer(labels.shape)
        # fixed range 0: a pixel joins iff it equals the seed's original value, whatever was painted before it
        flags = connectivity | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
        count, _, _, rect = cv2.floodFill(labels, buf, (x, y), int(value), 0, 0, flags)
        rx, ry, rw, rh = (int(v) for v in rect)
        bbox = BBox(ry, rx, ry + rh, rx + rw)
        inner = buf[1 + bbox.y0 : 1 + bbox.y1, 1 + bbox.x0 : 1 + bbox.x1]
        try:
            yield bbox, inner.view(np.bool_), int(count)
        finally:
            inner[:] = 0

    @staticmethod
    def _same_label(labels: np.ndarray, seed_value: int, *, plane: bool, class_id: int) -> np.ndarray:
        if plane:
            bit = np.uint64(1 << class_id)
            return ((labels & bit) != 0) == bool(seed_value & (1 << class_id))
        return labels == labels.dtype.type(seed_value)

    @staticmethod
    def _wand_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if image.shape[:2] != shape:
            raise ValueError(f"image {image.shape[:2]} and mask {shape} differ in size")
        img = image
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if img.ndim == 3 and img.shape[2] not in (1, 3):
            raise ValueError(f"the magic wand needs a grey or RGB image, got {img.shape[2]} channels")
        if img.dtype != np.uint8:
            img = img.astype(np.float32)
        return np.ascontiguousarray(img)
