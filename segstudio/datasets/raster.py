"""Painting vector annotations (polygons, RLE) into semantic or multi-label masks, in the given order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.geometry import GeometryError, run_indices, segmentation_runs
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError


def paint_annotations(
    shapes: Iterable[tuple[int, Any]],
    *,
    height: int,
    width: int,
    dtype: np.dtype,
    multilabel: bool,
    source: Path,
) -> np.ndarray:
    """``(class id, COCO segmentation)`` pairs -> ``(height, width)`` mask of ``dtype``.

    Semantic: later shapes overwrite earlier ones. Multi-label: bit ``class id`` is set (``uint64``).
    A shape that cannot be rasterised raises ``DatasetProblemError`` (``bad_annotation``) naming ``source``.
    """
    # Painted in column-major order (the order of COCO's runs), transposed once at the end.
    flat = np.zeros(height * width, dtype)
    for n, (cls, seg) in enumerate(shapes):
        try:
            idx = run_indices(*segmentation_runs(seg, height=height, width=width))
        except GeometryError as e:
            raise DatasetProblemError(
                f"Annotation {n} of this image cannot be rasterised: {e}",
                path=source,
                fix="Fix or remove that annotation.",
                kind=ProblemKind.BAD_ANNOTATION,
            ) from e
        if multilabel:
            flat[idx] |= np.uint64(1) << np.uint64(cls)
        else:
            flat[idx] = cls
    return np.ascontiguousarray(flat.reshape(width, height).T)
