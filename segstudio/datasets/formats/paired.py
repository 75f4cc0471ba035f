"""Paired folders: an image folder and a mask folder whose files share stems (``cxr/x.png`` + ``masks/x.png``).

Masks are 8/16-bit index PNGs or 0/255 (or 0/1) binary masks, or colour-coded masks when ``classes.json`` gives
each class's colour. Without a class list the dataset is binary (background / foreground): its foreground value
(1 or 255, option ``foreground_value``) is decided once for the whole dataset, values above half of it are
foreground (masks resized with interpolation still read cleanly) and values outside the convention are reported
(``segstudio.datasets.binary``). With ``classes`` (option, ``classes.json`` or ``labels.txt``) the mask values
are class ids; values with no class (and not the ignore index) are an ``out_of_range`` problem.

Writing (``WRITER``, issue 14): ``images/`` + ``masks/`` palette PNGs (16-bit grey past id 255) + ``classes.json``,
split folders when the items have splits. The write helpers the other folder writers share live here too.

Splits: when the root holds ``train/``, ``val``/``valid``/``validation/`` and/or ``test/`` folders that each contain
the pair of folders, each becomes a split.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.binary import to_foreground
from segstudio.datasets.formats.class_folders import GENERIC_MASK_NAMES, IMAGE_FOLDER_NAMES, MASKISH_RE
from segstudio.datasets.formats.writer_kit import (
    classes_json,
    copy_with_mask,
    encode_index_png,
    file_stem,
    flat_names,
    refuse_bad_splits,
    refuse_multilabel,
    split_folder_name,
)
from segstudio.datasets.io import DatasetProblemError, read_mask
from segstudio.datasets.raster import decode_colours, palette_keys
from segstudio.datasets.util import (
    SPLIT_NAMES,
    check_same_size,
    default_image_reader,
    id_prefix,
    image_files,
    image_shape,
    max_pixels_of,
    read_class_names,
    read_json,
    schema_from_json,
    semantic_schema,
    shared_stems,
    stem_index,
    subfolders,
)
from segstudio.datasets.writing import ExportItem, WriteProgress

#: Suffixes a mask's stem may add to its image's stem (ISIC ``_segmentation``, CamVid ``_L``, ...).
MASK_SUFFIXES = ("", "_mask", "_masks", "-mask", "_segmentation", "_seg", "_label", "_labels", "_gt", "_anno")


def _pair_in(folder: Path, *, images: str | None = None, masks: str | None = None) -> tuple[Path, Path] | None:
    subs = [f for f in subfolders(folder)]
    by_name = {f.name.lower(): f for f in subs}
    img = folder / images if images else next((by_name[n] for n in IMAGE_FOLDER_NAMES if n in by_name), None)
    if masks:
        msk: Path | None = folder / masks
    else:
        cands = [f for f in subs if f.name.lower() in GENERIC_MASK_NAMES]
        msk = cands[0] if cands else None
    if img is None and msk is not None:
        others = [f for f in subs if f != msk and not MASKISH_RE.search(f.name)]
        img = others[0] if len(others) == 1 else None
    if img is None or msk is None or not img.is_dir() or not msk.is_dir():
        return None
    return img, msk


def _best_suffix(img_stems: set[str], mask_stems: set[str]) -> str:
    if img_stems <= mask_stems:
        return ""  # the usual case, settled without trying every suffix
    scores = [(sum(1 for s in img_stems if s + suf in mask_stems), suf) for suf in MASK_SUFFIXES]
    best = max(scores, key=lambda t: t[0])
    return best[1] if best[0] > 0 else ""


def _split_roots(root: Path) -> list[tuple[str | None, Path]]:
    splits = [(SPLIT_NAMES[f.name.lower()], f) for f in subfolders(root) if f.name.lower() in SPLIT_NAMES]
    splits = [(n, f) for n, f in splits if _pair_in(f) is not None]
    return list(splits) if splits else [(None, root)]


def _class_schema(root: Path, options: dict[str, Any]) -> ClassSchema | None:
    if options.get("classes"):
        return semantic_schema([str(c) for c in options["classes"]], background=None)
    if (root / "classes.json").is_file():
        return schema_from_json(read_json(root / "classes.json"), path=root / "classes.json")
    if (root / "labels.txt").is_file():
        return semantic_schema(read_class_names(root / "labels.txt"), background=None)
    return None


class PairedFoldersFormat:
    name = "paired-folders"
    description = "An image folder and a mask folder with matching stems (index PNG or 0/255 binary masks)."

    def sniff(self, path: Path) -> float:
        if not path.is_dir():
            return 0.0
        best = 0.0
        for _, folder in _split_roots(path):
            pair = _pair_in(folder)
            if pair is None:
                continue
            img_stems = set(stem_index(image_files(pair[0])))
            mask_stems = set(stem_index(image_files(pair[1])))
            suf = _best_suffix(img_stems, mask_stems)
            if not any(s + suf in mask_stems for s in img_stems):
                continue
            # Other folders with the images' stems mean a per-class layout lives here too; that one is the
            # richer reading, so paired steps back (docs/formats.md, "Detection").
            class_like = [
                f
                for f in subfolders(folder)
                if f not in pair and img_stems & set(stem_index(image_files(f)))
            ]
            best = max(best, 0.6 if len(class_like) >= 2 else 0.85)
        return best

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``images``, ``masks`` (folder names), ``classes`` (names, ids 0..n-1), ``ignore_index``,
        ``max_pixels``."""
        root = Path(path)
        split_roots = [(None, root)] if options.get("images") or options.get("masks") else _split_roots(root)
        schema = _class_schema(root, options)
        binary = schema is None
        if schema is None:
            schema = semantic_schema(["foreground"])
        if options.get("ignore_index") is not None:
            schema = ClassSchema(schema.classes, ignore_index=int(options["ignore_index"]))
        samples: list[Sample] = []
        problems: list[Problem] = []
        for split, folder in split_roots:
            pair = _pair_in(folder, images=options.get("images"), masks=options.get("masks"))
            if pair is None:
                raise DatasetError(
                    "Cannot find an image folder and a mask folder here.",
                    path=folder,
                    fix="Name them e.g. images/ and masks/, or open with images=<name> masks=<name>.",
                )
            img_dir, mask_dir = pair
            img_names = image_files(img_dir)
            img_index = stem_index(img_names)
            problems += shared_stems(img_names, img_dir)
            mask_index = stem_index(image_files(mask_dir))
            suf = _best_suffix(set(img_index), set(mask_index))
            used = set()
            prefix = id_prefix(img_dir, root)
            mask_str = str(mask_dir)
            for stem, fname in img_index.items():
                img = img_dir / fname
                sid = prefix + fname
                mname = mask_index.get(stem + suf)
                if mname is None:
                    miss = Problem(ProblemKind.MISSING_MASK, f"No mask in {mask_dir.name}/ for this image.", img, sid)
                    samples.append(Sample(sid, img, split, None, (miss,)))
                    continue
                used.add(stem + suf)
                # The locator stays a string: a second Path per sample is a measurable share of opening 10k.
                samples.append(Sample(sid, img, split, f"{mask_str}/{mname}"))
            for mstem in sorted(set(mask_index) - used):
                problems.append(
                    Problem(ProblemKind.MISSING_IMAGE, "Mask without a matching image.", mask_dir / mask_index[mstem])
                )
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options={**options, "binary": binary},
        )


def check_index_range(mask: np.ndarray, schema: ClassSchema, *, path: Path) -> None:
    """Raise ``out_of_range`` when ``mask`` holds values that are neither a class id nor the ignore index."""
    if mask.dtype == np.uint8:  # a 256-bin histogram is ~10x faster than np.unique's sort on a 1024² mask
        hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).ravel()
        values = np.flatnonzero(hist)
        counts = hist[values].astype(np.int64)
    else:
        values, counts = np.unique(mask, return_counts=True)
    allowed = set(schema.ids) | ({schema.ignore_index} if schema.ignore_index is not None else set())
    bad = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if int(v) not in allowed]
    if bad:
        listed = ", ".join(f"{v} ({c} px)" for v, c in bad[:8])
        raise DatasetProblemError(
            f"The mask holds values with no class: {listed}; the classes are ids {sorted(schema.ids)}.",
            path=path,
            fix="Give the class list (classes.json / labels.txt / classes option) or fix the mask values.",
            kind=ProblemKind.OUT_OF_RANGE,
        )


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    p = Path(sample.gt)  # type: ignore[arg-type]
    m = read_mask(p, max_pixels=max_pixels_of(ds))
    check_same_size(m, image_shape(ds, sample), path=p, what="its image")
    if m.ndim == 3:
        if (m[..., 0] == m[..., 1]).all() and (m[..., 0] == m[..., 2]).all():
            m = m[..., 0]  # grey saved as RGB
        elif ds.options.get("binary"):
            raise DatasetProblemError(
                "The mask is a colour image, and no class list gives the colours.",
                path=p,
                fix="Add a classes.json with each class's colour, or use camvid-rgb with label_colors.txt.",
                kind=ProblemKind.UNKNOWN_COLOUR,
            )
        else:
            return _decode_colour_mask(ds, m, p)
    if ds.options.get("binary"):
        return to_foreground(ds, sample, m, path=p).astype(np.uint8)
    check_index_range(m, ds.schema, path=p)
    return m.astype(ds.schema.mask_dtype(), copy=False)


def _decode_colour_mask(ds: Dataset, rgb: np.ndarray, path: Path) -> np.ndarray:
    """Colour-coded mask -> class ids through the schema's colours (classes.json). Unknown colours become the
    ignore index when there is one (and are reported); without one they are an error naming the file."""
    keys, ids = palette_keys([c.colour for c in ds.schema], list(ds.schema.ids))
    ignore = ds.schema.ignore_index
    out, missing = decode_colours(rgb[..., :3], keys=keys, ids=ids, unknown=ignore if ignore is not None else 0)
    if missing:
        listed = ", ".join(f"RGB{c} ({n} px)" for c, n in sorted(missing.items(), key=lambda t: -t[1])[:8])
        if ignore is None:
            raise DatasetProblemError(
                f"Colours that no class has: {listed}.",
                path=path,
                fix="Add those colours to classes.json (or an ignore_index to read them as ignore).",
                kind=ProblemKind.UNKNOWN_COLOUR,
            )
        ds.problems.append(Problem(ProblemKind.UNKNOWN_COLOUR, f"Colours that no class has: {listed}; read as ignore.", path))
    return out.astype(ds.schema.mask_dtype())


FORMAT = PairedFoldersFormat()


# --- writing (issue 14) ----------------------------------------------------------------------------------------------

class PairedFoldersWriter:
    name = "paired-folders"
    description = "images/ + masks/ (palette index PNGs, classes.json); train/ val/ test/ folders for splits."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        """Options: ``splits`` (bool, default true: split folders when the items have splits)."""
        refuse_multilabel(schema, fmt="paired-folders (one palette PNG per image)")
        with_splits = bool(options.get("splits", True)) and refuse_bad_splits(
            items, fmt="paired-folders", flat_option="splits"
        )

        def folder(it: ExportItem) -> Path:
            sub = split_folder_name(it.split) if with_splits else None
            return out / sub if sub else out

        names = flat_names(items, group=lambda it: str(folder(it)))
        atomic_write_bytes(out / "classes.json", classes_json(schema))
        for n, (it, name) in enumerate(zip(items, names, strict=True), 1):
            base = folder(it)
            last, mask = copy_with_mask(it, base / "images" / name, schema=schema)
            if mask is not None:
                last = atomic_write_bytes(base / "masks" / f"{file_stem(name)}.png", encode_index_png(mask, schema))
            yield WriteProgress(n, len(items), last)


WRITER = PairedFoldersWriter()
