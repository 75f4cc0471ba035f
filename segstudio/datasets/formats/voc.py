"""Pascal VOC segmentation: ``JPEGImages/``, palette ``SegmentationClass/*.png`` (255 = void),
``ImageSets/Segmentation/{train,val,test}.txt``.

Path: the ``VOC20xx`` folder, or a ``VOCdevkit`` holding exactly one. Classes: the 21 VOC classes with the VOC
palette, or ``labels.txt`` beside the folders for custom VOC-style sets. Masks saved as RGB (palette lost) are
decoded with the palette colours; colours outside it are reported like CamVid's.

``WRITER`` (issue 14) writes this layout: images copied as they are, masks as VOC-palette PNGs, lists per split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.documents import describe, read_lines
from segstudio.datasets.formats.paired import check_index_range
from segstudio.datasets.formats.writer_kit import (
    copy_with_mask,
    encode_palette_png,
    file_stem,
    flat_names,
    refuse_multilabel,
    split_folder_name,
)
from segstudio.datasets.io import DatasetProblemError, read_mask
from segstudio.datasets.raster import decode_colours, palette_keys
from segstudio.datasets.util import (
    check_same_size,
    default_image_reader,
    image_files,
    image_shape,
    make_schema,
    max_pixels_of,
    read_class_names,
    safe_relative,
    stem_index,
    subfolders,
)
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOID = 255


def voc_colour(i: int) -> tuple[int, int, int]:
    """The VOC palette colour of index ``i`` (bit-interleaved, as in the devkit's ``labelcolormap``)."""
    r = g = b = 0
    c = i
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return (r, g, b)


def _voc_root(path: Path) -> Path | None:
    if (path / "JPEGImages").is_dir() and (path / "SegmentationClass").is_dir():
        return path
    inner = [f for f in subfolders(path) if (f / "JPEGImages").is_dir() and (f / "SegmentationClass").is_dir()]
    return inner[0] if len(inner) == 1 else None


class VOCFormat:
    name = "voc"
    description = "Pascal VOC segmentation: JPEGImages + palette SegmentationClass PNGs + ImageSets/Segmentation."

    def sniff(self, path: Path) -> float:
        return 0.95 if path.is_dir() and _voc_root(path) is not None else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        root = _voc_root(Path(path))
        if root is None:
            raise DatasetError("No JPEGImages/ + SegmentationClass/ here.", path=path, fix="Open the VOC20xx folder.")
        if (root / "labels.txt").is_file():
            names = read_class_names(root / "labels.txt")
        else:
            names = list(VOC_CLASSES)
        if len(names) > VOID:
            raise DatasetError(
                f"labels.txt names {len(names)} classes; a VOC palette mask holds {VOID} (255 is void).",
                path=root / "labels.txt",
                fix="Check it is the class list (one name a line).",
            )
        schema = make_schema([ClassInfo(i, n, voc_colour(i)) for i, n in enumerate(names)], path=root / "labels.txt",
                             ignore_index=VOID)
        images = stem_index(image_files(root / "JPEGImages"))
        masks = stem_index(image_files(root / "SegmentationClass"))
        problems: list[Problem] = []
        sets = root / "ImageSets" / "Segmentation"
        lists = {s: sets / f"{s}.txt" for s in ("train", "val", "test") if (sets / f"{s}.txt").is_file()}
        if not lists and (sets / "trainval.txt").is_file():
            lists = {"trainval": sets / "trainval.txt"}
        samples: list[Sample] = []
        seen: set[str] = set()
        order: list[tuple[str | None, str]] = []
        for list_name, f in lists.items():
            try:
                order += [(list_name, ln.split()[0]) for ln in read_lines(f)]
            except DatasetProblemError as e:  # one broken list: its images are not listed, the other lists are
                problems.append(e.to_problem())
        if not lists:
            order = [(None, stem) for stem in sorted(masks)]
        for split, stem in order:
            if stem in seen:
                continue
            seen.add(stem)
            if stem not in images:
                if safe_relative(stem + ".jpg") != stem + ".jpg":
                    problems.append(Problem(ProblemKind.PATH_ESCAPE, f"Listed ({split}) name {describe(stem)} is not "
                                            "a file name.", lists.get(split or "", root)))
                    continue
                problems.append(Problem(ProblemKind.MISSING_IMAGE, f"Listed ({split}) but not in JPEGImages/.", root / "JPEGImages" / f"{stem}.jpg"))
                continue
            img = root / "JPEGImages" / images[stem]
            sid = relative_id(img, root)
            if stem in masks:
                samples.append(Sample(sid, img, split, root / "SegmentationClass" / masks[stem]))
            elif split == "test":
                samples.append(Sample(sid, img, split, None))
            else:
                miss = Problem(ProblemKind.MISSING_MASK, "No SegmentationClass PNG for this image.", img, sid)
                samples.append(Sample(sid, img, split, None, (miss,)))
        colours = [voc_colour(i) for i in range(len(names))] + [(224, 224, 192)]  # + the void border colour
        keys, ids = palette_keys(colours, [*range(len(names)), VOID])
        opts = {**options, "_keys": keys, "_ids": ids}
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options=opts,
        )


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    p: Path = sample.gt  # type: ignore[assignment]
    m = read_mask(p, max_pixels=max_pixels_of(ds))
    check_same_size(m, image_shape(ds, sample), path=p, what="its image")
    if m.ndim == 3:  # palette lost on re-save: decode the colours
        out, missing = decode_colours(m, keys=ds.options["_keys"], ids=ds.options["_ids"], unknown=VOID)
        if missing and not any(x.kind == ProblemKind.UNKNOWN_COLOUR and x.sample_id == sample.id for x in ds.problems):
            listed = ", ".join(f"RGB{c} ({n} px)" for c, n in sorted(missing.items(), key=lambda t: -t[1])[:8])
            ds.problems.append(Problem(ProblemKind.UNKNOWN_COLOUR, f"Colours not in the VOC palette: {listed}; read as void.", p, sample.id))
        return out.astype(np.uint8)
    check_index_range(m, ds.schema, path=p)
    return m.astype(np.uint8, copy=False)


FORMAT = VOCFormat()


# --- writing (issue 14) ----------------------------------------------------------------------------------------------


def _check_schema(schema: ClassSchema) -> None:
    refuse_multilabel(schema, fmt="voc (one palette PNG per image)")
    fix = "Export as paired-folders (classes.json keeps any schema), or rename/merge classes to fit."
    if list(schema.ids) != list(range(len(schema))) or len(schema) > VOID:
        raise DatasetExportError(
            f"VOC numbers classes 0..n-1 by their line in labels.txt (at most {VOID}; 255 is void); this schema has "
            f"ids {list(schema.ids)[:12]}{' ...' if len(schema) > 12 else ''}.", fix=fix,
        )
    if schema.ignore_index not in (None, VOID) or any(c.ignore for c in schema.classes):
        raise DatasetExportError(
            f"VOC's only ignore label is void (255), outside the class list; this schema ignores "
            f"{schema.ignore_index} ({', '.join(c.name for c in schema.classes if c.ignore) or 'no class'}).", fix=fix,
        )
    odd = [c.name for c in schema.classes if not c.name.strip() or c.name != c.name.strip() or "\n" in c.name
           or "\r" in c.name]
    if odd:
        raise DatasetExportError(f"labels.txt keeps one name a line; these names would change: {odd[:5]}.", fix=fix)


def _voc_splits(items: Sequence[ExportItem]) -> list[str | None]:
    """The list each item goes in: train/val/test (synonyms folded), ``trainval`` when that is the only one;
    images without a split go to train beside split ones, and no lists are written when no item has a split."""
    given = {it.split for it in items if it.split}
    if not given:
        return [None] * len(items)
    if given == {"trainval"}:
        return ["trainval" if it.split else "train" for it in items]
    unknown = sorted(s for s in given if split_folder_name(s) is None)
    if unknown:
        raise DatasetExportError(
            f"VOC keeps the splits train, val and test (ImageSets/Segmentation); this export has {unknown}.",
            fix="Filter the export to those splits, or rename the split.",
        )
    return [split_folder_name(it.split) or "train" for it in items]


class VOCWriter:
    name = "voc"
    description = "Pascal VOC: JPEGImages + SegmentationClass palette PNGs (255 void) + ImageSets/Segmentation lists."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """Images are copied byte for byte into ``JPEGImages/`` keeping their extension (the reader takes any
        image; re-encoding a PNG as JPEG would change its pixels). Masks use the VOC palette, void 255 in VOC's
        border colour. ``labels.txt`` is written when the classes are not VOC's 21."""
        _check_schema(schema)
        splits = _voc_splits(items)
        names = flat_names(items, spaces=False)  # the lists hold stems, one a line
        if tuple(schema.names) != VOC_CLASSES:
            atomic_write_bytes(out / "labels.txt", "".join(f"{n}\n" for n in schema.names).encode("utf-8"))
        lists: dict[str, list[str]] = {}
        for split, name in zip(splits, names, strict=True):
            if split is not None:
                lists.setdefault(split, []).append(file_stem(name) + "\n")
        for split, rows in lists.items():
            atomic_write_bytes(out / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(rows).encode("utf-8"))
        palette = np.array([voc_colour(i) for i in range(256)], np.uint8)
        palette[VOID] = (224, 224, 192)
        (out / "SegmentationClass").mkdir(parents=True, exist_ok=True)  # the reader needs it even with no mask
        for n, (it, name) in enumerate(zip(items, names, strict=True), 1):
            last, mask = copy_with_mask(it, out / "JPEGImages" / name, schema=schema)
            if mask is not None:
                last = atomic_write_bytes(out / "SegmentationClass" / f"{file_stem(name)}.png",
                                          encode_palette_png(mask, palette))
            yield WriteProgress(n, len(items), last)


WRITER = VOCWriter()
