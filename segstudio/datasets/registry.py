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
from segstudio.datasets.base import Dataset, DatasetFormat, Problem, ProblemKind

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

#: How deep detection looks through lone sub-folders (a README beside ``data/``; an archive unpacked into a folder
#: of its own name, holding the dataset's folder).
LONE_SUBFOLDER_DEPTH = 2

#: Folders that never make a dataset root ambiguous: archive debris and segstudio's own workspaces beside a dataset
#: (``<dataset>.segstudio``, see ``workspace.locate``).
_NOT_DATA_DIRS = ("__MACOSX",)
_NOT_DATA_SUFFIXES = (".segstudio",)

#: The key of ``Dataset.options`` that says a lone sub-folder was opened (its path relative to the folder given).
OPENED_SUBFOLDER = "opened_subfolder"

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


def lone_subfolder(path: Path) -> Path | None:
    """The one data folder inside ``path``, when ``path`` holds nothing else but files (a README, a licence, a
    checksum list) and folders that are never data (hidden ones, ``__MACOSX``, segstudio workspaces)."""
    try:
        if not path.is_dir():
            return None
        entries = list(path.iterdir())
    except (OSError, ValueError):
        return None
    dirs = []
    for e in entries:
        name = e.name
        if name.startswith(".") or name in _NOT_DATA_DIRS or name.endswith(_NOT_DATA_SUFFIXES):
            continue
        try:
            if e.is_dir():
                dirs.append(e)
        except OSError:
            continue
    return dirs[0] if len(dirs) == 1 else None


def _locate(p: Path, format: str | None) -> tuple[Path, list[Detection]]:  # noqa: A002
    """Where the dataset is, and what was detected there (empty with ``format`` given): ``p``, or its lone
    sub-folder (up to ``LONE_SUBFOLDER_DEPTH`` deep) when nothing is recognised at ``p`` itself (with ``format``:
    that format does not recognise it)."""

    def found_at(q: Path) -> list[Detection]:
        if format is None:
            return detect(q)
        try:
            conf = float(get_format(format).sniff(q))
        except Exception:  # a sniffer's failure: not recognised here, the reader will say why
            log.exception("sniffer of %s failed on %s", format, q)
            conf = 0.0
        return [Detection(format, conf)] if conf > 0 else []

    here = found_at(p)
    if here or not p.is_dir():
        return p, here
    q = p
    for _ in range(LONE_SUBFOLDER_DEPTH):
        sub = lone_subfolder(q)
        if sub is None:
            break
        there = found_at(sub)
        if there:
            log.info("no dataset recognised in %s; opening its only data folder %s", p, sub)
            return sub, there
        q = sub
    return p, here


def open_dataset(path: str | Path, *, format: str | None = None, **options: Any) -> Dataset:  # noqa: A002
    """Open ``path`` with the named format, or with the detected one.

    A folder where nothing is recognised but that holds one data folder beside non-data files (Montgomery as
    distributed: ``README.md`` + ``data/``) opens that folder: the dataset's ``root`` is the sub-folder, and
    ``options[OPENED_SUBFOLDER]`` names it relative to ``path``, so that callers can say which folder opened."""
    from segstudio.datasets.util import listing_scope

    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError("The dataset path does not exist.", path=p, fix="Check the path for typos.")
    with listing_scope() as skipped:  # the sniffers and the reader list each folder once between them
        try:
            q, found = _locate(p, format)
            ds = _open(q, format=format, found=found, options=options)
            _add_declared_spacing(ds)
            if q != p:
                ds.options[OPENED_SUBFOLDER] = q.relative_to(p).as_posix()
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


def _add_declared_spacing(ds: Dataset) -> None:
    """A ``spacing`` in the dataset's ``classes.json`` (any format): the pixel size for mm and mm². A spacing that is
    malformed stops the open (a wrong scale must not pass unseen); a ``classes.json`` this format does not read
    and that cannot be parsed is only reported."""
    from segstudio.datasets.util import read_json, spacing_from_json

    cfg = Path(ds.root) / "classes.json"
    if ds.spacing is not None or not cfg.is_file():
        return
    try:
        doc = read_json(cfg)
    except DatasetError as e:
        ds.problems.append(Problem(ProblemKind.BAD_ANNOTATION, f"classes.json was not read for its spacing: {e.message}",
                                   cfg))
        return
    ds.spacing = spacing_from_json(doc, path=cfg)


def _open(p: Path, *, format: str | None, found: list[Detection], options: dict[str, Any]) -> Dataset:  # noqa: A002
    if format is None:
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
