"""The dataset model every format produces (DESIGN §3): ``Dataset`` of ``Sample``s with a ``ClassSchema``.

Opening a dataset lists files and parses annotation indexes only; images and masks are decoded lazily by
``Dataset.load_image`` / ``Dataset.load_gt``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.datasets.problems import Problem as Problem
from segstudio.datasets.problems import ProblemKind as ProblemKind
from segstudio.datasets.problems import ReaderFailedError
from segstudio.datasets.problems import safe_text as safe_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    ``id`` is stable across sessions: the image's dataset-relative POSIX path (never a list index).
    ``gt`` is an opaque, hashable locator that only the dataset's format interprets (a path, a tuple of paths,
    an annotation index, or None when the sample has no ground truth).
    """

    id: str
    image: Path
    split: str | None = None
    gt: Hashable = None
    problems: tuple[Problem, ...] = ()

    @property
    def has_gt(self) -> bool:
        return self.gt is not None

    @property
    def name(self) -> str:
        return Path(self.id).name


#: ``(dataset, sample) -> array``; raising ``DatasetError`` naming the file on failure.
ImageReader = Callable[["Dataset", Sample], np.ndarray]
GTReader = Callable[["Dataset", Sample], "np.ndarray | None"]
#: ``(dataset, sample) -> (row, column) mm per pixel`` from the image's own header, or None when it has none.
SpacingReader = Callable[["Dataset", Sample], "tuple[float, float] | None"]


@dataclass
class Dataset:
    """A listed dataset. Images/GT decode on demand through the format's readers.

    ``load_image`` returns ``(H, W)`` grayscale or ``(H, W, 3)`` RGB, ``uint8`` or ``uint16`` (full depth kept).
    ``load_gt`` returns a 2-D mask in ``schema.mask_dtype()``: class-index map (semantic) or ``uint64`` bitmask
    (multi-label), or ``None`` when the sample has no GT.
    ``spacing`` is the dataset's ``(row, column)`` mm per pixel (``classes.json``'s ``spacing``), None when
    unknown; ``read_spacing`` reads a sample's own (a DICOM header's PixelSpacing). ``pixel_spacing`` combines them.
    """

    root: Path
    format_name: str
    schema: ClassSchema
    samples: list[Sample]
    read_image: ImageReader
    read_gt: GTReader
    problems: list[Problem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    spacing: tuple[float, float] | None = None
    read_spacing: SpacingReader | None = field(default=None, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {s.id: i for i, s in enumerate(self.samples)}
        if any(not s.id.isascii() for s in self.samples):
            self._make_ids_storable()
        if len(self._index) != len(self.samples):
            dupes = [k for k, v in Counter(s.id for s in self.samples).items() if v > 1]
            raise ValueError(f"Duplicate sample ids: {dupes[:5]}")

    def _make_ids_storable(self) -> None:
        """Give samples whose file name is not valid UTF-8 a storable id (``safe_text``: the workspace keeps ids in
        SQLite as UTF-8) and report it; the image keeps its real path and still loads. Should the escaped id equal
        another sample's, the later sample is left out and reported (rename it)."""
        out: list[Sample] = []
        taken = {s.id for s in self.samples if safe_text(s.id) == s.id}
        for s in self.samples:
            sid = safe_text(s.id)
            if sid == s.id:
                out.append(s)
                continue
            if sid in taken:
                self.problems.append(Problem(
                    ProblemKind.OTHER,
                    f"The file name is not valid UTF-8 and, escaped as {sid!r}, collides with another sample; "
                    "left out. Fix: rename it.",
                    s.image,
                ))
                continue
            taken.add(sid)
            note = Problem(
                ProblemKind.OTHER,
                f"The file name is not valid UTF-8; it is listed as {sid!r}. Fix: rename it (UTF-8) so that other "
                "tools and systems show the same name.",
                s.image,
                sid,
            )
            out.append(replace(s, id=sid, problems=(*s.problems, note)))
        self.samples = out
        self._index = {s.id: i for i, s in enumerate(out)}

    # container --------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def get(self, sample_id: str) -> Sample:
        return self.samples[self._index[sample_id]]

    def index_of(self, sample_id: str) -> int:
        return self._index[sample_id]

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._index

    # content ----------------------------------------------------------------------------------------------------
    def load_image(self, sample: Sample | str) -> np.ndarray:
        s = self.get(sample) if isinstance(sample, str) else sample
        try:
            return self.read_image(self, s)
        except SegstudioError:
            raise
        except Exception as e:
            raise _reader_failed(self, s, e, what="image") from e

    def load_gt(self, sample: Sample | str) -> np.ndarray | None:
        s = self.get(sample) if isinstance(sample, str) else sample
        try:
            return self.read_gt(self, s)
        except SegstudioError:
            raise
        except Exception as e:
            raise _reader_failed(self, s, e, what="ground truth") from e

    def pixel_spacing(self, sample: Sample | str) -> tuple[float, float] | None:
        """``(row, column)`` mm per pixel of ``sample``: its own header's when it has one, else the dataset's
        ``spacing``, else None (lengths and areas are then only in pixels). A header that cannot be read counts
        as none (loading the image reports the file)."""
        s = self.get(sample) if isinstance(sample, str) else sample
        if self.read_spacing is not None:
            try:
                own = self.read_spacing(self, s)
            except SegstudioError:
                own = None
            if own is not None:
                return own
        return self.spacing

    # summaries --------------------------------------------------------------------------------------------------
    def split_counts(self) -> dict[str, int]:
        return dict(Counter(s.split or "unassigned" for s in self.samples))

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def all_problems(self) -> list[Problem]:
        """Dataset-level problems plus every sample's problems."""
        out = list(self.problems)
        for s in self.samples:
            out.extend(s.problems)
        return out


def _gt_path(sample: Sample) -> Path:
    loc = sample.gt
    if isinstance(loc, str | Path):
        return Path(loc)
    if isinstance(loc, tuple) and loc and isinstance(loc[0], tuple) and len(loc[0]) > 1:
        return Path(str(loc[0][1]))
    path = getattr(loc, "json_path", None)
    return Path(path) if path is not None else sample.image


def _reader_failed(ds: Dataset, sample: Sample, err: Exception, *, what: str) -> SegstudioError:
    """Our error for an exception a format reader let through (a reader bug or a parser library's surprise): the
    caller gets the file and a fix, the log gets the traceback. The hostile-input suites treat it as a failure."""
    path = sample.image if what == "image" else _gt_path(sample)
    log.error("the %s reader of %s failed on %s", ds.format_name, safe_text(sample.id), what, exc_info=err)
    text = str(err)
    return ReaderFailedError(
        f"Cannot read the {what} of {safe_text(sample.id)} ({type(err).__name__}: {safe_text(text[:200])}).",
        path=path,
        fix="Check the file; if it opens elsewhere, report this with the log file (Help > Show log).",
    )


@runtime_checkable
class DatasetFormat(Protocol):
    """A reader for one on-disk layout. Registered by name in ``segstudio.datasets.registry``."""

    name: str
    description: str

    def sniff(self, path: Path) -> float:
        """Confidence 0..1 that ``path`` (a folder or an annotation file) is in this format. Cheap: no decoding."""
        ...

    def open(self, path: Path, **options: Any) -> Dataset:
        """List the dataset at ``path``. Never decodes images; collects problems instead of raising them."""
        ...


def relative_id(path: Path, root: Path) -> str:
    """Stable sample id: ``path`` relative to ``root`` in POSIX form.

    Lexical first (paths are built as ``root / name``), so that a link inside the dataset pointing elsewhere keeps
    its own name; resolved when ``path`` was spelled another way; the bare name as a last resort."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def sample_ids(samples: Sequence[Sample]) -> list[str]:
    return [s.id for s in samples]
