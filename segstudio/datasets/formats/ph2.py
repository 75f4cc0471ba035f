"""PH2 dermoscopy, native layout::

    PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp
                              IMDxxx_lesion/IMDxxx_lesion.bmp        (1-bit or 24-bit BMP, lesion = white)
                              IMDxxx_roi/IMDxxx_R<k>_Label<j>.bmp     (optional colour-class regions, j = 1..6)

Default: semantic background / lesion. With ``colours=True`` the schema is multi-label: bit 0 lesion, bits 1..6
the PH2 colour classes (white, red, light brown, dark brown, blue-gray, black) from the ``_roi`` masks, which
overlap the lesion by design, then one bit per named region label found (``_LabelStreaks`` -> "streaks").

``WRITER`` (issue 14) writes the case folders with a 1-bit lesion BMP; it takes background/lesion schemas only.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.binary import to_foreground
from segstudio.datasets.formats.writer_kit import copy_image, load_export_mask
from segstudio.datasets.io import read_mask
from segstudio.datasets.util import (
    check_same_size,
    default_image_reader,
    image_shape,
    max_pixels_of,
    subfolders,
)
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

IMAGES_FOLDER = "PH2 Dataset images"
_CASE = re.compile(r"^IMD\d+$")
_ROI = re.compile(r"_R\d+_Label([A-Za-z0-9_-]+)\.bmp$", re.IGNORECASE)

#: PH2 colour classes (Mendonça et al. 2013), label number -> (name, display colour).
COLOUR_CLASSES = {
    1: ("white", (245, 245, 245)),
    2: ("red", (220, 40, 40)),
    3: ("light brown", (196, 140, 80)),
    4: ("dark brown", (110, 60, 20)),
    5: ("blue-gray", (100, 130, 160)),
    6: ("black", (30, 30, 30)),
}
LESION_COLOUR = (255, 200, 0)


def _cases_root(path: Path) -> Path | None:
    for cand in (path / IMAGES_FOLDER, path):
        if cand.is_dir() and any(_CASE.match(f.name) and (f / f"{f.name}_Dermoscopic_Image").is_dir() for f in subfolders(cand)):
            return cand
    return None


class PH2Format:
    name = "ph2"
    description = "PH2 dermoscopy: IMDxxx/IMDxxx_Dermoscopic_Image + IMDxxx_lesion (+ optional _roi colour masks)."

    def sniff(self, path: Path) -> float:
        return 0.95 if path.is_dir() and _cases_root(path) is not None else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``colours`` (bool, add the ``_roi`` colour classes, multi-label), ``max_pixels``."""
        root = Path(path)
        cases = _cases_root(root)
        if cases is None:
            raise DatasetError(
                "No PH2 case folders (IMDxxx/IMDxxx_Dermoscopic_Image) here.",
                path=root,
                fix=f"Open the PH2 folder that holds '{IMAGES_FOLDER}'.",
            )
        colours = bool(options.get("colours", False))
        # Region labels are colour numbers 1..6, or a structure's name (IMD146_R1_LabelStreaks): one class each.
        named: dict[str, int] = {}
        if colours:
            extra = sorted(
                {
                    m.group(1).lower()
                    for f in cases.glob("IMD*/IMD*_roi/*.bmp")
                    if (m := _ROI.search(f.name)) and not m.group(1).isdigit()
                }
            )
            named = {n: len(COLOUR_CLASSES) + 1 + i for i, n in enumerate(extra)}
            infos = [ClassInfo(0, "lesion", LESION_COLOUR)]
            infos += [ClassInfo(j, n, c) for j, (n, c) in COLOUR_CLASSES.items()]
            infos += [ClassInfo(cid, n, default_colour(cid)) for n, cid in named.items()]
            schema = ClassSchema(tuple(infos), multilabel=True)
        else:
            schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "lesion", LESION_COLOUR)))
        samples: list[Sample] = []
        problems: list[Problem] = []
        for case in subfolders(cases):
            if not _CASE.match(case.name):
                continue
            cid = case.name
            img = case / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp"
            if not img.is_file():
                problems.append(Problem(ProblemKind.MISSING_IMAGE, "Case folder without its dermoscopic image.", img))
                continue
            sid = relative_id(img, root)
            lesion = case / f"{cid}_lesion" / f"{cid}_lesion.bmp"
            parts: list[tuple[int, Path]] = []
            probs: list[Problem] = []
            if lesion.is_file():
                parts.append((0 if colours else 1, lesion))
            else:
                probs.append(Problem(ProblemKind.MISSING_MASK, "No lesion mask for this case.", lesion, sid))
            if colours:
                roi_dir = case / f"{cid}_roi"
                for f in sorted(roi_dir.glob("*.bmp")) if roi_dir.is_dir() else []:
                    m = _ROI.search(f.name)
                    label = m.group(1) if m else ""
                    if label.isdigit() and int(label) in COLOUR_CLASSES:
                        parts.append((int(label), f))
                    elif label.lower() in named:
                        parts.append((named[label.lower()], f))
                    else:
                        probs.append(
                            Problem(
                                ProblemKind.BAD_ANNOTATION,
                                "Region mask name not of the form _R<k>_Label<1..6 or a name>.",
                                f,
                                sid,
                            )
                        )
            samples.append(Sample(sid, img, None, tuple(parts) if parts else None, tuple(probs)))
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options=dict(options),
        )


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    parts: tuple[tuple[int, Path], ...] = sample.gt  # type: ignore[assignment]
    shape = image_shape(ds, sample)
    out = np.zeros(shape, ds.schema.mask_dtype())
    for cid, p in parts:
        # 1-bit and 24-bit BMP both occur (IMD002); both read under the dataset's one foreground value.
        raw = read_mask(p, max_pixels=max_pixels_of(ds))
        check_same_size(raw, shape, path=p, what="the dermoscopic image")
        m = to_foreground(ds, sample, raw, path=p)
        if ds.schema.multilabel:
            out[m] |= np.uint64(1) << np.uint64(cid)
        else:
            out[m] = cid
    return out


FORMAT = PH2Format()


# --- writing (issue 14) ----------------------------------------------------------------------------------------------


def _check_schema(schema: ClassSchema) -> None:
    if schema.multilabel or set(schema.ids) != {0, 1} or schema.ignore_index is not None:
        what = ("multi-label" if schema.multilabel
                else f"classes {', '.join(schema.names)}" + (f" and ignore index {schema.ignore_index}"
                                                              if schema.ignore_index is not None else ""))
        raise DatasetExportError(
            f"The PH2 layout holds one binary lesion mask per image (background 0, lesion 1); this schema has {what}.",
            fix="Merge the classes into one lesion class, or export as class-folders or paired-folders.",
        )


def _case_names(items: Sequence[ExportItem]) -> list[str]:
    """``IMDxxx`` per item: the image's own name where it is one (PH2 read back keeps its ids), else the next
    free number."""
    stems = [PurePosixPath(it.rel.name).stem for it in items]
    counts = Counter(stems)
    keep = [s if _CASE.match(s) and counts[s] == 1 else None for s in stems]
    taken = {s for s in keep if s}
    out, k = [], 1
    for s in keep:
        if s is None:
            while f"IMD{k:03d}" in taken:
                k += 1
            s = f"IMD{k:03d}"
            taken.add(s)
        out.append(s)
    return out


def _bmp_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="BMP")
    return buf.getvalue()


class PH2Writer:
    name = "ph2"
    description = "PH2 case folders: IMDxxx_Dermoscopic_Image/IMDxxx.bmp + IMDxxx_lesion/IMDxxx_lesion.bmp (binary)."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """BMP images are copied byte for byte; other images are re-encoded as 24-bit (or grey) BMP, losslessly
        for 8-bit images (16-bit ones are refused: BMP holds 8 bits a channel). Lesions are 1-bit BMPs (0/255
        read back), as in PH2 itself. Images whose name is not ``IMDxxx`` get the next free number, listed in
        ``ph2_names.csv``."""
        _check_schema(schema)
        cases = _case_names(items)
        cases_root = out / IMAGES_FOLDER
        renamed = [(c, it.sample_id) for c, it in zip(cases, items, strict=True) if PurePosixPath(it.rel.name).stem != c]
        if renamed:
            rows = "".join(f"{c},{json.dumps(sid, ensure_ascii=False)}\n" for c, sid in renamed)
            atomic_write_bytes(out / "ph2_names.csv", ("case,source\n" + rows).encode("utf-8"))
        for n, (it, case) in enumerate(zip(items, cases, strict=True), 1):
            img_dst = cases_root / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp"
            if it.image_path.suffix.lower() == ".bmp":
                last = copy_image(it, img_dst)
            else:
                img = it.load_image()
                if img.dtype != np.uint8:
                    raise DatasetExportError(
                        f"{it.sample_id} is a {img.dtype} image; a PH2 BMP holds 8 bits a channel.",
                        path=it.image_path, fix="Export as paired-folders, which copies the image as it is.",
                    )
                last = atomic_write_bytes(img_dst, _bmp_bytes(img))
            mask = load_export_mask(it, schema)
            if mask is not None:
                if mask.size and int(mask.max()) > 1:
                    raise DatasetExportError(
                        f"The mask of {it.sample_id} holds values above 1; PH2 holds background and lesion only.",
                        path=it.image_path, fix="Check the class mapping of the export.",
                    )
                # a bool array becomes a 1-bit BMP, PH2's own encoding (read back as 0/255)
                lesion = _bmp_bytes(np.ascontiguousarray(mask == 1))
                last = atomic_write_bytes(cases_root / case / f"{case}_lesion" / f"{case}_lesion.bmp", lesion)
            yield WriteProgress(n, len(items), last)


WRITER = PH2Writer()
