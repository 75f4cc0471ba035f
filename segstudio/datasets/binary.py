"""Binary masks read without a class list: which value is foreground is decided once per dataset.

Deciding it from each mask's own maximum (issue 13, case 4) loses a whole object to one stray pixel: a 0/1 mask
with a single 2 was thresholded at 127 and came back empty, with nothing reported. Here the dataset's
*foreground value* F (1 for 0/1 masks, 255 for 0/255, 65535 for 16-bit 0/65535) is decided once: from the open
option ``foreground_value``, or by probing a few masks spread over the dataset (the same ones every time) and
taking their most common non-zero value. Then every mask reads the same way:

* a pixel is foreground when its value is above F / 2 (so for F = 1 any non-zero value, and for F = 255 the
  interpolated edges of resized masks threshold cleanly at 128);
* values above F are not part of the convention: they read as foreground and are reported (``out_of_range``,
  with the file and the pixel counts);
* a mask holding only 0 and 1 in a dataset whose F is larger is a 0/1 mask among 0/255 ones: it reads as 0/1 and
  is reported, never as an empty mask.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.io import DatasetProblemError, read_mask
from segstudio.datasets.util import max_pixels_of

#: Open option naming the foreground value (1, 255, ...); without it the value is probed.
OPTION = "foreground_value"
_KEY = "_binary_values"
#: Masks probed: this many spread evenly over the dataset, then (if all were empty) the next ones in order.
_PROBE_SPREAD = 5
_PROBE_MAX = 32
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BinaryValues:
    """The value convention of a dataset's binary masks: ``foreground`` is F; ``source`` says how it was chosen."""

    foreground: int
    source: str

    @property
    def threshold(self) -> int:
        """Values above this are foreground."""
        return self.foreground // 2

    def to_dict(self) -> dict[str, object]:
        return {"foreground": self.foreground, "source": self.source}


def gt_paths(loc: Hashable) -> list[Path]:
    """The mask files of a GT locator: a path, or ``((class id, path), ...)`` of per-class masks."""
    if isinstance(loc, str | Path):
        return [Path(loc)]
    if isinstance(loc, tuple):
        return [Path(p) for part in loc if isinstance(part, tuple) and len(part) == 2 for p in part[1:]]
    return []


def _flat(arr: np.ndarray) -> np.ndarray:
    return arr.max(axis=2) if arr.ndim == 3 else arr  # 24-bit masks (PH2's IMD002): white is 255 in every channel


def _histogram(arr: np.ndarray) -> dict[int, int]:
    """``value -> pixels`` of the non-zero values of an 8/16-bit mask."""
    if arr.dtype == np.uint8:
        hist = np.bincount(arr.ravel(), minlength=256)
        return {int(v): int(hist[v]) for v in np.flatnonzero(hist) if v}
    values, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True) if v}


def binary_values(ds: Dataset) -> BinaryValues:
    """The dataset's convention (decided on first use, then kept in ``ds.options``)."""
    found = ds.options.get(_KEY)
    if isinstance(found, BinaryValues):
        return found
    with _LOCK:
        found = ds.options.get(_KEY)
        if not isinstance(found, BinaryValues):
            found = _decide(ds)
            ds.options[_KEY] = found
    return found


def _decide(ds: Dataset) -> BinaryValues:
    given = ds.options.get(OPTION)
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= 65535:
            raise DatasetError(
                f"{OPTION} must be a whole number 1..65535 (the value of a foreground pixel), not {given!r}.",
                path=ds.root,
                fix=f"Open with {OPTION}=1 for 0/1 masks or {OPTION}=255 for 0/255 masks.",
            )
        return BinaryValues(given, "option")
    with_gt = [s for s in ds.samples if s.gt is not None]
    n = len(with_gt)
    spread = sorted({round(k * (n - 1) / max(_PROBE_SPREAD - 1, 1)) for k in range(_PROBE_SPREAD)}) if n else []
    order = spread + [i for i in range(n) if i not in spread]
    totals: dict[int, int] = {}
    probed = 0
    limit = max_pixels_of(ds)
    for i in order:
        if probed >= _PROBE_MAX or (totals and probed >= len(spread)):
            break
        for p in gt_paths(with_gt[i].gt):
            try:
                arr = _flat(read_mask(p, max_pixels=limit))
            except DatasetError:
                continue  # a broken mask is reported when it is loaded; the convention comes from the others
            probed += 1
            for v, c in _histogram(arr).items():
                totals[v] = totals.get(v, 0) + c
    if not totals:
        return BinaryValues(1, f"default: no foreground in the {probed} masks probed, so any non-zero value")
    value = max(totals.items(), key=lambda vc: (vc[1], vc[0]))[0]
    return BinaryValues(value, f"probed {probed} masks")


def to_foreground(ds: Dataset, sample: Sample, mask: np.ndarray, *, path: Path) -> np.ndarray:
    """``(H, W) bool`` foreground of one raw mask (``(H, W)`` or ``(H, W, 3)``) under the dataset's convention;
    values outside it are reported once per sample and file."""
    arr = _flat(mask)
    if arr.dtype.kind not in "ui":
        raise DatasetProblemError(
            f"The mask has {arr.dtype} pixels, not whole numbers.", path=path,
            fix="Save it as an 8- or 16-bit mask.", kind=ProblemKind.CORRUPT,
        )
    bv = binary_values(ds)
    top = int(arr.max()) if arr.size else 0
    if top > bv.foreground:
        over = {v: c for v, c in _histogram(arr).items() if v > bv.foreground}
        listed = ", ".join(f"{v} ({c} px)" for v, c in sorted(over.items())[:8])
        _report(ds, sample, path, (
            f"The mask holds values above this dataset's foreground value {bv.foreground} ({bv.source}): {listed}; "
            f"read as foreground. Fix: re-export it as 0/{bv.foreground}, or open with {OPTION}=N."
        ))
    elif bv.foreground > 1 and top == 1:
        n = int(np.count_nonzero(arr))
        _report(ds, sample, path, (
            f"The mask holds only 0 and 1 ({n} px of 1), but this dataset's foreground value is {bv.foreground} "
            f"({bv.source}); read as a 0/1 mask. Fix: re-export it as 0/{bv.foreground}."
        ))
        return arr > 0
    return arr > bv.threshold


def _report(ds: Dataset, sample: Sample, path: Path, message: str) -> None:
    if any(p.kind == ProblemKind.OUT_OF_RANGE and p.sample_id == sample.id and p.path == path for p in ds.problems):
        return
    ds.problems.append(Problem(ProblemKind.OUT_OF_RANGE, message, path, sample.id))
