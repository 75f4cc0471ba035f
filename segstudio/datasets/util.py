"""Helpers the format readers share: folder listing, safe paths, JSON, class files, the default image reader."""

from __future__ import annotations

import contextvars
import errno
import gc
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.types import MAX_MULTILABEL_CLASSES, RGB, ClassInfo, ClassSchema, default_colour
from segstudio.datasets import documents
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, DatasetProblemError, read_image

log = logging.getLogger(__name__)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (a 10k-image COCO file makes
    millions; the collector's repeated passes over them cost more than the parse). Re-enabled after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def subfolders(path: Path) -> list[Path]:
    """Visible sub-folders of ``path``, sorted by name; unreadable entries are skipped and reported."""
    return [path / n for n in scan_folder(path).dirs]


@dataclass(frozen=True)
class FolderScan:
    """One folder's visible entries (sorted names): files, and sub-folders (links to folders included)."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]


class _Scope:
    """Listings and listing problems shared by the sniffers and the reader during one ``open_dataset`` call."""

    def __init__(self) -> None:
        self.scans: dict[str, FolderScan] = {}
        self.images: dict[str, list[str]] = {}
        self.problems: dict[str, Problem] = {}


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("listings", default=None)


@contextmanager
def listing_scope() -> Iterator[list[Problem]]:
    """Within this scope each folder is listed once: detection and opening share the 10k-name listings.

    Yields a list that, when the scope ends, holds the problems met while listing (unreadable folders and
    entries), one per path."""
    scope = _Scope()
    found: list[Problem] = []
    token = _SCOPE.set(scope)
    try:
        yield found
    finally:
        _SCOPE.reset(token)
        found.extend(scope.problems.values())


def listing_problems() -> list[Problem]:
    """The listing problems met so far in the current scope (``[]`` outside one)."""
    scope = _SCOPE.get()
    return list(scope.problems.values()) if scope is not None else []


def report_listing_problem(problem: Problem) -> None:
    """Keep ``problem`` for the dataset being opened (logged too: outside a scope that is all that happens)."""
    scope = _SCOPE.get()
    key = str(problem.path)
    if scope is not None:
        if key in scope.problems:
            return
        scope.problems[key] = problem
    log.warning("%s", problem)


# errno values that mean "this path is not there / not a folder": a sniffer probing a layout meets them all the
# time, so they are not problems of the dataset.
_ABSENT = {errno.ENOENT, errno.ENOTDIR}


def _entry_problem(path: Path, err: OSError | None, *, what: str) -> Problem:
    if err is not None and err.errno == errno.ELOOP:
        msg, fix = f"Skipped {what}: it is a symbolic link that points to itself (a loop).", "Remove or fix the link."
    elif err is not None and err.errno in (errno.EACCES, errno.EPERM):
        msg, fix = f"Skipped {what}: permission denied.", "Make it readable for this user, or move it out."
    elif err is None:
        msg, fix = f"Skipped {what}: a broken symbolic link (its target does not exist).", "Remove or fix the link."
    else:
        msg, fix = f"Skipped {what}: it cannot be read ({err.strerror or err}).", "Check the disk and the file."
    return Problem(ProblemKind.CORRUPT, f"{msg} Fix: {fix}", path)


def scan_folder(folder: Path) -> FolderScan:
    """The visible entries of ``folder`` (one ``scandir``; cached within a ``listing_scope``).

    An entry that cannot be inspected (a symlink loop, a broken link, permission denied) is skipped and reported
    (``corrupt``, naming it and the fix) and the rest of the folder is listed: one bad entry never empties a
    listing. A folder that cannot be listed at all is reported the same way (unless it simply does not exist).
    """
    scope = _SCOPE.get()
    key = str(folder)
    if scope is not None and key in scope.scans:
        return scope.scans[key]
    scan = _scan(folder)
    if scope is not None:
        scope.scans[key] = scan
    return scan


def _scan(folder: Path) -> FolderScan:
    files: list[str] = []
    dirs: list[str] = []
    try:
        it = os.scandir(folder)
    except OSError as err:
        if err.errno not in _ABSENT:
            report_listing_problem(_entry_problem(folder, err, what="this folder"))
        return FolderScan((), ())
    with it:
        while True:
            try:
                entry = next(it)
            except StopIteration:
                break
            except OSError as err:  # reading the folder itself failed part way
                report_listing_problem(_entry_problem(folder, err, what="the rest of this folder"))
                break
            name = entry.name
            if name.startswith("."):
                continue
            try:
                # d_type answers both without a system call, except for links, which are followed here
                is_dir = entry.is_dir()
                if not is_dir and entry.is_symlink() and not entry.is_file():
                    report_listing_problem(_entry_problem(folder / name, None, what="this entry"))
                    continue
            except OSError as err:
                report_listing_problem(_entry_problem(folder / name, err, what="this entry"))
                continue
            (dirs if is_dir else files).append(name)
    files.sort()
    dirs.sort()
    return FolderScan(tuple(files), tuple(dirs))


def image_files(folder: Path) -> list[str]:
    """Names of the image files directly in ``folder`` (one ``scandir``, string tests: fast on 10k files)."""
    scope = _SCOPE.get()
    key = str(folder)
    if scope is not None and key in scope.images:
        return list(scope.images[key])
    exts = IMAGE_EXTENSIONS
    names = [n for n in scan_folder(folder).files if "." in n and "." + n.rsplit(".", 1)[1].lower() in exts]
    if scope is not None:
        scope.images[key] = names
    return list(names)


def files_with_suffix(folder: Path, suffix: str) -> list[Path]:
    """Files directly in ``folder`` whose name ends with ``suffix`` (case-insensitive), sorted by name."""
    low = suffix.lower()
    return [folder / n for n in scan_folder(folder).files if n.lower().endswith(low)]


def id_prefix(folder: Path, root: Path) -> str:
    """``folder`` relative to ``root`` as a POSIX prefix for sample ids (``""`` for the root itself).

    Computed once per folder so that listing 10k files builds ids with string joins, not path resolution.
    """
    try:
        rel = folder.relative_to(root)
    except ValueError:
        rel = folder.resolve().relative_to(root.resolve())
    text = rel.as_posix()
    return "" if text == "." else text + "/"


def stem_index(names: Iterable[str]) -> dict[str, str]:
    """``stem -> file name``; the first name (sorted order) wins when two files share a stem."""
    out: dict[str, str] = {}
    for n in sorted(names):
        out.setdefault(n.rsplit(".", 1)[0], n)
    return out


def safe_relative(rel: str) -> str | None:
    """``rel`` normalised to ``a/b/c`` when it stays inside its base folder (relative, no ``..``), else None.

    A lexical test: annotation files cannot plant symlinks, so a symlink already inside the dataset is trusted,
    and 10k file names are checked without a system call each.
    """
    text = rel.replace("\\", "/")
    if "\x00" in text:  # no file system has such names; Path would raise ValueError on it
        return None
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    return "/".join(parts)


def shared_stems(names: Iterable[str], folder: Path) -> list[Problem]:
    """One problem per stem that several files share (``a.png`` + ``a.jpg``): only the first is used."""
    by_stem: dict[str, list[str]] = {}
    for n in names:
        by_stem.setdefault(n.rsplit(".", 1)[0], []).append(n)
    return [
        Problem(ProblemKind.OTHER, f"Files {', '.join(sorted(v))} share a stem; only {sorted(v)[0]} is used.", folder / sorted(v)[1])
        for v in by_stem.values()
        if len(v) > 1
    ]


def resolve_inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if ``rel`` stays inside ``root`` (see ``safe_relative``), else None."""
    text = safe_relative(rel)
    return None if text is None else root / text


class DirListing:
    """Which files exist, answered from one ``scandir`` per folder instead of one ``stat`` per file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._names: dict[str, frozenset[str]] = {}

    def exists(self, rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        names = self._names.get(folder)
        if names is None:
            names = frozenset(scan_folder(self.base / folder if folder else self.base).files)
            self._names[folder] = names
        return name in names


def read_json(path: Path) -> Any:
    """Parse a JSON file; a broken one raises ``DatasetProblemError`` (kind ``BAD_ANNOTATION``) naming it.

    Bounded in size and depth: see ``segstudio.datasets.documents.read_json``."""
    return documents.read_json(path)


def parse_colour(value: Any) -> RGB | None:
    """``[r, g, b]`` of whole numbers 0..255 (extra items ignored, e.g. alpha), else None."""
    if not isinstance(value, list | tuple) or len(value) < 3:
        return None
    rgb = [documents.as_int(v, lo=0, hi=255) for v in value[:3]]
    if any(c is None for c in rgb):
        return None
    r, g, b = rgb
    assert r is not None and g is not None and b is not None
    return (r, g, b)


#: Largest class id of a semantic schema (masks are at most uint16).
MAX_CLASS_ID = 65535


def make_schema(classes: Sequence[ClassInfo], *, path: Path, multilabel: bool = False,
                ignore_index: int | None = None) -> ClassSchema:
    """``ClassSchema`` whose rule breaks (repeated ids, too many bits) become a ``DatasetProblemError`` naming
    the class file ``path``."""
    top = MAX_MULTILABEL_CLASSES - 1 if multilabel else MAX_CLASS_ID
    for c in classes:
        if not 0 <= c.id <= top:
            raise DatasetProblemError(
                f"Class id {c.id} is outside 0..{top}"
                + (" (one bit per class in a multi-label mask)." if multilabel else " (masks are 16-bit at most)."),
                path=path,
                fix="Number the classes from 0.",
                kind=ProblemKind.BAD_ANNOTATION,
            )
    if ignore_index is not None and not 0 <= ignore_index <= MAX_CLASS_ID:
        raise DatasetProblemError(
            f"ignore_index {ignore_index} is outside 0..{MAX_CLASS_ID}.", path=path, fix="Use e.g. 255.",
            kind=ProblemKind.BAD_ANNOTATION,
        )
    try:
        return ClassSchema(tuple(classes), multilabel=multilabel, ignore_index=ignore_index)
    except ValueError as e:
        raise DatasetProblemError(
            f"The class list is not valid: {documents.describe_error(e)}.", path=path,
            fix="Give every class its own id.", kind=ProblemKind.BAD_ANNOTATION,
        ) from e


def schema_from_json(d: Any, *, path: Path) -> ClassSchema:
    """A schema from a ``classes.json``-shaped dict (``classes: [{id, name, colour, ignore?}]``); anything
    malformed raises ``DatasetProblemError`` naming ``path``."""
    if not isinstance(d, dict):
        raise documents.bad_field(path, "classes.json", "(top level)", d, "an object {\"classes\": [...]}")
    entries = documents.get_list(d, "classes")
    if entries is None or len(entries) > MAX_CLASS_ID + 1:
        raise documents.bad_field(path, "classes.json", "classes", d.get("classes"), "a list of classes")
    classes = []
    for i, c in enumerate(entries):
        if not isinstance(c, dict):
            raise documents.bad_field(path, f"Class {i}", "(entry)", c, "an object {id, name, colour}")
        cid = documents.get_int(c, "id") if "id" in c else i
        if cid is None:
            raise documents.bad_field(path, f"Class {i}", "id", c.get("id"), "a whole number")
        name = documents.get_str(c, "name") if "name" in c else f"class {cid}"
        if name is None:
            raise documents.bad_field(path, f"Class {i}", "name", c.get("name"), "a string")
        colour = parse_colour(c.get("colour", c.get("color"))) or default_colour(cid)
        classes.append(ClassInfo(cid, name, colour, documents.get_bool(c, "ignore")))
    ignore = d.get("ignore_index")
    ignore_index = documents.as_int(ignore) if ignore is not None else None
    if ignore is not None and ignore_index is None:
        raise documents.bad_field(path, "classes.json", "ignore_index", ignore, "a whole number or null")
    return make_schema(classes, path=path, multilabel=documents.get_bool(d, "multilabel"),
                       ignore_index=ignore_index)


#: a pixel side above this is a unit slip (metres, or micrometres as millimetres), not a scan
MAX_SPACING_MM = 1000.0
SPACING_FIX = ('Write "spacing": [row_mm, column_mm] (millimetres per pixel, e.g. [0.175, 0.175]), '
               "or remove it when the pixel size is unknown.")


def spacing_from_json(d: Any, *, path: Path) -> tuple[float, float] | None:
    """The ``spacing`` of a ``classes.json``-shaped dict: ``(row, column)`` mm per pixel, or None when it has none.
    Anything but two positive, finite numbers up to ``MAX_SPACING_MM`` raises ``DatasetProblemError`` naming
    ``path``: a wrong scale would make every mm and mm² wrong without a sign."""
    if not isinstance(d, dict) or d.get("spacing") is None:
        return None
    v = d["spacing"]
    nums = (isinstance(v, list) and len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v))
    if not nums or not all(math.isfinite(float(x)) and 0 < float(x) <= MAX_SPACING_MM for x in v):
        raise DatasetProblemError(
            f"classes.json: 'spacing' must be [row, column] millimetres per pixel, two numbers above 0 and at most "
            f"{MAX_SPACING_MM:g}, not {documents.describe(v)}.",
            path=path, fix=SPACING_FIX, kind=ProblemKind.BAD_ANNOTATION,
        )
    return (float(v[0]), float(v[1]))


def declared_spacing(root: Path) -> tuple[float, float] | None:
    """``spacing`` from ``root/classes.json`` (None when there is no such file or key); the file's errors raise."""
    cfg = root / "classes.json"
    if not cfg.is_file():
        return None
    return spacing_from_json(read_json(cfg), path=cfg)


def read_class_names(path: Path) -> list[str]:
    """A class list file (``labels.txt``: one name a line), bounded and UTF-8; errors name the file."""
    names = documents.read_lines(path)
    if len(names) > MAX_CLASS_ID + 1:
        raise DatasetProblemError(
            f"The class list names {len(names):,} classes, more than a mask can hold ({MAX_CLASS_ID + 1:,}).",
            path=path,
            fix="Check it is the class list (one name a line).",
            kind=ProblemKind.BAD_ANNOTATION,
        )
    return names


def semantic_schema(names: Sequence[str], *, background: str | None = "background") -> ClassSchema:
    """Semantic schema: optional background id 0, then ``names`` in order."""
    all_names = ([background] if background else []) + list(names)
    return ClassSchema(tuple(ClassInfo(i, n, default_colour(i)) for i, n in enumerate(all_names)))


def multilabel_schema(names: Sequence[str], colours: Sequence[RGB] | None = None) -> ClassSchema:
    """Multi-label schema: bit ``i`` for ``names[i]``."""
    cols = list(colours) if colours is not None else [default_colour(i + 1) for i in range(len(names))]
    return ClassSchema(tuple(ClassInfo(i, n, cols[i]) for i, n in enumerate(names)), multilabel=True)


def max_pixels_of(ds: Dataset) -> int | None:
    value = ds.options.get("max_pixels", DEFAULT_MAX_PIXELS)
    return None if value is None else int(value)


def default_image_reader(ds: Dataset, sample: Sample) -> np.ndarray:
    """``Dataset.read_image`` of formats whose images are plain files: ``read_image`` with the open's pixel limit."""
    return read_image(sample.image, max_pixels=max_pixels_of(ds))


def check_same_size(mask: np.ndarray, ref_shape: tuple[int, ...], *, path: Path, what: str) -> None:
    """Raise ``SIZE_MISMATCH`` when ``mask``'s ``(H, W)`` differs from ``ref_shape``'s."""
    if mask.shape[:2] != tuple(ref_shape[:2]):
        raise DatasetProblemError(
            f"The mask is {mask.shape[1]}x{mask.shape[0]} but {what} is {ref_shape[1]}x{ref_shape[0]}.",
            path=path,
            fix="Masks must have the image's size; re-export the mask at the image's resolution.",
            kind=ProblemKind.SIZE_MISMATCH,
        )


def image_shape(ds: Dataset, sample: Sample) -> tuple[int, int]:
    """``(H, W)`` of the sample's image from its header only (no decode)."""
    from segstudio.datasets.io import image_size

    w, h = image_size(sample.image)
    return (h, w)


#: Folder or list names that mean a split, and the split they mean.
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
