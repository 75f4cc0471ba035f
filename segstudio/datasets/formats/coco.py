"""COCO JSON (instances): polygons, uncompressed and compressed RLE, ``iscrowd``; rasterised per image on demand.

Path: a COCO ``.json`` file, or a folder holding one (Roboflow: ``_annotations.coco.json``) or split folders that
each hold one (``train/``, ``valid/``, ``test/`` -> splits train/val/test).

Classes: background is 0; categories, sorted by their (possibly non-contiguous) ids, become 1..n. A category that
repeats another's name and has no annotation (Roboflow's supercategory placeholder) is dropped; other repeated
names get `` (id N)`` appended. Both are reported.

Overlapping instances (open option ``overlap``):
  * ``"last"`` (default): semantic, annotations painted in file order, so the later (top) one wins;
  * ``"smallest"``: semantic, larger areas painted first, so small objects (windows) stay on top of large ones;
  * ``"multilabel"``: one bit per category, every overlap kept (the default for files segstudio wrote from a
    multi-label schema: ``info.segstudio.multilabel``).

Crowd regions (``iscrowd: 1``; open option ``crowd``):
  * ``"include"`` (default): painted as their category, like any other annotation (what ``annToMask`` gives);
  * ``"ignore"``: painted last with the ignore index (255; 65535 past 255 classes), so training and metrics skip
    them, as COCO's evaluation does. Multi-label masks have no ignore value: crowd regions are left out and
    reported.

Writing (:data:`WRITER`, ``coco``): one JSON per split, see :class:`COCOWriter`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.geometry import mask_to_rle
from segstudio.core.types import (
    DEFAULT_IGNORE_INDEX,
    MAX_MULTILABEL_CLASSES,
    ClassInfo,
    ClassSchema,
    default_colour,
)
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.documents import (
    as_float,
    describe,
    get_id,
    get_int,
    get_list,
    get_str,
    read_json_object,
)
from segstudio.datasets.formats.writer_kit import (
    ENCODINGS,
    INSTANCE_MODES,
    ROBOFLOW_JSON,
    class_planes,
    components,
    copy_image,
    export_option,
    mask_or_shape,
    mask_to_polygons,
    rel_in_split,
    split_folder,
    written_classes,
)
from segstudio.datasets.io import DEFAULT_MAX_PIXELS, DatasetProblemError, is_file
from segstudio.datasets.raster import paint_annotations
from segstudio.datasets.util import (
    MAX_CLASS_ID,
    SPLIT_NAMES,
    DirListing,
    default_image_reader,
    files_with_suffix,
    gc_paused,
    id_prefix,
    image_shape,
    max_pixels_of,
    safe_relative,
    subfolders,
)
from segstudio.datasets.writing import ExportItem, WriteProgress

log = logging.getLogger(__name__)

OVERLAP_POLICIES = ("last", "smallest", "multilabel")
CROWD_POLICIES = ("include", "ignore")
_SNIFF_BYTES = 1 << 16


def looks_like_coco(path: Path) -> bool:
    """Cheap check of a JSON file's head and tail for the COCO top-level keys (big files put them far apart)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _SNIFF_BYTES))
            tail = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    text = head + tail
    return b'"images"' in text and (b'"annotations"' in text or b'"categories"' in text)


def _json_files(path: Path) -> list[tuple[str | None, Path]]:
    if path.is_file():
        return [(_split_from_name(path.stem), path)] if looks_like_coco(path) else []
    found: list[tuple[str | None, Path]] = [(None, f) for f in files_with_suffix(path, ".json") if looks_like_coco(f)]
    if not found and (path / "annotations").is_dir():
        found = [
            (_split_from_name(f.stem), f) for f in files_with_suffix(path / "annotations", ".json") if looks_like_coco(f)
        ]
    for sub in subfolders(path):
        if sub.name.lower() in SPLIT_NAMES:
            found += [(SPLIT_NAMES[sub.name.lower()], f) for f in files_with_suffix(sub, ".json") if looks_like_coco(f)]
        elif (sub / ROBOFLOW_JSON).is_file() and looks_like_coco(sub / ROBOFLOW_JSON):
            # a Roboflow-style folder with a split name of its own (``fold1/``): the folder names the split
            found.append((sub.name, sub / ROBOFLOW_JSON))
    return found


def _split_from_name(stem: str) -> str | None:
    low = stem.lower()
    for key, split in SPLIT_NAMES.items():
        if key in low:
            return split
    return None


@dataclass(frozen=True)
class _ImageGT:
    """Locator of one image's annotations: the JSON file and the image id in it."""

    json_path: Path
    image_id: Any
    height: int
    width: int


_Ann = tuple[int, Any, float, str, bool]  # (class id, COCO segmentation, area, "annotation id N", crowd as ignore)
_Cat = tuple[int | str, str]  # (category id, name)


def _schema(
    categories: list[_Cat], used: set[Any], *, multilabel: bool, problems: list[Problem], src: Path,
    crowd_ignore: bool = False,
) -> tuple[ClassSchema, dict[Any, int]]:
    """The schema and ``category id -> class id``; drops unused duplicate-name placeholders, renames the rest."""
    cats = sorted(categories, key=lambda c: (str(type(c[0])), c[0]))
    names = Counter(name for _, name in cats)
    kept = []
    for cid, name in cats:
        if names[name] > 1 and cid not in used and any(d in used and n == name for d, n in cats):
            problems.append(
                Problem(ProblemKind.OTHER, f"Category id {describe(cid)} {describe(name)} repeats a name and has no "
                        "annotations; dropped.", src)
            )
            continue
        kept.append((cid, name))
    names = Counter(name for _, name in kept)
    infos: list[ClassInfo] = [] if multilabel else [ClassInfo(0, "background", (0, 0, 0))]
    cat_to_class: dict[Any, int] = {}
    for cid, name in kept:
        if names[name] > 1:
            problems.append(Problem(ProblemKind.OTHER, f"Category name {describe(name)} is used twice; shown as "
                                    f"'{name} (id {cid})'.", src))
            name = f"{name} (id {cid})"
        k = len(infos) if not multilabel else len(cat_to_class)
        cat_to_class[cid] = k
        infos.append(ClassInfo(k, name, default_colour(k + (1 if multilabel else 0))))
    if multilabel and len(infos) > MAX_MULTILABEL_CLASSES:
        raise DatasetError(
            f"{len(infos)} categories do not fit a multi-label mask ({MAX_MULTILABEL_CLASSES} at most).",
            path=src,
            fix="Open with overlap='last' or 'smallest' (semantic).",
        )
    if len(infos) > MAX_CLASS_ID + 1:
        raise DatasetError(f"{len(infos):,} categories do not fit a 16-bit mask.", path=src,
                           fix="Check the categories list of the COCO file.")
    ignore = None
    if crowd_ignore and not multilabel:
        ignore = DEFAULT_IGNORE_INDEX if len(infos) <= DEFAULT_IGNORE_INDEX else MAX_CLASS_ID
    return ClassSchema(tuple(infos), multilabel=multilabel, ignore_index=ignore), cat_to_class


def _list_of(doc: dict[str, Any], key: str, *, f: Path, problems: list[Problem]) -> list[Any]:
    """``doc[key]`` when it is a list (missing: empty); anything else is reported and read as empty."""
    value = get_list(doc, key)
    if value is None:
        problems.append(Problem(ProblemKind.BAD_ANNOTATION, f"{key!r} is {describe(doc.get(key))}, not a list; "
                                "read as empty.", f))
        return []
    return value


class COCOFormat:
    name = "coco"
    description = "COCO JSON instances (polygons, RLE, iscrowd); Roboflow exports with split folders."

    def sniff(self, path: Path) -> float:
        return 0.9 if _json_files(path) else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``overlap`` ("last" | "smallest" | "multilabel"), ``crowd`` ("include" | "ignore"),
        ``max_pixels``."""
        with gc_paused():
            return self._open(Path(path), options)

    def _open(self, path: Path, options: dict[str, Any]) -> Dataset:
        from segstudio.core.errors import UnknownKeyError

        crowd = str(options.get("crowd", "include"))
        if crowd not in CROWD_POLICIES:
            raise UnknownKeyError("crowd policy", crowd, list(CROWD_POLICIES))
        files = _json_files(path)
        if not files:
            raise DatasetError("No COCO JSON (images + annotations + categories) found.", path=path)
        root = path if path.is_dir() else path.parent
        max_pixels = options.get("max_pixels", DEFAULT_MAX_PIXELS)
        problems: list[Problem] = []
        docs = [(split, f, read_json_object(f, what="COCO file")) for split, f in files]
        overlap = str(options.get("overlap") or ("multilabel" if all(_written_multilabel(d) for _, _, d in docs) else "last"))
        if overlap not in OVERLAP_POLICIES:
            raise UnknownKeyError("overlap policy", overlap, list(OVERLAP_POLICIES))
        crowd_ignore = crowd == "ignore"
        crowd_left_out = 0
        categories: list[_Cat] = []
        seen_cat: set[Any] = set()
        used: set[Any] = set()
        for _, f, doc in docs:
            bad = 0
            for c in _list_of(doc, "categories", f=f, problems=problems):
                cid = get_id(c, "id") if isinstance(c, dict) else None
                if cid is None:
                    bad += 1
                    continue
                if cid not in seen_cat:
                    seen_cat.add(cid)
                    categories.append((cid, get_str(c, "name") or str(cid)))
            if bad:
                problems.append(Problem(ProblemKind.BAD_ANNOTATION, f"{bad} categor(ies) without a usable id (a "
                                        "number or a string); skipped.", f))
            used.update(get_id(a, "category_id") for a in _list_of(doc, "annotations", f=f, problems=[])
                        if isinstance(a, dict))
        schema, cat_to_class = _schema(categories, used, multilabel=overlap == "multilabel", problems=problems,
                                       src=files[0][1], crowd_ignore=crowd_ignore)
        anns_by_key: dict[tuple[Path, Any], list[_Ann]] = {}
        samples: list[Sample] = []
        for split, f, doc in docs:
            per_image: dict[Any, list[_Ann]] = defaultdict(list)
            bad_cats: Counter[Any] = Counter()
            malformed = 0
            for k, a in enumerate(_list_of(doc, "annotations", f=f, problems=problems)):
                image_id = get_id(a, "image_id") if isinstance(a, dict) else None
                if not isinstance(a, dict) or image_id is None:
                    malformed += 1
                    continue
                cat = get_id(a, "category_id")
                cls = cat_to_class.get(cat)
                if cls is None:
                    bad_cats[describe(a.get("category_id"))] += 1
                    continue
                seg = a.get("segmentation")
                if not isinstance(seg, list | dict):  # bbox-only or broken: nothing to paint
                    malformed += 1
                    continue
                area = as_float(a.get("area")) or 0.0
                ann_id = get_id(a, "id")
                label = f"annotation id {describe(ann_id)}" if ann_id is not None else f"annotation {k} (no id)"
                is_crowd = crowd_ignore and bool(get_int(a, "iscrowd", lo=0))
                if is_crowd and schema.ignore_index is None:  # multi-label: no ignore value to paint
                    crowd_left_out += 1
                    continue
                paint = schema.ignore_index if is_crowd and schema.ignore_index is not None else cls
                per_image[image_id].append((paint, seg, area, label, is_crowd))
            for cat_text, n in bad_cats.items():
                problems.append(
                    Problem(ProblemKind.OUT_OF_RANGE, f"{n} annotation(s) use category_id {cat_text}, which is not "
                            "defined.", f)
                )
            if malformed:
                problems.append(
                    Problem(
                        ProblemKind.BAD_ANNOTATION,
                        f"{malformed} annotation(s) have no image_id or no segmentation (polygons or RLE), or one of "
                        "the wrong type; skipped.",
                        f,
                    )
                )
            listed = {get_id(im, "id") for im in _list_of(doc, "images", f=f, problems=problems) if isinstance(im, dict)}
            orphans = sum(len(v) for k, v in per_image.items() if k not in listed)
            if orphans:
                problems.append(
                    Problem(ProblemKind.MISSING_IMAGE, f"{orphans} annotation(s) refer to image ids not listed in images.", f)
                )
            samples.extend(
                _list_images(
                    doc,
                    f,
                    root=root,
                    split=split,
                    per_image=per_image,
                    anns_by_key=anns_by_key,
                    problems=problems,
                    max_pixels=max_pixels,
                )
            )
        if crowd_left_out:
            problems.append(Problem(ProblemKind.OTHER, f"{crowd_left_out} crowd region(s) left out: a multi-label mask "
                                    "has no ignore value (crowd='ignore').", files[0][1]))
        ids = Counter(s.id for s in samples)
        if any(v > 1 for v in ids.values()):
            dup = {k for k, v in ids.items() if v > 1}
            problems += [Problem(ProblemKind.OTHER, "Listed more than once; the first entry is kept.", None, d) for d in sorted(dup)]
            first: dict[str, Sample] = {}
            for s in samples:
                first.setdefault(s.id, s)
            samples = list(first.values())
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options={**options, "overlap": overlap, "crowd": crowd, "_anns": anns_by_key},
        )


def _written_multilabel(doc: dict[str, Any]) -> bool:
    """The file says segstudio wrote it from a multi-label schema (``info.segstudio.multilabel``)."""
    info = doc.get("info")
    mark = info.get("segstudio") if isinstance(info, dict) else None
    return isinstance(mark, dict) and mark.get("multilabel") is True

def _list_images(
    doc: dict[str, Any],
    f: Path,
    *,
    root: Path,
    split: str | None,
    per_image: dict[Any, list[_Ann]],
    anns_by_key: dict[tuple[Path, Any], list[_Ann]],
    problems: list[Problem],
    max_pixels: int | None,
) -> list[Sample]:
    """The samples of one COCO file; fills ``anns_by_key`` and appends file-level problems."""
    out = []
    folder = f.parent
    prefix = id_prefix(folder, root)
    listing = DirListing(folder)
    for im in get_list(doc, "images") or []:
        fname = get_str(im, "file_name", numbers=False) if isinstance(im, dict) else None
        if fname is None:
            problems.append(Problem(ProblemKind.BAD_ANNOTATION, f"An image entry ({describe(im)}) has no file_name "
                                    "string; skipped.", f))
            continue
        rel = safe_relative(fname)
        if rel is None:
            problems.append(
                Problem(ProblemKind.PATH_ESCAPE, f"file_name {describe(fname)} is not a relative path inside the "
                        "dataset folder; skipped.", f)
            )
            continue
        present = listing.exists(rel)
        if not present and listing.exists("images/" + rel):  # Roboflow/CVAT exports put images one level down
            rel, present = "images/" + rel, True
        img = folder / rel
        sid = prefix + rel
        probs: list[Problem] = []
        h, w = get_int(im, "height", lo=0), get_int(im, "width", lo=0)
        if (h is None and im.get("height") is not None) or (w is None and im.get("width") is not None):
            probs.append(Problem(ProblemKind.BAD_ANNOTATION, f"height {describe(im.get('height'))} / width "
                                 f"{describe(im.get('width'))} are not whole numbers >= 0; the image's own size is "
                                 "used.", f, sid))
        h, w = (h or 0, w or 0) if h and w else (0, 0)  # 0: read from the image header on load
        if not present:
            probs.append(Problem(ProblemKind.MISSING_IMAGE, "The image file named in the JSON is missing.", img, sid))
        if max_pixels is not None and h * w > int(max_pixels):
            probs.append(
                Problem(ProblemKind.TOO_LARGE, f"The JSON declares {w}x{h} pixels, over the limit; not decoded.", img, sid)
            )
        image_id = get_id(im, "id")
        anns = per_image.get(image_id, []) if image_id is not None else []
        anns_by_key[(f, image_id)] = anns
        out.append(Sample(sid, img, split, _ImageGT(f, image_id, h, w), tuple(probs)))
    return out


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    loc = sample.gt
    if not isinstance(loc, _ImageGT):
        return None
    h, w = loc.height, loc.width
    if h <= 0 or w <= 0:
        h, w = image_shape(ds, sample)
    elif is_file(sample.image):
        real = image_shape(ds, sample)
        if real != (h, w):
            raise DatasetProblemError(
                f"The JSON says {w}x{h} but the image is {real[1]}x{real[0]}.",
                path=sample.image,
                fix="Fix width/height in the JSON or re-export the image.",
                kind=ProblemKind.SIZE_MISMATCH,
            )
    anns = ds.options["_anns"].get((loc.json_path, loc.image_id), [])
    if ds.options.get("overlap") == "smallest":
        anns = sorted(anns, key=lambda t: -t[2])  # stable: equal areas keep file order
    if ds.options.get("crowd") == "ignore":
        anns = sorted(anns, key=lambda t: t[4])  # crowd regions on top: ignored whatever lies beneath
    return paint_annotations(
        ((cls, seg, label) for cls, seg, _area, label, _crowd in anns),
        height=h,
        width=w,
        dtype=ds.schema.mask_dtype(),
        multilabel=ds.schema.multilabel,
        source=loc.json_path,
        max_pixels=max_pixels_of(ds),
    )


FORMAT = COCOFormat()


# --- writing (shared helpers: formats/writer_kit.py) ---------------------------------------------------------------
class COCOWriter:
    """One COCO instances JSON per split (Roboflow layout), images copied byte for byte.

    Layout: items without a split -> ``annotations.json`` at the root, images at their sample path; a split ->
    ``<folder>/_annotations.coco.json`` with its images in ``<folder>/`` (``train``, ``valid``, ``test``, or the
    split's own name): the reader maps them back to the same splits and sample ids.

    Categories are the schema's classes: a semantic schema's class ``c`` is category id ``c`` (the background
    class 0 and the ignore index are not categories: COCO has neither, so ignore pixels are left out and read back
    as background); a multi-label schema's bit ``b`` is category id ``b + 1``, and ``info.segstudio.multilabel``
    makes the reader open it multi-label. Overlapping classes are separate annotations, never flattened.

    Options: ``encoding`` ``rle`` (compressed RLE, exact; default) | ``polygon`` (pixel-edge outlines, holes cut
    in, see :func:`mask_to_polygons`: exact under pycocotools); ``instances`` ``class`` (one annotation per class
    per image; default) | ``components`` (one per 8-connected component). Images without a mask are listed with
    no annotations (COCO cannot tell them from empty masks: they read back as empty).
    """

    name = "coco"
    description = "COCO instances JSON per split (compressed RLE or polygons), images copied."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        encoding = export_option(options, "encoding", ENCODINGS, writer="COCO")
        instances = export_option(options, "instances", INSTANCE_MODES, writer="COCO")
        classes = written_classes(schema)
        cat_id = {c.id: c.id + 1 if schema.multilabel else c.id for c in classes}
        categories = [{"id": cat_id[c.id], "name": c.name, "supercategory": "none",
                       "color": "#{:02x}{:02x}{:02x}".format(*c.colour)} for c in classes]
        docs: dict[str | None, dict[str, list[dict[str, Any]]]] = {}
        ann_id = 0
        total = len(items)
        for done, item in enumerate(items, 1):
            folder = split_folder(item.split)
            doc = docs.setdefault(folder, {"images": [], "annotations": []})
            rel = rel_in_split(item, folder)
            dest = out / folder / rel if folder else out / rel
            mask, (h, w) = mask_or_shape(item, schema)
            image_id = len(doc["images"]) + 1
            doc["images"].append({"id": image_id, "file_name": rel.as_posix(), "height": h, "width": w})
            if mask is not None:
                mask = np.asfortranarray(mask)  # planes come out column-major, as pycocotools encodes them: no copy each
                for cls, plane in class_planes(mask, classes, multilabel=schema.multilabel):
                    for part in components(plane) if instances == "components" else [plane]:
                        ann_id += 1
                        doc["annotations"].append(
                            _annotation(part, ann_id=ann_id, image_id=image_id, category_id=cat_id[cls.id],
                                        encoding=encoding)
                        )
            copy_image(item, dest)
            yield WriteProgress(done, total, dest)
        info = {
            "description": "Exported by segstudio",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
            "segstudio": {"multilabel": schema.multilabel},
        }
        for folder, doc in docs.items():
            path = out / folder / ROBOFLOW_JSON if folder else out / "annotations.json"
            body = {"info": info, "licenses": [], "categories": categories, **doc}
            atomic_write_bytes(path, json.dumps(body, separators=(",", ":")).encode("utf-8"))
            log.info("wrote %s (%d images, %d annotations)", path, len(doc["images"]), len(doc["annotations"]))


def _annotation(plane: np.ndarray, *, ann_id: int, image_id: int, category_id: int, encoding: str) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_to_rle(plane)
    x, y, bw, bh = (float(v) for v in mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()}))
    segmentation: Any = rle if encoding == "rle" else mask_to_polygons(plane)
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})), "bbox": [x, y, bw, bh], "iscrowd": 0}


WRITER = COCOWriter()
