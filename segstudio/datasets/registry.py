"""Format registry (DESIGN rule 7): detect and open datasets by format name.

Formats register themselves in ``_FORMAT_MODULES`` (imported lazily on first use). An unknown name raises
``UnknownKeyError`` listing the valid ones; an ambiguous detection raises ``AmbiguousFormatError`` with the
candidates so that the GUI can show a chooser and the CLI can ask for ``--format``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.errors import DatasetError, SegstudioError, UnknownKeyError
from segstudio.datasets.base import Dataset, DatasetFormat

log = logging.getLogger(__name__)

#: name -> "module:attribute" of a ``DatasetFormat`` instance. Order is the tie-break order of detection.
_FORMAT_MODULES: dict[str, str] = {
    "class-folders": "segstudio.datasets.formats.class_folders:FORMAT",
    "paired-folders": "segstudio.datasets.formats.paired:FORMAT",
    "ph2": "segstudio.datasets.formats.ph2:FORMAT",
    "camvid-segnet": "segstudio.datasets.formats.camvid:FORMAT_SEGNET",
    "camvid-rgb": "segstudio.datasets.formats.camvid:FORMAT_RGB",
    "coco": "segstudio.datasets.formats.coco:FORMAT",
    "labelme": "segstudio.datasets.formats.polygon_json:FORMAT_LABELME",
    "hand-bone": "segstudio.datasets.formats.polygon_json:FORMAT_HAND_BONE",
    "voc": "segstudio.datasets.formats.voc:FORMAT",
    "dicom": "segstudio.datasets.formats.medical:FORMAT_DICOM",
    "image-folder": "segstudio.datasets.formats.medical:FORMAT_IMAGE_FOLDER",
}

_loaded: dict[str, DatasetFormat] = {}

#: Two candidates closer than this in confidence make a detection ambiguous. The one intended overlap (an image
#: folder beside a union mask folder and >= 2 class folders, as in Montgomery's data/) is settled by the sniffers:
#: class-folders 0.8, paired-folders 0.6 (docs/formats.md, "Detection").
AMBIGUITY_MARGIN = 0.1


class AmbiguousFormatError(DatasetError):
    def __init__(self, path: Path, candidates: list[tuple[str, float]]) -> None:
        self.candidates = candidates
        names = ", ".join(f"{n} ({c:.2f})" for n, c in candidates)
        super().__init__(
            f"More than one format fits this path: {names}.",
            path=path,
            fix="Choose one with --format NAME (or the format chooser in the app).",
        )


@dataclass(frozen=True)
class Detection:
    name: str
    confidence: float


def format_names() -> list[str]:
    return list(_FORMAT_MODULES)


def get_format(name: str) -> DatasetFormat:
    if name not in _FORMAT_MODULES:
        raise UnknownKeyError("format", name, format_names())
    if name not in _loaded:
        module_name, attr = _FORMAT_MODULES[name].split(":")
        _loaded[name] = getattr(importlib.import_module(module_name), attr)
    return _loaded[name]


def format_descriptions() -> dict[str, str]:
    """``name -> one-line description`` of every format, in registry order (for a format chooser)."""
    return {name: get_format(name).description for name in _FORMAT_MODULES}


def detect(path: str | Path) -> list[Detection]:
    """Every format with a non-zero confidence for ``path``, best first."""
    p = Path(path)
    found = []
    for name in _FORMAT_MODULES:
        try:
            conf = float(get_format(name).sniff(p))
        except Exception:  # a sniffer must never stop detection of the others
            log.exception("sniffer of %s failed on %s", name, p)
            conf = 0.0
        if conf > 0:
            found.append(Detection(name, conf))
    found.sort(key=lambda d: -d.confidence)
    return found


def open_dataset(path: str | Path, *, format: str | None = None, **options: Any) -> Dataset:  # noqa: A002
    """Open ``path`` with the named format, or with the detected one."""
    from segstudio.datasets.util import listing_scope

    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError("The dataset path does not exist.", path=p, fix="Check the path for typos.")
    with listing_scope() as skipped:  # the sniffers and the reader list each folder once between them
        try:
            ds = _open(p, format=format, options=options)
        except SegstudioError:
            raise
        except Exception as e:  # a reader bug or a parser library's surprise: our error, the traceback logged
            from segstudio.datasets.io import ReaderFailedError

            log.error("opening %s failed", p, exc_info=e)
            raise ReaderFailedError(
                f"Cannot open the dataset ({type(e).__name__}: {str(e)[:200]}).",
                path=p,
                fix="Check the annotation files named in the log; if they look fine, report this with the log file.",
            ) from e
    # Entries skipped while listing (symlink loops, broken links, unreadable folders) are the dataset's problems:
    # the rest of it opened.
    known = {(q.kind, q.path) for q in ds.problems}
    ds.problems.extend(q for q in skipped if (q.kind, q.path) not in known)
    return ds


def _open(p: Path, *, format: str | None, options: dict[str, Any]) -> Dataset:  # noqa: A002
    if format is None:
        found = detect(p)
        if not found:
            raise DatasetError(
                "No known dataset format was recognised here.",
                path=p,
                fix=f"Pass --format with one of: {', '.join(format_names())}; see docs/formats.md for layouts.",
            )
        if len(found) > 1 and found[0].confidence - found[1].confidence < AMBIGUITY_MARGIN:
            raise AmbiguousFormatError(p, [(d.name, d.confidence) for d in found])
        format = found[0].name
    return get_format(format).open(p, **options)
