"""Per-image polygon JSON: labelme files, and the hand-bone X-ray competition layout.

``labelme``: ``x.json`` beside (or pointing with ``imagePath`` to) ``x.png``; ``shapes`` of type polygon, rectangle,
circle or mask (labelme >= 5.3: a base64 PNG of the shape's bounding box) are painted in file order (semantic:
later wins; ``multilabel=True``: every class kept). Classes come from ``classes.json`` (segstudio's: ids, colours,
multi-label), else ``labels.txt`` beside the JSON files or one folder up (labelme's example layout), else the labels
used. labelme's converters' convention holds: ``__ignore__`` is the ignore index (255; shapes with that label mark
pixels to ignore) and ``_background_`` is background (0; its shapes paint background, cutting holes). Point and
line shapes have no area; they are counted and reported once.

``hand-bone``: ``DCM/IDxxx/<image>.png`` with ``outputs_json/IDxxx/<image>.json`` shaped
``{"annotations": [{"label": "finger-1", "points": [[x, y], ...], "type": "poly_seg"}, ...]}``; the 29 bone
classes overlap, so the schema is multi-label. ``train/`` and ``test/`` folders of that shape become splits.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import DatasetError
from segstudio.core.geometry import GeometryError, flatten_points, mask_to_rle
from segstudio.core.types import DEFAULT_IGNORE_INDEX, ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample, relative_id
from segstudio.datasets.documents import (
    MAX_TEXT_BYTES,
    bad_field,
    describe,
    get_list,
    get_str,
    read_json,
    read_json_object,
)
from segstudio.datasets.formats.writer_kit import (
    is_ignored,
)
from segstudio.datasets.io import DatasetProblemError, is_file
from segstudio.datasets.raster import paint_annotations
from segstudio.datasets.util import (
    SPLIT_NAMES,
    default_image_reader,
    files_with_suffix,
    image_files,
    image_shape,
    max_pixels_of,
    read_class_names,
    resolve_inside,
    schema_from_json,
    stem_index,
    subfolders,
)

log = logging.getLogger(__name__)

HAND_BONE_CLASSES = (
    *(f"finger-{i}" for i in range(1, 20)),
    "Trapezium", "Trapezoid", "Capitate", "Hamate", "Scaphoid", "Lunate", "Triquetrum", "Pisiform", "Radius", "Ulna",
)  # fmt: skip
AREA_SHAPES = frozenset({"polygon", "rectangle", "circle", "poly_seg", "mask"})
#: labelme's reserved labels (labels.txt, labelme2voc): the ignore index and the background
IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"


@dataclass(frozen=True)
class MaskShape:
    """A labelme ``mask`` shape: a PNG (base64) of the pixels inside its bounding box, placed with its top-left
    corner at ``(x, y)``; decoded when the GT is drawn (the image's size is known then)."""

    x: int
    y: int
    width: int
    height: int
    png_base64: str


@dataclass(frozen=True)
class _JsonGT:
    json_path: Path


def shape_polygon(shape_type: str, points: Any) -> list[float]:
    """labelme shape -> flat polygon ``[x1, y1, ...]`` (rectangles as 4 corners, circles as 64-gons).

    Raises ``GeometryError`` for points that are not ``[x, y]`` number pairs."""
    flat = flatten_points(points)  # checked numbers first: the arithmetic below never sees strings or huge ints
    if shape_type == "rectangle" and len(flat) >= 4:
        x0, y0, x1, y1 = flat[:4]
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    if shape_type == "circle" and len(flat) >= 4:
        cx, cy, px, py = flat[:4]
        r = math.hypot(px - cx, py - cy)
        return [v for k in range(64) for v in (cx + r * math.cos(2 * math.pi * k / 64), cy + r * math.sin(2 * math.pi * k / 64))]
    return flat


def _labelme_jsons(folder: Path) -> list[Path]:
    out = []
    for f in files_with_suffix(folder, ".json"):
        try:
            with open(f, "rb") as fh:
                head = fh.read(4096)
        except OSError:
            continue
        if b'"shapes"' in head or (b'"imagePath"' in head):
            out.append(f)
    return out


def _classes_from_labels_txt(path: Path) -> tuple[list[str], bool, bool]:
    """Class names of a labels.txt, without labelme's reserved lines (wherever they stand), and whether
    ``__ignore__`` / ``_background_`` were listed."""
    lines = read_class_names(path)
    has_ignore = IGNORE_LABEL in lines
    has_bg = BACKGROUND_LABEL in lines
    return [n for n in lines if n not in (IGNORE_LABEL, BACKGROUND_LABEL)], has_ignore, has_bg


def _labels_txt(root: Path) -> Path | None:
    """``labels.txt`` beside the JSON files, else one folder up (labelme's examples keep it beside the
    annotation folder: ``labels.txt`` + ``data_annotated/``)."""
    for folder in (root, root.parent):
        if (folder / "labels.txt").is_file():
            return folder / "labels.txt"
    return None


def _mask_shape(points: Any, data: Any) -> MaskShape:
    """A labelme ``mask`` shape's box and PNG, checked for shape (the pixels are checked when drawn)."""
    flat = flatten_points(points)
    if len(flat) != 4:
        raise GeometryError("A mask shape needs two points, its box's top-left and bottom-right corners.")
    x0, y0, x1, y1 = (int(v) for v in flat)  # labelme truncates the box to whole pixels, inclusive
    if x1 < x0 or y1 < y0:
        raise GeometryError(f"The mask's box ({x0}, {y0}) - ({x1}, {y1}) is upside down.")
    if not isinstance(data, str) or not data:
        raise GeometryError("A mask shape needs its 'mask': a base64 PNG of the box's pixels.")
    return MaskShape(x0, y0, x1 - x0 + 1, y1 - y0 + 1, data)


def mask_shape_rle(shape: MaskShape, *, height: int, width: int) -> dict[str, Any]:
    """The mask shape as a compressed COCO RLE of the ``height x width`` image; ``GeometryError`` when the PNG is
    not a PNG, is not the box's size, or the box is not inside the image."""
    from PIL import Image, UnidentifiedImageError

    if shape.x < 0 or shape.y < 0 or shape.x + shape.width > width or shape.y + shape.height > height:
        raise GeometryError(
            f"The mask's box ({shape.x}, {shape.y}) size {shape.width}x{shape.height} is not inside the "
            f"{width}x{height} image."
        )
    try:
        raw = base64.b64decode(shape.png_base64, validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            if im.size != (shape.width, shape.height):  # checked before decoding: no decompression bomb
                raise GeometryError(f"The mask PNG is {im.size[0]}x{im.size[1]}, not its box's "
                                    f"{shape.width}x{shape.height}.")
            pixels = np.asarray(im.convert("L")) > 0
    except GeometryError:
        raise
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as e:
        raise GeometryError(f"The mask is not a base64 PNG ({type(e).__name__}).") from e
    full = np.zeros((height, width), bool)
    full[shape.y : shape.y + shape.height, shape.x : shape.x + shape.width] = pixels
    return mask_to_rle(full)


class LabelmeFormat:
    name = "labelme"
    description = "labelme JSON per image (polygon / rectangle / circle shapes)."

    def sniff(self, path: Path) -> float:
        if path.is_file():
            return 0.9 if path.suffix.lower() == ".json" and _labelme_jsons(path.parent) else 0.0
        return 0.85 if path.is_dir() and _labelme_jsons(path) else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``multilabel`` (bool), ``classes`` (names in id order). Without them, ``classes.json`` (the
        schema, as segstudio writes it) decides both."""
        root = Path(path) if Path(path).is_dir() else Path(path).parent
        files = _labelme_jsons(root)
        if not files:
            raise DatasetError("No labelme JSON files here.", path=root)
        problems: list[Problem] = []
        docs: list[tuple[Path, dict[str, Any]]] = []
        for f in files:
            try:
                d = read_json(f, max_bytes=MAX_TEXT_BYTES)
            except DatasetProblemError as e:
                problems.append(e.to_problem())
                continue
            docs.append((f, d if isinstance(d, dict) else {}))
        schema = self._schema(root, docs, options=options, problems=problems)
        multilabel = schema.multilabel
        by_name = {c.name: c.id for c in schema if not (c.id == 0 and not multilabel) and not is_ignored(schema, c)}
        if not multilabel:
            by_name[BACKGROUND_LABEL] = 0
            if schema.ignore_index is not None:
                by_name[IGNORE_LABEL] = schema.ignore_index
        reserved_left_out = 0
        shapes_of: dict[Path, list[tuple[int, Any, str]]] = {}
        samples = []
        no_area: Counter[str] = Counter()
        img_index = stem_index(image_files(root))
        seen_ids: dict[str, Path] = {}
        for f, d in docs:
            rel = get_str(d, "imagePath", numbers=False)
            img = resolve_inside(f.parent, rel) if rel else None
            if (rel and img is None) or (rel is None and d.get("imagePath") is not None):
                problems.append(Problem(ProblemKind.PATH_ESCAPE, f"imagePath {describe(d.get('imagePath'))} is not a "
                                        "relative path inside the dataset; skipped.", f))
                continue
            if img is None or not is_file(img):
                beside = img_index.get(f.stem)
                img = root / beside if beside else (img or f.with_suffix(".png"))
            sid = relative_id(img, root) if is_file(img) else f.with_suffix(img.suffix).name
            if sid in seen_ids:
                problems.append(Problem(ProblemKind.OTHER, f"A second annotation file for {sid}; only {seen_ids[sid].name} is used.", f))
                continue
            seen_ids[sid] = f
            probs: list[Problem] = []
            if not is_file(img):
                probs.append(Problem(ProblemKind.MISSING_IMAGE, "The image of this JSON is missing.", img, sid))
            shapes: list[tuple[int, Any, str]] = []
            for n, s in enumerate(get_list(d, "shapes") or []):
                if not isinstance(s, dict):
                    probs.append(Problem(ProblemKind.BAD_ANNOTATION, f"Shape {n} is {describe(s)}, not an object.", f, sid))
                    continue
                stype = get_str(s, "shape_type") or "polygon"
                if stype not in AREA_SHAPES:
                    no_area[stype[:40]] += 1
                    continue
                label = get_str(s, "label")
                if multilabel and label in (IGNORE_LABEL, BACKGROUND_LABEL):
                    reserved_left_out += 1  # a bitmask has no ignore value, and no bit to clear for background
                    continue
                if label is None or label not in by_name:
                    probs.append(Problem(ProblemKind.OUT_OF_RANGE, f"Shape {n} has label {describe(s.get('label'))}, "
                                         "not in the class list.", f, sid))
                    continue
                try:
                    seg: Any = (_mask_shape(s.get("points"), s.get("mask")) if stype == "mask"
                                else [shape_polygon(stype, s.get("points") or [])])
                    shapes.append((by_name[label], seg, f"shape {n} ({describe(label)})"))
                except GeometryError as e:
                    probs.append(Problem(ProblemKind.BAD_ANNOTATION, f"Shape {n} ({describe(label)}) is malformed: {e}",
                                         f, sid))
            shapes_of[f] = shapes
            samples.append(Sample(sid, img, None, _JsonGT(f), tuple(probs)))
        if no_area:
            listed = ", ".join(f"{n} {t}" for t, n in no_area.items())
            problems.append(Problem(ProblemKind.OTHER, f"Shapes without area are not part of the masks: {listed}.", root))
        if reserved_left_out:
            problems.append(Problem(ProblemKind.OTHER, f"{reserved_left_out} {IGNORE_LABEL} / {BACKGROUND_LABEL} "
                                    "shape(s) left out: a multi-label mask has no ignore value or background class.", root))
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options={**options, "_shapes": shapes_of},
        )

    @staticmethod
    def _schema(root: Path, docs: list[tuple[Path, dict[str, Any]]], *, options: Mapping[str, Any],
                problems: list[Problem]) -> ClassSchema:
        multilabel = bool(options.get("multilabel", False))
        if not options.get("classes") and "multilabel" not in options and (root / "classes.json").is_file():
            return schema_from_json(read_json_object(root / "classes.json", max_bytes=MAX_TEXT_BYTES,
                                                     what="class list"), path=root / "classes.json")
        ignore = False
        labels_txt = _labels_txt(root)
        if options.get("classes"):
            names = [str(c) for c in options["classes"] if str(c) not in (IGNORE_LABEL, BACKGROUND_LABEL)]
            ignore = IGNORE_LABEL in [str(c) for c in options["classes"]]
        elif labels_txt is not None:
            names, ignore, _bg = _classes_from_labels_txt(labels_txt)
            if labels_txt.parent != root:
                log.info("labelme class list from %s (beside the annotation folder)", labels_txt)
        else:
            used = {
                label
                for _, d in docs
                for s in get_list(d, "shapes") or []
                if isinstance(s, dict) and (get_str(s, "shape_type") or "polygon") in AREA_SHAPES
                and (label := get_str(s, "label")) is not None
            }
            ignore = IGNORE_LABEL in used
            names = sorted(used - {IGNORE_LABEL, BACKGROUND_LABEL})
        if multilabel:
            return ClassSchema(tuple(ClassInfo(i, n, default_colour(i + 1)) for i, n in enumerate(names)), multilabel=True)
        infos = [ClassInfo(0, "background", (0, 0, 0))] + [ClassInfo(i + 1, n, default_colour(i + 1)) for i, n in enumerate(names)]
        return ClassSchema(tuple(infos), ignore_index=DEFAULT_IGNORE_INDEX if ignore else None)


def _drawable(shapes: list[tuple[int, Any, str]], *, height: int, width: int, source: Path) -> Iterator[tuple[int, Any, str]]:
    """The shapes with labelme mask shapes turned into RLEs of this image (checked against its size)."""
    for cls, seg, label in shapes:
        if isinstance(seg, MaskShape):
            try:
                seg = mask_shape_rle(seg, height=height, width=width)
            except GeometryError as e:
                raise DatasetProblemError(f"{label[:1].upper()}{label[1:]} cannot be drawn: {e}", path=source,
                                          fix="Fix or remove that mask shape.", kind=ProblemKind.BAD_ANNOTATION) from e
        yield cls, seg, label


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if not isinstance(sample.gt, _JsonGT):
        return None
    h, w = image_shape(ds, sample)
    return paint_annotations(
        _drawable(ds.options["_shapes"].get(sample.gt.json_path, []), height=h, width=w, source=sample.gt.json_path),
        height=h,
        width=w,
        dtype=ds.schema.mask_dtype(),
        multilabel=ds.schema.multilabel,
        source=sample.gt.json_path,
        max_pixels=max_pixels_of(ds),
    )


# --- hand bones ----------------------------------------------------------------------------------------------------


def _hand_roots(path: Path) -> list[tuple[str | None, Path]]:
    if (path / "DCM").is_dir():
        return [(None, path)]
    return [(SPLIT_NAMES[f.name.lower()], f) for f in subfolders(path) if f.name.lower() in SPLIT_NAMES and (f / "DCM").is_dir()]


class HandBoneFormat:
    name = "hand-bone"
    description = "Hand-bone X-rays: DCM/IDxxx/*.png + outputs_json/IDxxx/*.json poly_seg annotations (29 classes)."

    def sniff(self, path: Path) -> float:
        roots = _hand_roots(path) if path.is_dir() else []
        return 0.95 if any((r / "outputs_json").is_dir() for _, r in roots) else (0.5 if roots else 0.0)

    def open(self, path: Path, **options: Any) -> Dataset:
        root = Path(path)
        roots = _hand_roots(root)
        if not roots:
            raise DatasetError("No DCM/ folder (hand-bone layout) here.", path=root)
        schema = ClassSchema(
            tuple(ClassInfo(i, n, default_colour(i + 1)) for i, n in enumerate(HAND_BONE_CLASSES)), multilabel=True
        )
        by_name = {n: i for i, n in enumerate(HAND_BONE_CLASSES)}
        samples: list[Sample] = []
        problems: list[Problem] = []
        for split, r in roots:
            for case in subfolders(r / "DCM"):
                ann_dir = r / "outputs_json" / case.name
                for name in image_files(case):
                    img = case / name
                    sid = relative_id(img, root)
                    js = ann_dir / (name.rsplit(".", 1)[0] + ".json")
                    if js.is_file():
                        samples.append(Sample(sid, img, split, _JsonGT(js)))
                    elif (r / "outputs_json").is_dir():
                        miss = Problem(ProblemKind.MISSING_MASK, "No annotation JSON for this image.", js, sid)
                        samples.append(Sample(sid, img, split, None, (miss,)))
                    else:
                        samples.append(Sample(sid, img, split, None))  # a test split: images only
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_hand_gt,
            problems=problems,
            options={**options, "_by_name": by_name},
        )


def _read_hand_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if not isinstance(sample.gt, _JsonGT):
        return None
    f = sample.gt.json_path
    d = read_json_object(f, max_bytes=MAX_TEXT_BYTES, what="annotation file")  # read on demand: opening lists files
    by_name: dict[str, int] = ds.options["_by_name"]
    shapes = []
    annotations = get_list(d, "annotations")
    if annotations is None:
        raise bad_field(f, "The annotation file", "annotations", d.get("annotations"), "a list")
    for n, a in enumerate(annotations):
        if not isinstance(a, dict):
            raise bad_field(f, f"Annotation {n}", "(entry)", a, "an object {label, points}")
        label = get_str(a, "label")
        if label is None or label not in by_name:
            raise DatasetProblemError(
                f"Annotation {n} has label {describe(a.get('label'))}, not one of the 29 hand-bone classes.",
                path=f,
                kind=ProblemKind.OUT_OF_RANGE,
            )
        try:
            shapes.append((by_name[label], [flatten_points(a.get("points") or [])], f"annotation {n} ({label})"))
        except GeometryError as e:
            raise DatasetProblemError(f"Annotation {n} ({label!r}) is malformed: {e}", path=f, kind=ProblemKind.BAD_ANNOTATION) from e
    h, w = image_shape(ds, sample)
    return paint_annotations(shapes, height=h, width=w, dtype=ds.schema.mask_dtype(), multilabel=True, source=f,
                             max_pixels=max_pixels_of(ds))


FORMAT_LABELME = LabelmeFormat()
FORMAT_HAND_BONE = HandBoneFormat()
