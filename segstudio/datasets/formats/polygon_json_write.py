"""Writers of the per-image polygon JSON layouts read by ``formats/polygon_json.py``: labelme files and the
hand-bone competition layout (issue 14). Shared writer helpers: ``formats/writer_kit.py``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.types import ClassSchema
from segstudio.datasets.formats.polygon_json import BACKGROUND_LABEL, HAND_BONE_CLASSES, IGNORE_LABEL
from segstudio.datasets.formats.writer_kit import (
    class_planes,
    copy_image,
    mask_or_shape,
    mask_to_polygons,
    written_classes,
)
from segstudio.datasets.util import SPLIT_NAMES
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

log = logging.getLogger(__name__)


def _points(flat: list[float]) -> list[list[float]]:
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)]


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8")


def _labelme_shapes(mask: np.ndarray, schema: ClassSchema) -> list[dict[str, Any]]:
    """One polygon shape per 8-connected component per class (holes cut in, see ``mask_to_polygons``); a semantic
    mask's ignore pixels become ``__ignore__`` shapes, last."""
    out: list[tuple[str, list[float]]] = []
    for cls, plane in class_planes(mask, written_classes(schema), multilabel=schema.multilabel):
        out += [(cls.name, poly) for poly in mask_to_polygons(plane)]
    if not schema.multilabel and schema.ignore_index is not None:
        out += [(IGNORE_LABEL, poly) for poly in mask_to_polygons(mask == schema.ignore_index)]
    return [{"label": label, "points": _points(poly), "group_id": None, "description": "", "shape_type": "polygon",
             "flags": {}, "mask": None} for label, poly in out]


class LabelmeWriter:
    """labelme JSON per image, images copied byte for byte.

    ``x.json`` beside ``x.png`` (``imagePath`` the image's name); a sample in a sub-folder (``a/x.png``) gets its
    JSON at the root as ``a__x.json`` with ``imagePath`` ``a/x.png``, since the reader lists the root's JSON files.
    Shapes: one ``polygon`` per connected component per class, on pixel corners, holes joined to their outline
    by a zero-width cut (labelme draws and fills polygons even-odd, so the hole shows as a hole; labelme2voc's PIL
    fill adds the pixels along the right and bottom edges). Overlapping (multi-label) classes are separate
    shapes. Semantic ignore pixels are ``__ignore__`` shapes. ``labels.txt`` lists ``__ignore__``,
    ``_background_`` and the classes (labelme2voc's order: line ``i`` is id ``i - 1``); ``classes.json`` keeps the
    exact schema (ids, colours, multi-label) for segstudio. labelme has no splits: they are not written. Images
    without a mask get a JSON without shapes (read back as empty).
    """

    name = "labelme"
    description = "labelme JSON per image (polygons per component and class), labels.txt, images copied."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        names = [c.name for c in written_classes(schema)]
        reserved = [n for n in names if n in (IGNORE_LABEL, BACKGROUND_LABEL)]
        if reserved:
            raise DatasetExportError(f"Class {reserved[0]!r} is a label labelme reserves.",
                                     fix="Rename the class in the export's class mapping.")
        jsons: dict[str, str] = {}
        for item in items:
            rel = item.rel
            name = (rel.with_suffix(".json").name if len(rel.parts) == 1
                    else "__".join(rel.with_suffix(".json").parts))
            if name in jsons:
                raise DatasetExportError(
                    f"{item.sample_id} and {jsons[name]} would both be annotated in {name}.",
                    path=item.image_path, fix="Rename one of the images (labelme pairs a JSON with an image by name).",
                )
            jsons[name] = item.sample_id
        if any(item.split for item in items):
            log.info("labelme has no splits: the export's split assignment is not written")
        total = len(items)
        atomic_write_bytes(out / "labels.txt", "\n".join([IGNORE_LABEL, BACKGROUND_LABEL, *names, ""]).encode("utf-8"))
        atomic_write_bytes(out / "classes.json", _json_bytes(schema.to_dict()))
        for done, item in enumerate(items, 1):
            rel = item.rel
            mask, (h, w) = mask_or_shape(item, schema)
            copy_image(item, out / rel)
            json_rel = rel.with_suffix(".json") if len(rel.parts) == 1 else PurePosixPath("__".join(rel.with_suffix(".json").parts))
            image_path = rel.name if len(rel.parts) == 1 else rel.as_posix()
            doc: dict[str, Any] = {"version": "5.5.0", "flags": {}, "shapes": _labelme_shapes(mask, schema) if mask is not None else [],
                   "imagePath": image_path, "imageData": None, "imageHeight": h, "imageWidth": w}
            dest = atomic_write_bytes(out / json_rel, _json_bytes(doc))
            yield WriteProgress(done, total, dest)


_HAND_SPLITS = {"train": "train", "val": "val", "test": "test"}


class HandBoneWriter:
    """The hand-bone competition layout: ``[split/]DCM/<case>/<image>`` + ``[split/]outputs_json/<case>/<stem>.json``.

    Each JSON holds ``{"annotations": [{"id", "type": "poly_seg", "attributes": {}, "points", "label"}],
    "filename"}``: one ``poly_seg`` per connected component per class (holes cut in as for labelme), classes
    overlapping freely. The reader knows the 29 bone classes only, so the schema's classes must be among them
    (semantic schemas too; background and ignore are not written). ``<case>`` is the sample's folder (``ID001``)
    or ``ID000`` for samples at the root; splits ``train``/``val``/``test`` become the reader's split folders;
    images without a mask get no JSON (the reader lists them without GT, like the competition's test set).
    """

    name = "hand-bone"
    description = "Hand-bone layout: DCM/IDxxx images + outputs_json/IDxxx poly_seg JSON (29 bone classes)."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        classes = written_classes(schema)
        unknown = [c.name for c in classes if c.name not in HAND_BONE_CLASSES]
        if unknown:
            raise DatasetExportError(
                f"The hand-bone layout holds the 29 bone classes only; {', '.join(map(repr, unknown[:5]))} "
                f"{'is' if len(unknown) == 1 else 'are'} not among them.",
                fix="Rename the classes to bone names (finger-1 ... Ulna) in the export, or export to labelme or "
                "coco, which keep any class.",
            )
        splits = {item.split for item in items}
        if len(splits) > 1 and None in splits or any(s is not None and s not in _HAND_SPLITS for s in splits):
            raise DatasetExportError(
                f"The hand-bone layout has split folders train/val/test only, used by every image or by none; this "
                f"export has {', '.join(sorted(str(s) for s in splits))}.",
                fix="Export one split at a time, or assign every image to train, val or test.",
            )
        places = [self._place(item) for item in items]
        seen: dict[PurePosixPath, str] = {}
        for item, (_img, js) in zip(items, places, strict=True):
            if js in seen:
                raise DatasetExportError(f"{item.sample_id} and {seen[js]} would share {js}.", path=item.image_path,
                                         fix="Rename one of the images: a case folder pairs JSON and image by stem.")
            seen[js] = item.sample_id
        total = len(items)
        for done, (item, (img_rel, json_rel)) in enumerate(zip(items, places, strict=True), 1):
            mask, _shape = mask_or_shape(item, schema)
            dest = copy_image(item, out / img_rel)
            if mask is not None:
                anns: list[dict[str, Any]] = []
                for cls, plane in class_planes(mask, classes, multilabel=schema.multilabel):
                    for poly in mask_to_polygons(plane):
                        anns.append({"id": f"segstudio-{len(anns) + 1}", "type": "poly_seg", "attributes": {},
                                     "points": _points(poly), "label": cls.name})
                dest = atomic_write_bytes(out / json_rel, _json_bytes({"annotations": anns, "filename": img_rel.name}))
            yield WriteProgress(done, total, dest)

    @staticmethod
    def _place(item: ExportItem) -> tuple[PurePosixPath, PurePosixPath]:
        parts = list(item.rel.parts)
        if len(parts) > 1 and parts[0].lower() in SPLIT_NAMES:
            parts = parts[1:]
        if len(parts) > 1 and parts[0] == "DCM":
            parts = parts[1:]
        case = "_".join(parts[:-1]) or "ID000"
        name = parts[-1]
        base = PurePosixPath(_HAND_SPLITS[item.split]) if item.split else PurePosixPath()
        stem = name.rsplit(".", 1)[0]
        return base / "DCM" / case / name, base / "outputs_json" / case / f"{stem}.json"


WRITER_LABELME = LabelmeWriter()
WRITER_HAND_BONE = HandBoneWriter()
