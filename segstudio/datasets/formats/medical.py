"""Medical images: a folder (searched recursively) of DICOM files, and plain image folders (16-bit PNG/TIFF).

``dicom``: every ``.dcm``/``.dicom`` file (and extension-less files with the DICOM magic) under the folder is one
sample; pixels keep their stored depth and the header's window/level is available through ``sample_window``.
Masks, when present, lie in a ``masks/`` folder beside the series with the same stem (binary or index PNG).

``image-folder``: a flat folder of images without ground truth (to review predictions); 16-bit PNG/TIFF and
DICOM kept at full depth. It is the weakest candidate in detection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.dicom_io import Window, dicom_window, is_dicom
from segstudio.datasets.formats.paired import _read_gt as read_paired_gt
from segstudio.datasets.io import DICOM_EXTENSIONS, DatasetProblemError
from segstudio.datasets.util import (
    default_image_reader,
    image_files,
    report_listing_problem,
    semantic_schema,
    stem_index,
)

MASK_FOLDERS = ("masks", "mask", "labels", "segmentations")
_MAX_SCAN = 200_000
#: Detection looks this deep and at this many names at most, so that pointing at a home folder stays instant.
_SNIFF_DEPTH = 3
_SNIFF_NAMES = 20_000


def _walk_error(err: OSError) -> None:
    if err.filename is not None:
        report_listing_problem(
            Problem(ProblemKind.CORRUPT, f"Skipped this folder: it cannot be read ({err.strerror or err}). Fix: make it "
                    "readable for this user, or move it out.", Path(os.fsdecode(err.filename)))
        )


def _dicom_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.lower() not in MASK_FOLDERS)
        for n in sorted(filenames):
            ext = "." + n.rsplit(".", 1)[1].lower() if "." in n else ""
            if ext in DICOM_EXTENSIONS or (not ext and is_dicom(Path(dirpath) / n)):
                out.append(Path(dirpath) / n)
        if len(out) > _MAX_SCAN:
            break
    return out


def _any_dicom(root: Path) -> bool:
    seen = 0
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).parts) - base_depth
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if depth < _SNIFF_DEPTH else []
        if any(n.lower().endswith((".dcm", ".dicom")) for n in filenames[:500]):  # a DICOM folder shows early
            return True
        seen += len(filenames) + len(dirnames)
        if seen > _SNIFF_NAMES:
            return False
    return False


def sample_window(ds: Dataset, sample: Sample) -> Window | None:
    """The display window of a DICOM sample from its header (cached per dataset); None for other images."""
    if sample.image.suffix.lower() not in DICOM_EXTENSIONS and not is_dicom(sample.image):
        return None
    cache: dict[str, Window | None] = ds.options.setdefault("_windows", {})
    if sample.id not in cache:
        try:
            cache[sample.id] = dicom_window(sample.image)
        except DatasetError:
            cache[sample.id] = None
    return cache[sample.id]


class DicomFormat:
    name = "dicom"
    description = "A folder of DICOM files (recursive), full depth, header window/level; optional masks/ folder."

    def sniff(self, path: Path) -> float:
        if path.is_file():
            return 0.9 if path.suffix.lower() in DICOM_EXTENSIONS or is_dicom(path) else 0.0
        return 0.7 if path.is_dir() and _any_dicom(path) else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``classes`` (mask class names, ids 0..n-1; default background/foreground), ``max_pixels``."""
        p = Path(path)
        root = p.parent if p.is_file() else p
        files = [p] if p.is_file() else _dicom_files(root)
        if not files:
            raise DatasetError("No DICOM files here.", path=p)
        mask_dir = next((root / m for m in MASK_FOLDERS if (root / m).is_dir()), None)
        masks = stem_index(image_files(mask_dir)) if mask_dir else {}
        classes = options.get("classes")
        schema = semantic_schema([str(c) for c in classes], background=None) if classes else semantic_schema(["foreground"])
        samples = []
        for f in files:
            sid = relative_id(f, root)
            stem = f.name[: -len(f.suffix)] if f.suffix else f.name
            gt = mask_dir / masks[stem] if mask_dir and stem in masks else None
            probs: tuple[Problem, ...] = ()
            if mask_dir and gt is None:
                probs = (Problem(ProblemKind.MISSING_MASK, f"No mask in {mask_dir.name}/ for this image.", f, sid),)
            samples.append(Sample(sid, f, None, gt, probs))
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=read_paired_gt,
            problems=[],
            options={**options, "binary": not classes},
        )


class ImageFolderFormat:
    name = "image-folder"
    description = "A flat folder of images without ground truth (16-bit PNG/TIFF and DICOM kept at full depth)."

    def sniff(self, path: Path) -> float:
        return 0.2 if path.is_dir() and image_files(path) else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        root = Path(path)
        names = image_files(root)
        if not names:
            raise DatasetError("No image files directly in this folder.", path=root)
        samples = [Sample(n, root / n) for n in names]
        return Dataset(
            root=root,
            format_name=self.name,
            schema=semantic_schema(["foreground"]),
            samples=samples,
            read_image=default_image_reader,
            read_gt=_no_gt,
            problems=[],
            options=dict(options),
        )


def _no_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    return None


def window_or_none(ds: Dataset, sample: Sample) -> dict[str, float] | None:
    """JSON-ready window for reports."""
    try:
        w = sample_window(ds, sample)
    except DatasetProblemError:
        return None
    return w.to_dict() if w else None


FORMAT_DICOM = DicomFormat()
FORMAT_IMAGE_FOLDER = ImageFolderFormat()
