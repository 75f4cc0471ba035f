"""Helpers the format readers share: folder listing, safe paths, JSON, class files, the default image reader."""

from __future__ import annotations

import contextvars
import gc
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.types import RGB, ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, DatasetProblemError, read_image


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
    """Visible sub-folders of ``path``, sorted by name."""
    try:
        return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    except OSError:
        return []


#: Folder listings shared by the sniffers and the reader during one ``open_dataset`` call (see ``listing_scope``).
_LISTINGS: contextvars.ContextVar[dict[str, list[str]] | None] = contextvars.ContextVar("listings", default=None)


@contextmanager
def listing_scope() -> Iterator[None]:
    """Within this scope each folder is listed once: detection and opening share the 10k-name listings."""
    token = _LISTINGS.set({})
    try:
        yield
    finally:
        _LISTINGS.reset(token)


def image_files(folder: Path) -> list[str]:
    """Names of the image files directly in ``folder`` (``os.scandir`` and string tests: fast on 10k files)."""
    cache = _LISTINGS.get()
    if cache is None:
        return _list_image_files(folder)
    key = str(folder)
    if key not in cache:
        cache[key] = _list_image_files(folder)
    return list(cache[key])


def _list_image_files(folder: Path) -> list[str]:
    exts = IMAGE_EXTENSIONS
    try:
        with os.scandir(folder) as it:
            names = [
                e.name
                for e in it
                if not e.name.startswith(".") and "." in e.name and "." + e.name.rsplit(".", 1)[1].lower() in exts
                and not e.is_dir()
            ]
    except OSError:
        return []
    names.sort()
    return names


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
            try:
                with os.scandir(self.base / folder if folder else self.base) as it:
                    names = frozenset(e.name for e in it if not e.is_dir())
            except OSError:
                names = frozenset()
            self._names[folder] = names
        return name in names


def read_json(path: Path) -> Any:
    """Parse a JSON file; a broken one raises ``DatasetProblemError`` (kind ``BAD_ANNOTATION``) naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise DatasetProblemError("The file does not exist.", path=path, kind=ProblemKind.MISSING_MASK) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetProblemError(
            f"Cannot parse the JSON file ({e}).",
            path=path,
            fix="Check the file is complete, valid JSON (UTF-8).",
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e


def parse_colour(value: Any) -> RGB | None:
    try:
        r, g, b = (int(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not all(0 <= c <= 255 for c in (r, g, b)):
        return None
    return (r, g, b)


def schema_from_json(d: dict[str, Any]) -> ClassSchema:
    """A schema from a ``classes.json``-shaped dict (``classes: [{id, name, colour, ignore?}]``)."""
    classes = []
    for i, c in enumerate(d.get("classes", [])):
        cid = int(c.get("id", i))
        colour = parse_colour(c.get("colour", c.get("color"))) or default_colour(cid)
        classes.append(ClassInfo(cid, str(c.get("name", f"class {cid}")), colour, bool(c.get("ignore", False))))
    return ClassSchema(tuple(classes), multilabel=bool(d.get("multilabel", False)), ignore_index=d.get("ignore_index"))


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
