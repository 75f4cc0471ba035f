"""Dataset summaries computed as generators (DESIGN rule 5): they yield progress and stop on a cancel token.

``scan_sizes`` reads image headers only; ``scan_stats`` decodes every GT mask for per-class pixel counts. Files
that fail become ``Problem``s in the result, and the scan goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.io import image_size, problem_from_error
from segstudio.datasets.util import max_pixels_of


@dataclass(frozen=True)
class ScanProgress:
    """``done`` of ``total`` samples scanned; ``sample_id`` is the one just finished."""

    done: int
    total: int
    sample_id: str


@dataclass(frozen=True)
class SizeSummary:
    """Image sizes ``(width, height)``: smallest and largest by area, and how many distinct sizes."""

    min_size: tuple[int, int] | None
    max_size: tuple[int, int] | None
    distinct: int
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": list(self.min_size) if self.min_size else None,
            "max": list(self.max_size) if self.max_size else None,
            "distinct": self.distinct,
        }


@dataclass(frozen=True)
class ClassStats:
    """Per-class pixel counts over every readable GT mask (multi-label: a pixel counts once per class it has)."""

    class_pixels: dict[int, int]
    labelled_pixels: int
    ignore_pixels: int
    masks_read: int
    problems: tuple[Problem, ...] = field(default=())

    def frequencies(self) -> dict[int, float]:
        """``class id -> share of labelled pixels`` (0..1)."""
        total = max(self.labelled_pixels, 1)
        return {cid: n / total for cid, n in self.class_pixels.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_pixels": {str(k): v for k, v in self.class_pixels.items()},
            "frequencies": {str(k): round(v, 6) for k, v in self.frequencies().items()},
            "labelled_pixels": self.labelled_pixels,
            "ignore_pixels": self.ignore_pixels,
            "masks_read": self.masks_read,
        }


CancelToken = Callable[[], bool]


def _never() -> bool:
    return False


def scan_sizes(ds: Dataset, *, cancel: CancelToken = _never) -> Iterator[ScanProgress | SizeSummary]:
    """Yield ``ScanProgress`` per sample, then one ``SizeSummary`` (headers only, nothing decoded)."""
    sizes: set[tuple[int, int]] = set()
    problems: list[Problem] = []
    total = len(ds)
    limit = max_pixels_of(ds)
    for i, s in enumerate(ds.samples):
        if cancel():
            break
        try:
            w, h = image_size(s.image)
        except DatasetError as e:
            problems.append(problem_from_error(e, s.id))
        else:
            sizes.add((w, h))
            if limit is not None and w * h > limit:
                problems.append(
                    Problem(
                        ProblemKind.TOO_LARGE,
                        f"The image declares {w}x{h} pixels, over the limit of {limit:,} (a possible decompression "
                        "bomb); it will not be decoded.",
                        s.image,
                        s.id,
                    )
                )
        yield ScanProgress(i + 1, total, s.id)
    by_area = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
    yield SizeSummary(by_area[0] if by_area else None, by_area[-1] if by_area else None, len(sizes), tuple(problems))


def count_classes(ds: Dataset, mask: np.ndarray) -> tuple[dict[int, int], int, int]:
    """``(class id -> pixels, labelled pixels, ignore pixels)`` of one GT mask of ``ds``'s schema."""
    schema = ds.schema
    if schema.multilabel:
        counts = {c.id: int(np.count_nonzero((mask >> np.uint64(c.id)) & np.uint64(1))) for c in schema}
        return counts, int(mask.size), 0
    hist = np.bincount(mask.ravel(), minlength=schema.max_id + 1)
    counts = {c.id: int(hist[c.id]) for c in schema if c.id < hist.size and c.id != schema.ignore_index}
    ignore = int(hist[schema.ignore_index]) if schema.ignore_index is not None and schema.ignore_index < hist.size else 0
    return counts, int(mask.size) - ignore, ignore


def scan_stats(ds: Dataset, *, cancel: CancelToken = _never) -> Iterator[ScanProgress | ClassStats]:
    """Yield ``ScanProgress`` per sample, then one ``ClassStats`` (decodes every GT mask)."""
    totals = {c.id: 0 for c in ds.schema if c.id != ds.schema.ignore_index}
    labelled = ignore = read = 0
    problems: list[Problem] = []
    samples: list[Sample] = ds.samples
    for i, s in enumerate(samples):
        if cancel():
            break
        if s.has_gt:
            try:
                mask = ds.load_gt(s)
            except DatasetError as e:
                problems.append(problem_from_error(e, s.id))
                mask = None
            if mask is not None:
                counts, lab, ign = count_classes(ds, mask)
                for cid, n in counts.items():
                    totals[cid] = totals.get(cid, 0) + n
                labelled += lab
                ignore += ign
                read += 1
        yield ScanProgress(i + 1, len(samples), s.id)
    yield ClassStats(totals, labelled, ignore, read, tuple(problems))
