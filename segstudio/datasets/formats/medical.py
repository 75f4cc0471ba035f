"""Medical images: a folder (searched recursively) of DICOM files, and plain image folders (16-bit PNG/TIFF).

``dicom``: every ``.dcm``/``.dicom`` file (and extension-less files with the DICOM magic) under the folder is one
sample; pixels keep their stored depth; the header's rescale, window/level and pixel spacing are available
through ``sample_header`` (``segstudio.datasets.display`` turns them into what the screen shows), and
``Dataset.pixel_spacing`` gives the header's PixelSpacing.
Masks, when present, lie in a ``masks/`` folder beside the series with the same stem (binary or index PNG);
a ``classes.json`` beside them names the classes (mask values are then class ids). ``WRITER_DICOM`` (issue 14)
writes this layout: the DICOM files copied byte for byte, index PNG masks, ``classes.json``.

``image-folder``: a flat folder of images without ground truth (to review predictions); 16-bit PNG/TIFF and
DICOM kept at full depth. It is the weakest candidate in detection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.dicom_io import DicomHeader, Window, dicom_header, dicom_window, is_dicom
from segstudio.datasets.formats.paired import _read_gt as read_paired_gt
from segstudio.datasets.formats.writer_kit import (
    classes_json,
    copy_with_mask,
    encode_index_png,
    file_stem,
    flat_names,
    refuse_multilabel,
)
from segstudio.datasets.io import DICOM_EXTENSIONS, DatasetProblemError
from segstudio.datasets.util import (
    default_image_reader,
    image_files,
    read_json,
    report_listing_problem,
    schema_from_json,
    semantic_schema,
    stem_index,
)
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

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


def _is_dicom_sample(sample: Sample) -> bool:
    return sample.image.suffix.lower() in DICOM_EXTENSIONS or (not sample.image.suffix and is_dicom(sample.image))


def sample_header(ds: Dataset, sample: Sample) -> DicomHeader | None:
    """The display and measuring facts of a DICOM sample's header (cached per dataset); None for other images
    and for a header that cannot be read (loading the image reports that file)."""
    if not _is_dicom_sample(sample):
        return None
    cache: dict[str, DicomHeader | None] = ds.options.setdefault("_dicom_headers", {})
    if sample.id not in cache:
        try:
            cache[sample.id] = dicom_header(sample.image)
        except DatasetError:
            cache[sample.id] = None
    return cache[sample.id]


def dicom_spacing(ds: Dataset, sample: Sample) -> tuple[float, float] | None:
    """``Dataset.read_spacing`` of folders that hold DICOM files: the header's PixelSpacing (row, column mm)."""
    header = sample_header(ds, sample)
    return header.spacing if header is not None else None


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
        from_json = not classes and (root / "classes.json").is_file()
        if classes:
            schema = semantic_schema([str(c) for c in classes], background=None)
        elif from_json:
            # written by segstudio's export (or by hand): mask values are these class ids
            schema = schema_from_json(read_json(root / "classes.json"), path=root / "classes.json")
        else:
            schema = semantic_schema(["foreground"])
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
            options={**options, "binary": not classes and not from_json},
            read_spacing=dicom_spacing,
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
            read_spacing=dicom_spacing,
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


# --- writing (issue 14) ----------------------------------------------------------------------------------------------


class DicomWriter:
    name = "dicom"
    description = "A folder of the source DICOM files (copied as they are) + masks/ index PNGs + classes.json."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """The files lie flat in ``out`` (the reader pairs masks by stem; a lone series sub-folder would also look
        like a paired-folders image folder); a file without the ``.dcm`` extension gets it, so that its stem is
        its whole name. Masks are palette PNGs (16-bit grey past id 255). Splits are not kept (the layout has
        none)."""
        refuse_multilabel(schema, fmt="dicom (one index PNG per image)")
        not_dicom = [it.sample_id for it in items
                     if it.image_path.suffix.lower() not in DICOM_EXTENSIONS and not is_dicom(it.image_path)]
        if not_dicom:
            raise DatasetExportError(
                f"The dicom layout holds DICOM files; {len(not_dicom)} images are not DICOM (e.g. {not_dicom[0]}).",
                fix="Export as paired-folders, which takes any image.",
            )
        names = flat_names(items)
        names = [n if "." + n.rsplit(".", 1)[-1].lower() in DICOM_EXTENSIONS else n + ".dcm" for n in names]
        atomic_write_bytes(out / "classes.json", classes_json(schema))
        (out / "masks").mkdir(parents=True, exist_ok=True)
        for n, (it, name) in enumerate(zip(items, names, strict=True), 1):
            last, mask = copy_with_mask(it, out / name, schema=schema)
            if mask is not None:
                last = atomic_write_bytes(out / "masks" / f"{file_stem(name)}.png", encode_index_png(mask, schema))
            yield WriteProgress(n, len(items), last)


WRITER_DICOM = DicomWriter()
