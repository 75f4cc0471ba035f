"""What the dataset writers share (issue 14): names and files in the output, masks checked against the schema,
PNG encoders, class planes and polygons, options and splits. Each writer sits beside its reader in
``formats/<format>.py``; the contract is ``datasets.writing``."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from PIL import Image

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.types import BACKGROUND_NAMES, ClassInfo, ClassSchema
from segstudio.datasets.util import SPLIT_NAMES
from segstudio.datasets.writing import DatasetExportError, ExportItem

#: Characters no file name may hold on some system we run on (Windows), plus the separators.
_BAD_NAME_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')

#: Formats that keep overlapping classes, named when a palette layout refuses a multi-label schema.
OVERLAP_FORMATS = "class-folders, binary-pngs or coco"


def refuse_multilabel(schema: ClassSchema, *, fmt: str) -> None:
    """Raise before anything is written when ``fmt`` (one index map per image) is given a multi-label schema."""
    if schema.multilabel:
        raise DatasetExportError(
            f"{fmt} holds one class per pixel, but this schema is multi-label: overlapping classes would be "
            "flattened.",
            fix=f"Export as {OVERLAP_FORMATS}, which keep overlaps.",
        )


def safe_file_name(name: str) -> str:
    """``name`` usable as one file name everywhere (separators and reserved characters become ``_``)."""
    text = _BAD_NAME_CHARS.sub("_", name).strip(" .")
    return text or "_"


def flat_names(
    items: Sequence[ExportItem], *, group: Callable[[ExportItem], str] = lambda _it: "", spaces: bool = True
) -> list[str]:
    """One output file name per item, unique (case-insensitively: macOS and Windows fold case) within its
    ``group`` (a split folder), by stem: layouts that match images and masks by stem need unique stems.

    The image's own name is kept where it is unique; colliding names (``a/x.png`` and ``b/x.png``) take their
    sub-folders (``a__x.png``), and a number as the last resort. ``spaces=False``: whitespace becomes ``_``
    (for layouts whose list files are split on whitespace)."""

    def clean(name: str) -> str:
        text = safe_file_name(name)
        return text if spaces else re.sub(r"\s", "_", text)

    base = [clean(it.rel.name) for it in items]
    full = [clean("__".join(it.rel.parts)) for it in items]
    keys = [(group(it), file_stem(n).lower()) for it, n in zip(items, base, strict=True)]
    counts = Counter(keys)
    names = [b if counts[k] == 1 else f for b, f, k in zip(base, full, keys, strict=True)]
    taken: set[tuple[str, str]] = set()
    out = []
    for it, n in zip(items, names, strict=True):
        stem, ext = file_stem(n), n[len(file_stem(n)):]
        cand, k = n, 1
        while (group(it), file_stem(cand).lower()) in taken:
            cand, k = f"{stem}__{k}{ext}", k + 1
        taken.add((group(it), file_stem(cand).lower()))
        out.append(cand)
    return out


def file_stem(name: str) -> str:
    """``x.png`` -> ``x`` (a name without a dot, or a dot file, is its own stem)."""
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def load_export_mask(item: ExportItem, schema: ClassSchema) -> np.ndarray | None:
    """The item's mask checked against ``schema`` (see ``checked_mask``), or None for an image without GT."""
    mask = item.load_mask()
    return None if mask is None else checked_mask(mask, schema=schema, item=item)


def unknown_values(mask: np.ndarray, schema: ClassSchema) -> list[int]:
    """Values of a semantic ``mask`` that are neither a class id nor the ignore index."""
    if mask.dtype == np.uint8:
        # a histogram: ~5x faster than bincount on a 1024² mask, and every exported mask is checked
        present = np.flatnonzero(cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).ravel())
    else:
        present = np.flatnonzero(np.bincount(mask.ravel().astype(np.int64, copy=False)))
    allowed = set(schema.ids) | ({schema.ignore_index} if schema.ignore_index is not None else set())
    return [int(v) for v in present if int(v) not in allowed]


def copy_with_mask(item: ExportItem, dest: Path, *, schema: ClassSchema) -> tuple[Path, np.ndarray | None]:
    """The source image copied to ``dest`` (see ``copy_image``), and the item's checked mask or None; a semantic
    mask holding a value with no class is refused, naming the sample (the folder writers' per-image step)."""
    last = copy_image(item, dest)
    mask = load_export_mask(item, schema)
    if mask is not None and not schema.multilabel:
        bad = unknown_values(mask, schema)
        if bad:
            raise DatasetExportError(
                f"The mask of {item.sample_id} holds values with no class: {bad[:8]}; the classes are "
                f"{sorted(schema.ids)}.",
                path=item.image_path, fix="Check the class mapping of the export (merged or dropped classes).",
            )
    return last, mask


#: Colour of ignore pixels in a palette when the ignore index is no class (VOC's void border colour).
IGNORE_COLOUR = (224, 224, 192)


def encode_index_png(mask: np.ndarray, schema: ClassSchema) -> bytes:
    """A semantic mask as PNG: an 8-bit palette PNG whose palette holds the schema's colours (viewers show
    colours, the pixel values stay class ids), or a 16-bit grey PNG when ids exceed 255 (PNG palettes hold 256)."""
    if schema.mask_dtype() == np.uint8:
        pal = schema.palette(256)
        if schema.ignore_index is not None and not schema.has_id(schema.ignore_index):
            pal[schema.ignore_index] = IGNORE_COLOUR
        return encode_palette_png(mask, pal)
    return encode_grey_png(mask.astype(np.uint16, copy=False))


def encode_palette_png(mask: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette PNG of a 2-D index ``mask`` (values 0..255) with ``palette`` (``(256, 3) uint8``)."""
    im = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    im.putpalette(palette.ravel().tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=3)  # ~2x faster than the default 6 for a file ~1.5x larger
    return buf.getvalue()


def encode_grey_png(mask: np.ndarray) -> bytes:
    """An 8- or 16-bit grey PNG of a 2-D ``uint8``/``uint16`` array."""

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(mask), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DatasetExportError(f"OpenCV could not encode a {mask.dtype} {mask.shape} mask as PNG.")
    return buf.tobytes()


def classes_json(schema: ClassSchema, **extra: Any) -> bytes:
    """``classes.json`` text that ``schema_from_json`` reads back to ``schema`` (ids, names, colours, ignore)."""
    doc = {**extra, **schema.to_dict()}
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def split_folder_name(split: str | None) -> str | None:
    """The folder name a split is written as (``valid`` -> ``val``), or None for an unknown name."""
    return SPLIT_NAMES.get(split.lower()) if split else None


def refuse_bad_splits(items: Sequence[ExportItem], *, fmt: str, flat_option: str | None) -> bool:
    """True when ``items`` carry splits (all of them ``train``/``val``/``test`` or a synonym); False when none do.
    Mixed or unknown splits raise: the layout has no place for them."""
    named = [it for it in items if it.split]
    if not named:
        return False
    unknown = sorted({str(it.split) for it in named if split_folder_name(it.split) is None})
    if unknown or len(named) != len(items):
        what = (f"splits it has no folder for ({', '.join(unknown)})" if unknown
                else f"{len(items) - len(named)} images without a split beside others with one")
        fix = "Filter the export to train/val/test splits"
        raise DatasetExportError(
            f"{fmt} keeps splits as train/ val/ test/ folders; this export has {what}.",
            fix=fix + (f", or export with the option {flat_option}=false for one flat folder." if flat_option else "."),
        )
    return True


#: ``split`` -> folder of the COCO export (Roboflow's names, which the reader maps back through ``SPLIT_NAMES``).
_SPLIT_FOLDERS = {"train": "train", "val": "valid", "test": "test"}
#: The file name of a per-split COCO file (Roboflow's); the reader also takes any sub-folder holding one as a split.
ROBOFLOW_JSON = "_annotations.coco.json"
ENCODINGS = ("rle", "polygon")
INSTANCE_MODES = ("class", "components")


def export_option(options: Mapping[str, Any], key: str, valid: Sequence[str], *, writer: str) -> str:
    """``options[key]`` (default: ``valid[0]``), checked against ``valid`` before anything is written."""
    value = str(options.get(key, valid[0]))
    if value not in valid:
        raise DatasetExportError(
            f"The {writer} export has no {key} {value!r}.",
            fix=f"Use one of: {', '.join(valid)} (default {valid[0]}).",
        )
    return value


def is_background(schema: ClassSchema, cls: ClassInfo) -> bool:
    """A semantic class 0 named like the background: the pixels no class covers, not a class of its own."""
    return not schema.multilabel and cls.id == 0 and cls.name.strip().lower() in BACKGROUND_NAMES


def is_ignored(schema: ClassSchema, cls: ClassInfo) -> bool:
    return not schema.multilabel and (cls.ignore or cls.id == schema.ignore_index)


def written_classes(schema: ClassSchema) -> list[ClassInfo]:
    """The classes a vector or per-class layout writes: all of a multi-label schema; a semantic schema's without
    the background class 0 and the ignore class(es)."""
    return [c for c in schema if not is_background(schema, c) and not is_ignored(schema, c)]


def checked_mask(mask: np.ndarray, *, schema: ClassSchema, item: ExportItem) -> np.ndarray:
    """``mask`` after checking it is a 2-D mask of the export schema (a caller's bug otherwise, said plainly)."""
    want = schema.mask_dtype()
    if mask.ndim != 2 or (schema.multilabel and mask.dtype != want) or (not schema.multilabel and mask.dtype.kind != "u"):
        raise DatasetExportError(
            f"The mask of {item.sample_id} is {mask.dtype}{list(mask.shape)}, not a 2-D {want} mask of the export's "
            f"{'multi-label' if schema.multilabel else 'semantic'} class schema.",
            path=item.image_path,
            fix="Export with the schema the masks were made in (this is a bug if it came from the app).",
        )
    return mask


def class_planes(mask: np.ndarray, classes: Sequence[ClassInfo], *, multilabel: bool) -> Iterator[tuple[ClassInfo, np.ndarray]]:
    """``(class, (H, W) bool)`` for each of ``classes`` present in ``mask`` (semantic index map or ``uint64``
    bitmask), in the order given. Absent classes are skipped without building a plane."""
    if multilabel:
        present = int(np.bitwise_or.reduce(mask, axis=None)) if mask.size else 0
        for c in classes:
            if present >> c.id & 1:
                yield c, (mask & np.uint64(1 << c.id)) != 0
    else:
        # a histogram, not np.unique: no sort of the whole mask (a third of a 1024² COCO export's time otherwise)
        present_ids = set(np.flatnonzero(np.bincount(mask.ravel(order="K"))).tolist()) if mask.size else set()
        for c in classes:
            if c.id in present_ids:
                yield c, mask == c.id


def mask_to_polygons(plane: np.ndarray) -> list[list[float]]:
    """``(H, W) bool`` -> COCO polygons ``[x1, y1, x2, y2, ...]``, one per 8-connected component.

    The outlines follow pixel edges (vertices on pixel corners), traced by ``cv2.findContours`` on the mask
    upsampled 2x: a boundary pixel's centre at ``u`` in the upsampled grid lies on the corner ``ceil(u / 2)``. Holes
    are joined to their component's outline by a zero-width cut (out to the hole and back along the same segment),
    which the even-odd fill of pycocotools (and of labelme's Qt and PIL drawing) leaves empty. Rasterised with
    pycocotools (``annToMask``, our readers) the polygons give back the mask exactly; tools that draw a polygon's
    boundary pixels as well (PIL ``ImageDraw.polygon(outline=1)``, labelme2voc) add the pixels along its right and
    bottom edges.
    """

    if not plane.any():
        return []
    up = np.repeat(np.repeat(np.ascontiguousarray(plane, np.uint8), 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]
    out: list[list[float]] = []
    for i, contour in enumerate(contours):
        if links[i][3] != -1:  # a hole: joined to its parent below
            continue
        outline = _corners(contour)
        parts = [outline]
        child = links[i][2]
        while child != -1:
            hole = _corners(contours[child])
            parts.append(np.vstack([outline[:1], hole, hole[:1], outline[:1]]))
            child = links[child][0]
        out.append(np.vstack(parts).astype(np.float64).ravel().tolist())
    return out


def _corners(contour: np.ndarray) -> np.ndarray:
    pts = (contour.reshape(-1, 2).astype(np.int64) + 1) // 2
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) > 1 and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    return pts


def components(plane: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of ``(H, W) bool`` as full-size planes (the connectivity ``mask_to_polygons``
    and COCO's instance masks use), in raster order of their first pixel."""

    n, labels = cv2.connectedComponents(plane.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, n)]


def copy_image(item: ExportItem, dest: Path) -> Path:
    """The source image, byte for byte, at ``dest`` (atomically)."""
    try:
        data = Path(item.image_path).read_bytes()
    except OSError as e:
        raise DatasetExportError(
            f"Cannot read the image of {item.sample_id} to copy it ({e.strerror or e}).",
            path=item.image_path,
            fix="Check the source dataset is still there and readable, then export again.",
        ) from e
    return atomic_write_bytes(dest, data)


def mask_or_shape(item: ExportItem, schema: ClassSchema) -> tuple[np.ndarray | None, tuple[int, int]]:
    """The item's mask (checked) or None, and the image's ``(H, W)`` (the mask's; else read from the header)."""
    from segstudio.datasets.io import image_size

    mask = load_export_mask(item, schema)
    if mask is not None:
        return mask, (int(mask.shape[0]), int(mask.shape[1]))
    w, h = image_size(item.image_path)
    return None, (h, w)


def split_folder(split: str | None) -> str | None:
    """The folder a split is written in: Roboflow's names for train/val/test, else the split's own name made
    safe as one folder name; ``None`` for no split (the export's root)."""
    if split is None:
        return None
    if split in _SPLIT_FOLDERS:
        return _SPLIT_FOLDERS[split]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split).strip(".") or "split"
    return safe


def rel_in_split(item: ExportItem, folder: str | None) -> PurePosixPath:
    """``item.rel`` without a leading folder that already names the item's split (``valid/x.jpg`` written into
    ``valid/`` stays ``valid/x.jpg``, not ``valid/valid/x.jpg``), so sample ids read back alike."""
    rel = item.rel
    if folder is None or len(rel.parts) < 2:
        return rel
    head = rel.parts[0]
    same = head == folder or head == item.split or (
        head.lower() in SPLIT_NAMES and SPLIT_NAMES[head.lower()] == SPLIT_NAMES.get(folder.lower(), folder)
    )
    return PurePosixPath(*rel.parts[1:]) if same else rel


