"""Writers: a dataset leaves segstudio in the layout the next tool reads (issue 14).

Every format we read has a writer beside its reader (``datasets/formats/<format>.py``), and a few layouts are
export-only (the hand-bone competition CSV, an nnU-Net v2 raw dataset, per-class binary PNGs). They register by
name in :data:`WRITER_MODULES`; :func:`get_writer` raises ``UnknownKeyError`` listing the valid names.

The contract of a writer (``DatasetWriter.write``):
- it writes only under ``out``, an empty folder the caller made (the export orchestration in
  ``workspace/export.py`` writes into a temp folder and moves it into place at the end, so a cancelled or failed
  export leaves nothing half-written at the destination);
- every file through ``core.atomic`` (the file is whole or absent);
- it yields one :class:`WriteProgress` per item written (the caller renders progress and checks its cancel
  token between items: a writer never blocks for long between yields; a one-file format such as COCO yields per
  item while collecting, then writes its file at the end);
- semantic masks stay index maps and multi-label masks (``uint64`` bitmasks) stay multi-label: overlapping
  classes are written as separate shapes, RLEs or files, never flattened; a format that cannot hold what it is
  given (multi-label into a palette PNG) raises :class:`DatasetExportError` before writing anything;
- what reads back: ``open_dataset(out)`` gives the same masks, class schema and splits (the round-trip tests
  check it per format).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import ClassSchema


class DatasetExportError(SegstudioError):
    """An export cannot be written as asked (a format that cannot hold the data, a bad destination, an option)."""


@dataclass(frozen=True)
class ExportItem:
    """One sample to write.

    ``sample_id``: the dataset-relative POSIX path of the source image (writers name output files from it, keeping
    sub-folders where the layout allows, so ids read back alike). ``image_path``: the source image file (copied
    byte for byte where the layout takes the original encoding). ``load_image``: decodes it (``(H, W)`` or
    ``(H, W, 3)``, ``uint8``/``uint16``) for layouts that must re-encode. ``load_mask``: the mask to write (semantic
    ``uint8``/``uint16`` index map or ``uint64`` bitmask in the export schema), or ``None`` for an image without GT;
    called once, lazily, so an export of thousands of masks holds one at a time. ``split``: the split to write it
    in (``train``/``val``/``test`` or the dataset's own name), or ``None``.
    """

    sample_id: str
    image_path: Path
    load_image: Callable[[], np.ndarray]
    load_mask: Callable[[], np.ndarray | None]
    split: str | None = None

    @property
    def rel(self) -> PurePosixPath:
        """``sample_id`` as a relative path that cannot leave the output folder (``..`` and roots removed)."""
        parts = [p for p in PurePosixPath(self.sample_id).parts if p not in ("..", ".", "/", "")]
        return PurePosixPath(*parts) if parts else PurePosixPath(Path(self.image_path).name)


@dataclass(frozen=True)
class WriteProgress:
    """``done`` of ``total`` items written; ``path``: the last file written (for the log and the progress line)."""

    done: int
    total: int
    path: Path | None = None


@runtime_checkable
class DatasetWriter(Protocol):
    name: str
    description: str
    #: the writer can hold multi-label (overlapping) masks
    multilabel: bool

    def write(
        self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path, options: Mapping[str, Any]
    ) -> Iterator[WriteProgress]: ...


#: writer name -> "module:attribute" of a ``DatasetWriter``. Reader names are reused where the layout is the same.
WRITER_MODULES: dict[str, str] = {
    "paired-folders": "segstudio.datasets.formats.paired:WRITER",
    "class-folders": "segstudio.datasets.formats.class_folders:WRITER",
    "ph2": "segstudio.datasets.formats.ph2:WRITER",
    "camvid-segnet": "segstudio.datasets.formats.camvid:WRITER_SEGNET",
    "camvid-rgb": "segstudio.datasets.formats.camvid:WRITER_RGB",
    "coco": "segstudio.datasets.formats.coco:WRITER",
    "labelme": "segstudio.datasets.formats.polygon_json_write:WRITER_LABELME",
    "hand-bone": "segstudio.datasets.formats.polygon_json_write:WRITER_HAND_BONE",
    "voc": "segstudio.datasets.formats.voc:WRITER",
    "dicom": "segstudio.datasets.formats.medical:WRITER_DICOM",
    # export-only layouts
    "hand-bone-csv": "segstudio.datasets.formats.export_only:WRITER_RLE_CSV",
    "nnunet": "segstudio.datasets.formats.export_only:WRITER_NNUNET",
    "binary-pngs": "segstudio.datasets.formats.export_only:WRITER_BINARY_PNGS",
}

_loaded: dict[str, DatasetWriter] = {}


def writer_names() -> list[str]:
    return list(WRITER_MODULES)


def get_writer(name: str) -> DatasetWriter:
    if name not in WRITER_MODULES:
        raise UnknownKeyError("export format", name, writer_names())
    if name not in _loaded:
        module_name, attr = WRITER_MODULES[name].split(":")
        _loaded[name] = getattr(importlib.import_module(module_name), attr)
    return _loaded[name]
