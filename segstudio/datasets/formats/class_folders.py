"""One binary-mask folder per class: ``images/x.png`` + ``<class>/x.png`` for every class (NLM lung masks).

Layout::

    root/
      classes.json          (optional: names, colours, image folder, folder per class, multilabel flag)
      cxr/ x.png ...         image folder (option ``images``; or found by name)
      leftMask/ x.png ...    one 0/255 (or 0/1, 1-bit) mask per image and class, same stem
      rightMask/ x.png ...

Semantic (default): background is 0 and class folder ``i`` is id ``i + 1``. Where two class masks overlap the
later class wins and an ``overlap`` problem is recorded for that sample (never silently): open with
``multilabel=True`` to keep every class (one bit per class folder, no background class).

``classes.json`` entries that carry an ``id`` (as ``WRITER`` writes them, issue 14) give the whole schema: ids,
names, colours, the ignore index, a background class without a folder, and ``ignore_folder`` for ignore pixels.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DatasetError
from segstudio.core.types import MAX_MULTILABEL_CLASSES, ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.binary import to_foreground
from segstudio.datasets.documents import (
    MAX_TEXT_BYTES,
    get_bool,
    get_int,
    get_list,
    get_str,
    read_json_object,
)
from segstudio.datasets.formats.writer_kit import (
    classes_json,
    copy_with_mask,
    encode_grey_png,
    file_stem,
    flat_names,
    safe_file_name,
)
from segstudio.datasets.io import DatasetProblemError, read_mask
from segstudio.datasets.util import (
    check_same_size,
    default_image_reader,
    id_prefix,
    image_files,
    image_shape,
    max_pixels_of,
    parse_colour,
    resolve_inside,
    schema_from_json,
    shared_stems,
    stem_index,
    subfolders,
)
from segstudio.datasets.writing import ExportItem, WriteProgress

log = logging.getLogger(__name__)

#: Folder names that hold images (lower case), best first.
IMAGE_FOLDER_NAMES = ("images", "image", "imgs", "img", "cxr", "jpegimages", "inputs", "input", "raw", "x")

#: Folder names of a single union/index mask folder: those belong to the paired-folders format, not a class.
GENERIC_MASK_NAMES = frozenset(
    {"masks", "mask", "labels", "label", "annotations", "annots", "gt", "groundtruth", "ground_truth", "y",
     "segmentations", "segmentation", "manualmask", "manualmasks"}
)

#: Human names for the NLM chest X-ray per-organ folders (Montgomery/JSRT-SCR conventions).
KNOWN_CLASS_NAMES = {
    "leftmask": "left lung",
    "rightmask": "right lung",
    "heartmask": "heart",
    "leftclaviclemask": "left clavicle",
    "rightclaviclemask": "right clavicle",
}

MASKISH_RE = re.compile(r"mask|label|annot|seg|gt", re.IGNORECASE)


def humanise_folder(name: str) -> str:
    """``leftMask`` -> ``left lung`` (known NLM names), ``optic_disc_masks`` -> ``optic disc``."""
    known = KNOWN_CLASS_NAMES.get(name.lower())
    if known:
        return known
    base = re.sub(r"[_\-\s]*(masks?|labels?)$", "", name, flags=re.IGNORECASE) or name
    base = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)
    return re.sub(r"[_\-]+", " ", base).strip().lower() or name


@dataclass(frozen=True)
class _Layout:
    images: Path
    classes: tuple[tuple[str, Path], ...]  # (class name, folder)
    colours: tuple[tuple[int, int, int] | None, ...]
    multilabel: bool | None
    from_json: bool
    #: the whole schema, when classes.json gives every class its id (as segstudio's export writes it)
    schema: ClassSchema | None = None
    #: the id (semantic) or bit (multi-label) of each folder in ``classes``, with ``schema``
    ids: tuple[int, ...] = ()
    #: folder of ignore-index pixels (semantic, an ignore index that is no class)
    ignore_folder: Path | None = None


def _classes_json_layout(root: Path) -> _Layout | None:
    cfg = root / "classes.json"
    if not cfg.is_file():
        return None
    d = read_json_object(cfg, max_bytes=MAX_TEXT_BYTES, what="classes.json")
    images = get_str(d, "images", numbers=False)
    entries = [c for c in get_list(d, "classes") or [] if isinstance(c, dict) and get_str(c, "folder")]
    if not entries or not images:
        return None
    img_dir = resolve_inside(root, images)
    folders = [resolve_inside(root, get_str(c, "folder") or "") for c in entries]
    multilabel = get_bool(d, "multilabel") if "multilabel" in d else None
    schema: ClassSchema | None = None
    ids: tuple[int, ...] = ()
    ignore_folder: Path | None = None
    escaped = False
    if all("id" in c for c in get_list(d, "classes") or [] if isinstance(c, dict)):
        # Explicit ids (segstudio's export): the schema reads back whole, background and ignore included.
        schema = schema_from_json(d, path=cfg)
        ids = tuple(get_int(c, "id") or 0 for c in entries)
        ignore_name = get_str(d, "ignore_folder")
        if ignore_name:
            ignore_folder = resolve_inside(root, ignore_name)
            escaped = ignore_folder is None
    if img_dir is None or escaped or any(f is None for f in folders):
        raise DatasetProblemError(
            "classes.json names a folder outside the dataset (an absolute path or '..').",
            path=cfg,
            fix="Give the image and class folders as names relative to the dataset folder.",
            kind=ProblemKind.PATH_ESCAPE,
        )
    return _Layout(
        images=img_dir,
        classes=tuple(
            (get_str(c, "name") or f.name, f) for c, f in zip(entries, folders, strict=True) if f is not None
        ),
        colours=tuple(parse_colour(c.get("colour", c.get("color"))) for c in entries),
        multilabel=multilabel,
        from_json=True,
        schema=schema,
        ids=ids,
        ignore_folder=ignore_folder,
    )


def _guess_image_folder(folders: list[Path]) -> Path | None:
    by_name = {f.name.lower(): f for f in folders}
    for n in IMAGE_FOLDER_NAMES:
        if n in by_name:
            return by_name[n]
    unmaskish = [f for f in folders if not MASKISH_RE.search(f.name)]
    return unmaskish[0] if len(unmaskish) == 1 else None


def _guess_layout(root: Path, *, images: str | None, classes: list[str] | None) -> _Layout | None:
    folders = [f for f in subfolders(root) if image_files(f)]
    img = root / images if images else _guess_image_folder(folders)
    if img is None:
        return None
    if classes:
        cls = [root / c for c in classes]
    else:
        cls = [f for f in folders if f != img and f.name.lower() not in GENERIC_MASK_NAMES]
    return _Layout(
        images=img,
        classes=tuple((humanise_folder(f.name), f) for f in cls),
        colours=tuple(None for _ in cls),
        multilabel=None,
        from_json=False,
    )


class ClassFoldersFormat:
    name = "class-folders"
    description = "An image folder plus one binary-mask folder per class, same file stems (NLM lung masks)."

    def sniff(self, path: Path) -> float:
        if not path.is_dir():
            return 0.0
        try:
            layout = _classes_json_layout(path)
        except DatasetError:
            layout = None
        if layout is not None:
            return 0.95
        layout = _guess_layout(path, images=None, classes=None)
        if layout is None or not layout.classes:
            return 0.0
        img_stems = set(stem_index(image_files(layout.images)))
        matching = [f for _, f in layout.classes if img_stems & set(stem_index(image_files(f)))]
        if len(matching) >= 2:
            return 0.8
        # A single mask folder is the paired layout's case; class-folders stays a weak candidate.
        return 0.3 if matching else 0.0

    def open(self, path: Path, **options: Any) -> Dataset:
        """Options: ``images`` (folder name), ``classes`` (class folder names, in id order), ``multilabel``
        (bool; default from classes.json, else False), ``max_pixels`` (image pixel limit)."""
        root = Path(path)
        images_opt, classes_opt = options.get("images"), options.get("classes")
        layout = None if (images_opt or classes_opt) else _classes_json_layout(root)
        if layout is None:
            layout = _guess_layout(root, images=images_opt, classes=list(classes_opt) if classes_opt else None)
        if layout is None or not layout.images.is_dir():
            raise DatasetError(
                "Cannot tell which folder holds the images.",
                path=root,
                fix="Open with the option images=<folder name>, or add a classes.json with an \"images\" entry.",
            )
        if not layout.classes:
            raise DatasetError(
                "No class mask folders were found beside the image folder.",
                path=root,
                fix="Put one folder of binary masks per class beside the images, or use the paired-folders format.",
            )
        multilabel = options.get("multilabel")
        if multilabel is None:
            multilabel = bool(layout.multilabel)
        problems: list[Problem] = []
        class_stems: list[tuple[int, Path, dict[str, str]]] = []
        folders = list(layout.classes)
        if layout.schema is not None and layout.schema.multilabel == bool(multilabel):
            schema = layout.schema
            class_ids = list(layout.ids)
            if layout.ignore_folder is not None and schema.ignore_index is not None and not multilabel:
                # painted last: ignore pixels are ignore whatever class folder also claims them
                folders.append(("ignore", layout.ignore_folder))
                class_ids.append(schema.ignore_index)
        else:
            schema = self._schema(layout, multilabel=bool(multilabel))
            class_ids = [c.id for c in schema.classes if not (not multilabel and c.id == 0)]
        for cid, (cname, folder) in zip(class_ids, folders, strict=True):
            if not folder.is_dir():
                problems.append(Problem(ProblemKind.MISSING_MASK, f"Class folder of {cname!r} is missing.", folder))
                class_stems.append((cid, folder, {}))
            else:
                class_stems.append((cid, folder, stem_index(image_files(folder))))
        img_names = image_files(layout.images)
        img_index = stem_index(img_names)
        problems += shared_stems(img_names, layout.images)
        samples = []
        prefix = id_prefix(layout.images, root)
        for stem, fname in img_index.items():
            img_path = layout.images / fname
            parts: list[tuple[int, Path]] = []
            sample_problems = []
            sid = prefix + fname
            for cid, folder, stems in class_stems:
                if stem in stems:
                    parts.append((cid, folder / stems[stem]))
                elif folder.is_dir():
                    sample_problems.append(
                        Problem(
                            ProblemKind.MISSING_MASK,
                            f"No mask for this image in {folder.name}/ (class {_class_name(schema, cid)!r}); "
                            "that class is taken as empty.",
                            folder / f"{stem}.png",
                            sid,
                        )
                    )
            samples.append(
                Sample(id=sid, image=img_path, gt=tuple(parts) if parts else None, problems=tuple(sample_problems))
            )
        for _cid, folder, stems in class_stems:
            for stem in sorted(set(stems) - set(img_index)):
                problems.append(
                    Problem(ProblemKind.MISSING_IMAGE, "Mask without a matching image.", folder / stems[stem])
                )
        return Dataset(
            root=root,
            format_name=self.name,
            schema=schema,
            samples=samples,
            read_image=default_image_reader,
            read_gt=_read_gt,
            problems=problems,
            options={**options, "multilabel": bool(multilabel), "images": layout.images.name,
                     "_fill": _fill_value(schema, class_ids)},
        )

    @staticmethod
    def _schema(layout: _Layout, *, multilabel: bool) -> ClassSchema:
        if multilabel:
            if len(layout.classes) > MAX_MULTILABEL_CLASSES:
                raise DatasetError(
                    f"{len(layout.classes)} class folders do not fit a multi-label mask "
                    f"({MAX_MULTILABEL_CLASSES} at most).",
                    path=layout.images.parent,
                    fix="Open with multilabel=False.",
                )
            infos = [
                ClassInfo(i, name, layout.colours[i] or default_colour(i + 1))
                for i, (name, _) in enumerate(layout.classes)
            ]
            return ClassSchema(tuple(infos), multilabel=True)
        infos = [ClassInfo(0, "background", (0, 0, 0))]
        infos += [
            ClassInfo(i + 1, name, layout.colours[i] or default_colour(i + 1)) for i, (name, _) in enumerate(layout.classes)
        ]
        return ClassSchema(tuple(infos))


def _fill_value(schema: ClassSchema, folder_ids: list[int]) -> int:
    """The id of pixels no class folder claims: the one semantic class without a folder (background), else 0."""
    if schema.multilabel:
        return 0
    rest = [c.id for c in schema.classes if c.id not in set(folder_ids)]
    return rest[0] if len(rest) == 1 else 0


def _class_name(schema: ClassSchema, cid: int) -> str:
    return schema.by_id(cid).name if schema.has_id(cid) else "ignore"


def _read_gt(ds: Dataset, sample: Sample) -> np.ndarray | None:
    if sample.gt is None:
        return None
    parts: tuple[tuple[int, Path], ...] = sample.gt  # type: ignore[assignment]
    limit = max_pixels_of(ds)
    shape = image_shape(ds, sample)
    out = np.full(shape, ds.options.get("_fill", 0), ds.schema.mask_dtype())
    # the class masks decode in parallel (the PNG/BMP decoders release the GIL); a 2048² pair takes one decode
    raw = _read_masks([p for _cid, p in parts], limit=limit)
    masks = []
    for (_cid, p), m in zip(parts, raw, strict=True):
        check_same_size(m, shape, path=p, what="its image")
        masks.append(to_foreground(ds, sample, m, path=p))
    if ds.schema.multilabel:
        for (cid, p), m in zip(parts, masks, strict=True):
            check_same_size(m, shape, path=p, what="its image")
            np.bitwise_or(out, np.uint64(1) << np.uint64(cid), out=out, where=m)
        return out
    taken = np.zeros(shape, bool)
    overlaps: list[str] = []
    for (cid, p), m in zip(parts, masks, strict=True):
        check_same_size(m, shape, path=p, what="its image")
        both = int(np.count_nonzero(np.logical_and(m, taken)))
        if both:
            overlaps.append(f"{_class_name(ds.schema, cid)!r} overlaps earlier classes on {both} px")
        np.copyto(out, out.dtype.type(cid), where=m)
        np.logical_or(taken, m, out=taken)
    if overlaps:
        _report_overlap(ds, sample, overlaps)
    return out


_decode_pool: ThreadPoolExecutor | None = None
_decode_pool_lock = threading.Lock()


def _decode_threads() -> ThreadPoolExecutor:
    """The threads that decode a sample's class masks side by side, made on first use in each process."""
    global _decode_pool
    with _decode_pool_lock:
        if _decode_pool is None:
            _decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="segstudio-class-masks")
        return _decode_pool


def _forget_decode_threads() -> None:
    # A forked process (a DataLoader worker) inherits the pool object but none of its threads, and perhaps a lock
    # some thread held at the fork: work submitted to it would wait forever. The child makes its own.
    global _decode_pool, _decode_pool_lock
    _decode_pool, _decode_pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_decode_threads)


def _read_masks(paths: list[Path], *, limit: int | None) -> list[np.ndarray]:
    if len(paths) < 2:
        return [read_mask(p, max_pixels=limit) for p in paths]
    pool = _decode_threads()
    futures = [pool.submit(read_mask, p, max_pixels=limit) for p in paths]
    return [f.result() for f in futures]  # re-raises the first failure, which names its file


def _report_overlap(ds: Dataset, sample: Sample, overlaps: list[str]) -> None:
    if any(p.kind == ProblemKind.OVERLAP and p.sample_id == sample.id for p in ds.problems):
        return
    msg = (
        "; ".join(overlaps)
        + ". In this semantic view the later class wins there; open with multilabel=True to keep both."
    )
    log.warning("%s: %s", sample.id, msg)
    ds.problems.append(Problem(ProblemKind.OVERLAP, msg, sample.image, sample.id))


FORMAT = ClassFoldersFormat()


# --- writing (issue 14) ----------------------------------------------------------------------------------------------

#: Semantic class names written without a folder: their pixels are those no class folder claims.
BACKGROUND_NAMES = frozenset({"background", "_background_", "bg"})


def _folder_names(schema: ClassSchema, written: list[int]) -> dict[int, str]:
    """A folder name per written class id: the class name made a file name, never an image-folder or union-mask
    name (which would make paired-folders detection compete), unique ignoring case."""
    reserved = set(IMAGE_FOLDER_NAMES) | set(GENERIC_MASK_NAMES) | {"ignore"}
    out: dict[int, str] = {}
    taken: set[str] = set()
    for cid in written:
        name = re.sub(r"\s+", "_", safe_file_name(schema.by_id(cid).name))
        if name.lower() in reserved:
            name = f"class_{name}"
        if name.lower() in taken:
            name = f"{name}_{cid}"
        taken.add(name.lower())
        out[cid] = name
    return out


class ClassFoldersWriter:
    name = "class-folders"
    description = "images/ + one 0/255 mask folder per class + classes.json; multi-label overlaps kept."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        if schema.multilabel:
            written = list(schema.ids)
        else:
            written = [c.id for c in schema.classes if not (c.id == 0 and c.name.strip().lower() in BACKGROUND_NAMES)]
        folders = _folder_names(schema, written)
        ignore_folder = None
        if not schema.multilabel and schema.ignore_index is not None and not schema.has_id(schema.ignore_index):
            ignore_folder = "ignore"
        doc = json.loads(classes_json(schema))
        for entry in doc["classes"]:
            if entry["id"] in folders:
                entry["folder"] = folders[entry["id"]]
        doc["images"] = "images"
        if ignore_folder:
            doc["ignore_folder"] = ignore_folder
        atomic_write_bytes(out / "classes.json", (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
        names = flat_names(items)
        targets = [(cid, folders[cid]) for cid in written]
        if ignore_folder is not None and schema.ignore_index is not None:
            targets.append((schema.ignore_index, ignore_folder))
        for n, (it, name) in enumerate(zip(items, names, strict=True), 1):
            last, mask = copy_with_mask(it, out / "images" / name, schema=schema)
            if mask is not None:
                for cid, folder in targets:
                    if schema.multilabel:
                        plane = (mask & np.uint64(1 << cid)) != 0
                    else:
                        plane = mask == cid
                    # 0/255: the convention of the NLM masks, and what every viewer shows as a mask
                    data = encode_grey_png(plane.view(np.uint8) * np.uint8(255))
                    last = atomic_write_bytes(out / folder / f"{file_stem(name)}.png", data)
            yield WriteProgress(n, len(items), last)


WRITER = ClassFoldersWriter()
