"""Painting vector annotations (polygons, RLE) into semantic or multi-label masks, in the given order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.geometry import (
    GeometryError,
    OutlineBudget,
    check_raster_size,
    run_indices,
    segmentation_runs,
)
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError


def paint_annotations(
    shapes: Iterable[tuple[int, Any] | tuple[int, Any, str]],
    *,
    height: int,
    width: int,
    dtype: np.dtype,
    multilabel: bool,
    source: Path,
    max_pixels: int | None,
) -> np.ndarray:
    """``(class id, COCO segmentation[, label])`` -> ``(height, width)`` mask of ``dtype``.

    Semantic: later shapes overwrite earlier ones. Multi-label: bit ``class id`` is set (``uint64``).
    ``label`` names the shape in messages (``annotation id 17``); without it the shape's position is used.
    A shape that cannot be rasterised (malformed, far outside the image, or past the outline every shape of one
    mask shares, ``MAX_OUTLINE_PX``) raises ``DatasetProblemError`` (``bad_annotation``) naming ``source`` and it.
    """
    try:
        height, width = check_raster_size(height, width)
    except GeometryError as e:
        raise DatasetProblemError(
            f"Cannot draw the annotations of this image: {e}",
            path=source,
            fix="Fix the image's height and width in the annotation file.",
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e
    if max_pixels is not None and height * width > max_pixels:
        raise DatasetProblemError(
            f"The annotations are for a {width}x{height} image, over the limit of {max_pixels:,} pixels; not drawn.",
            path=source,
            fix="Check the image's size; if it is genuine, raise the pixel limit (max_pixels).",
            kind=ProblemKind.TOO_LARGE,
        )
    # Painted in column-major order (the order of COCO's runs), transposed once at the end.
    flat = np.zeros(height * width, dtype)
    budget = OutlineBudget()
    for n, shape in enumerate(shapes):
        cls, seg = shape[0], shape[1]
        try:
            idx = run_indices(*segmentation_runs(seg, height=height, width=width, budget=budget))
        except GeometryError as e:
            label = shape[2] if len(shape) > 2 else f"annotation {n} of this image"  # type: ignore[misc]
            raise DatasetProblemError(
                f"{str(label)[:1].upper()}{str(label)[1:]} cannot be drawn: {e}",
                path=source,
                fix="Fix or remove that annotation.",
                kind=ProblemKind.BAD_ANNOTATION,
            ) from e
        if multilabel:
            flat[idx] |= np.uint64(1) << np.uint64(cls)
        else:
            flat[idx] = cls
    return np.ascontiguousarray(flat.reshape(width, height).T)


def palette_keys(colours: list[tuple[int, int, int]], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed ``0xRRGGBB`` keys and their class ids, ready for ``decode_colours``."""
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], np.int64)
    order = np.argsort(keys, kind="stable")
    return keys[order], np.asarray(ids, np.int64)[order]


def decode_colours(
    rgb: np.ndarray, *, keys: np.ndarray, ids: np.ndarray, unknown: int
) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
    """``(H, W, 3) uint8`` colour label -> ``(H, W) int64`` ids (``unknown`` where no colour matches) and
    ``{colour: pixel count}`` of the unmatched colours. ``keys`` are sorted packed ``0xRRGGBB`` values."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pos = np.searchsorted(keys, packed).clip(0, len(keys) - 1)
    hit = keys[pos] == packed
    out = np.where(hit, ids[pos], unknown)
    missing: dict[tuple[int, int, int], int] = {}
    if not hit.all():
        vals, counts = np.unique(packed[~hit], return_counts=True)
        missing = {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255): int(c) for v, c in zip(vals, counts, strict=True)}
    return out, missing
