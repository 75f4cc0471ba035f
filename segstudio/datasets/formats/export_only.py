"""Export-only layouts other tools train on (issue 14); segstudio has no reader for them.

``hand-bone-csv`` (:data:`WRITER_RLE_CSV`): the hand-bone competition's submission, one ``submission.csv`` with
columns ``image_name,class,rle``: one row per image and class (the schema's order), ``image_name`` the image's
file name, ``rle`` the competition's run-length code: the mask flattened row-major (C order), ``"start length"``
pairs with 1-based starts, separated by spaces, empty when the class is absent (its baseline's
``encode_mask_to_rle``). Images without a mask get empty rows too, so a submission lists every image.

``nnunet`` (:data:`WRITER_NNUNET`): an nnU-Net v2 raw dataset ``Dataset<ID>_<Name>/`` (see :class:`NnUNetWriter`).

``binary-pngs`` (:data:`WRITER_BINARY_PNGS`): ``images/<sample path>`` (copied byte for byte) and
``<class>/<sample path stem>.png``, one 0/255 8-bit PNG per image and class (all zero when the class is absent);
overlapping (multi-label) classes are simply in several folders. The background and ignore classes of a
semantic schema get no folder. A flat export is the ``class-folders`` layout.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets.formats.writer_kit import (
    class_planes,
    copy_image,
    export_option,
    is_background,
    is_ignored,
    mask_or_shape,
    written_classes,
)
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress

log = logging.getLogger(__name__)

CSV_NAME = "submission.csv"


def encode_rle(plane: np.ndarray) -> str:
    """``(H, W) bool`` -> the competition's RLE: row-major ``"start length ..."`` with 1-based starts."""
    pixels = np.concatenate([[False], np.asarray(plane, bool).ravel(order="C"), [False]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs.tolist()))


class RleCsvWriter:
    """``submission.csv``: ``image_name,class,rle`` per image and class (see the module's docstring)."""

    name = "hand-bone-csv"
    description = "Hand-bone competition CSV: image_name,class,rle (row-major, 1-based start/length pairs)."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        classes = written_classes(schema)
        names: dict[str, str] = {}
        for item in items:
            name = item.rel.name
            if name in names:
                raise DatasetExportError(
                    f"{item.sample_id} and {names[name]} have the same file name, which the CSV's image_name "
                    "cannot tell apart.", path=item.image_path, fix="Export them separately, or rename one.")
            names[name] = item.sample_id
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["image_name", "class", "rle"])
        total = len(items)
        dest = out / CSV_NAME
        without = 0
        for done, item in enumerate(items, 1):
            mask, _shape = mask_or_shape(item, schema)
            codes: dict[int, str] = {}
            if mask is None:
                without += 1
            else:
                codes = {c.id: encode_rle(plane) for c, plane in class_planes(mask, classes, multilabel=schema.multilabel)}
            for c in classes:
                rows.writerow([item.rel.name, c.name, codes.get(c.id, "")])
            yield WriteProgress(done, total, dest)
        if without:
            log.info("%d image(s) without a mask written with empty rows", without)
        atomic_write_bytes(dest, text.getvalue().encode("utf-8"))


# --- nnU-Net v2 --------------------------------------------------------------------------------------------------

CHANNEL_MODES = ("auto", "rgb", "gray")
_RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}
_GRAY_CHANNELS = {"0": "gray"}


def _identifier(text: str, *, fallback: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_") or fallback


def nnunet_labels(schema: ClassSchema) -> tuple[dict[str, int], dict[int, int]]:
    """nnU-Net's ``labels`` (name -> value: background 0, the classes consecutive, ``ignore`` last as nnU-Net
    requires) and ``schema id -> value``.

    A class 0 named like the background is nnU-Net's background; otherwise (class 0 a real class, CamVid's Sky)
    every class moves up by one and the value 0 stays unused."""
    kept = sorted((c for c in schema if not is_ignored(schema, c)), key=lambda c: c.id)
    labels: dict[str, int] = {"background": 0}
    to_value: dict[int, int] = {}
    nxt = 1
    for c in kept:
        if is_background(schema, c):
            to_value[c.id] = 0
            continue
        if c.name in ("background", "ignore") or c.name in labels:
            raise DatasetExportError(
                f"Class {c.name!r} clashes with a name nnU-Net's dataset.json gives its own meaning or repeats.",
                fix="Rename the class in the export's class mapping.")
        labels[c.name] = to_value[c.id] = nxt
        nxt += 1
    if schema.ignore_index is not None or any(c.ignore for c in schema):
        labels["ignore"] = nxt
        for c in schema:
            if is_ignored(schema, c):
                to_value[c.id] = nxt
        if schema.ignore_index is not None:
            to_value[schema.ignore_index] = nxt
    return labels, to_value


def _png(array: np.ndarray, *, path: Path) -> bytes:
    import cv2

    data = array[..., ::-1] if array.ndim == 3 else array  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:
        raise DatasetExportError(f"OpenCV could not encode {array.dtype}{list(array.shape)} as PNG.", path=path,
                                 fix="Report this with the log file.")
    return buf.tobytes()


class NnUNetWriter:
    """An nnU-Net v2 raw dataset: ``Dataset<ID>_<Name>/`` with ``imagesTr/<case>_0000.png``,
    ``labelsTr/<case>.png``, ``imagesTs/<case>_0000.png`` and ``dataset.json``.

    Images follow nnU-Net v2's natural-image convention (its Dataset120 road example, ``NaturalImage2DIO``): an RGB
    image stays ONE PNG, ``_0000``, with ``channel_names`` ``{"0": "R", "1": "G", "2": "B"}``; a grey image is one
    channel, ``{"0": "gray"}``. nnU-Net needs one channel layout per dataset: option ``channels`` ``auto`` (the
    first image's; grey images then join an RGB dataset as three equal channels, an RGB image in a grey one is
    refused), ``rgb`` or ``gray`` (RGB converted with ITU-R 601 weights). Images are re-encoded losslessly
    (8/16-bit kept). Labels: ``labelsTr/<case>.png`` with :func:`nnunet_labels`' values (8-bit, 16-bit past 255).
    Samples of the ``test`` split and samples without a mask go to ``imagesTs`` (test masks to ``labelsTs``, a
    common convention nnU-Net does not read). ``<case>`` is the sample's path without its extension, ``/`` and
    anything but letters, digits and ``-`` made ``_``. Options ``dataset_id`` (1-999, default 501) and
    ``dataset_name`` (default ``segstudio``).

    Multi-label masks are refused: nnU-Net holds overlapping classes only as region-based training, which this
    export does not write.
    """

    name = "nnunet"
    description = "nnU-Net v2 raw dataset: imagesTr/labelsTr/imagesTs PNGs + dataset.json."
    multilabel = False

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        if schema.multilabel:
            raise DatasetExportError(
                "An nnU-Net export takes semantic masks (one class per pixel); these masks are multi-label, and "
                "nnU-Net's region-based training for overlapping classes is not written.",
                fix="Export to binary-pngs (one mask per class), coco or hand-bone-csv, or merge the classes into a "
                "semantic schema first.",
            )
        channels = export_option(options, "channels", CHANNEL_MODES, writer="nnU-Net")
        folder = out / self._folder_name(options)
        labels, to_value = nnunet_labels(schema)
        lut_size = 1 << (8 * schema.mask_dtype().itemsize)
        lut = np.full(lut_size, -1, np.int64)
        for cid, value in to_value.items():
            lut[cid] = value
        label_dtype = np.uint8 if max(labels.values()) <= 255 else np.uint16
        cases = self._cases(items)
        total = len(items)
        training = 0
        for done, (item, case) in enumerate(zip(items, cases, strict=True), 1):
            image = item.load_image()
            if channels == "auto":
                channels = "rgb" if image.ndim == 3 else "gray"
            image = self._channels(image, channels, item=item, explicit=options.get("channels") == channels)
            mask, _shape = mask_or_shape(item, schema)
            test = mask is None or item.split == "test"
            atomic_write_bytes(folder / ("imagesTs" if test else "imagesTr") / f"{case}_0000.png",
                               _png(image, path=item.image_path))
            dest = folder / ("imagesTs" if test else "imagesTr") / f"{case}_0000.png"
            if mask is not None:
                if mask.shape != image.shape[:2]:
                    raise DatasetExportError(
                        f"The mask of {item.sample_id} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                        f"{image.shape[1]}x{image.shape[0]}.", path=item.image_path,
                        fix="Fix the mask's size (nnU-Net needs them equal).")
                values = lut[mask]
                if (values < 0).any():
                    bad = sorted(set(np.unique(mask[values < 0]).tolist()))[:5]
                    raise DatasetExportError(f"The mask of {item.sample_id} holds values {bad} that are no class.",
                                             path=item.image_path, fix="Fix the mask or the class schema.")
                dest = atomic_write_bytes(folder / ("labelsTs" if test else "labelsTr") / f"{case}.png",
                                          _png(values.astype(label_dtype), path=item.image_path))
                training += not test
            yield WriteProgress(done, total, dest)
        doc = {
            "name": folder.name,
            "description": "Exported by segstudio",
            "channel_names": _RGB_CHANNELS if channels == "rgb" else _GRAY_CHANNELS,
            "labels": labels,
            "numTraining": training,
            "file_ending": ".png",
            "overwrite_image_reader_writer": "NaturalImage2DIO",
            "segstudio_cases": dict(zip(cases, (i.sample_id for i in items), strict=True)),
        }
        atomic_write_bytes(folder / "dataset.json", json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))

    @staticmethod
    def _folder_name(options: Mapping[str, Any]) -> str:
        raw = options.get("dataset_id", 501)
        try:
            dataset_id = int(raw)
        except (TypeError, ValueError):
            dataset_id = -1
        if not 1 <= dataset_id <= 999 or isinstance(raw, bool):
            raise DatasetExportError(f"nnU-Net dataset id {raw!r} is not a whole number from 1 to 999.",
                                     fix="Give e.g. dataset_id=501 (1-999; nnU-Net's own examples use 1-499).")
        return f"Dataset{dataset_id:03d}_{_identifier(str(options.get('dataset_name', 'segstudio')), fallback='segstudio')}"

    @staticmethod
    def _cases(items: Sequence[ExportItem]) -> list[str]:
        cases: list[str] = []
        seen: dict[str, str] = {}
        for n, item in enumerate(items):
            case = _identifier(item.rel.with_suffix("").as_posix(), fallback=f"case{n:05d}")
            if case in seen:
                raise DatasetExportError(
                    f"{item.sample_id} and {seen[case]} both become nnU-Net case {case!r}.", path=item.image_path,
                    fix="Rename one of them (nnU-Net case names keep letters, digits and '-' only).")
            seen[case] = item.sample_id
            cases.append(case)
        return cases

    @staticmethod
    def _channels(image: np.ndarray, mode: str, *, item: ExportItem, explicit: bool) -> np.ndarray:
        if mode == "rgb" and image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        if mode == "gray" and image.ndim == 3:
            if not explicit:
                raise DatasetExportError(
                    f"{item.sample_id} is RGB but the first image was grey; an nnU-Net dataset has one channel layout.",
                    path=item.image_path, fix="Export with channels=rgb (grey images become 3 equal channels) or "
                    "channels=gray (RGB converted to grey).")
            weights = np.array([0.299, 0.587, 0.114])
            return np.rint(image.astype(np.float64) @ weights).astype(image.dtype)
        return image


# --- per-class binary PNGs -----------------------------------------------------------------------------------------


def class_folder_names(classes: Sequence[ClassInfo]) -> dict[int, str]:
    """``class id -> folder``: the class name with path separators and other unsafe characters made ``_``."""
    out: dict[int, str] = {}
    for c in classes:
        name = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", c.name).strip(" .") or f"class_{c.id}"
        if name.lower() in (v.lower() for v in out.values()) or name.lower() == "images":
            raise DatasetExportError(f"Class {c.name!r} would share the folder {name!r} with another class or the "
                                     "images.", fix="Rename the class in the export's class mapping.")
        out[c.id] = name
    return out


class BinaryPngsWriter:
    """``images/<sample path>`` + ``<class>/<sample path stem>.png`` 0/255 per class (module docstring)."""

    name = "binary-pngs"
    description = "One 0/255 PNG per image and class in a folder per class, images beside."
    multilabel = True

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]:
        classes = written_classes(schema)
        folders = class_folder_names(classes)
        total = len(items)
        for done, item in enumerate(items, 1):
            dest = copy_image(item, out / "images" / item.rel)
            mask, (h, w) = mask_or_shape(item, schema)
            if mask is not None:
                planes = dict(class_planes(mask, classes, multilabel=schema.multilabel))
                for c in classes:
                    plane = planes.get(c)
                    pixels = plane.astype(np.uint8) * 255 if plane is not None else np.zeros((h, w), np.uint8)
                    stem = PurePosixPath(item.rel).with_suffix(".png")
                    dest = atomic_write_bytes(out / folders[c.id] / stem, _png(pixels, path=item.image_path))
            yield WriteProgress(done, total, dest)


WRITER_RLE_CSV = RleCsvWriter()
WRITER_NNUNET = NnUNetWriter()
WRITER_BINARY_PNGS = BinaryPngsWriter()
