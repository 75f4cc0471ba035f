"""The dataset model every format produces (DESIGN §3): ``Dataset`` of ``Sample``s with a ``ClassSchema``.

Opening a dataset lists files and parses annotation indexes only; images and masks are decoded lazily by
``Dataset.load_image`` / ``Dataset.load_gt``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segstudio.core.types import ClassSchema


class ProblemKind(enum.StrEnum):
    MISSING_MASK = "missing_mask"
    MISSING_IMAGE = "missing_image"
    SIZE_MISMATCH = "size_mismatch"
    UNKNOWN_COLOUR = "unknown_colour"
    OUT_OF_RANGE = "out_of_range"
    CORRUPT = "corrupt"
    PATH_ESCAPE = "path_escape"
    TOO_LARGE = "too_large"
    OVERLAP = "overlap"
    BAD_ANNOTATION = "bad_annotation"
    OTHER = "other"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file (or the dataset as a whole): collected, never raised one by one."""

    kind: ProblemKind
    message: str
    path: Path | None = None
    sample_id: str | None = None

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path is not None else ""
        return f"{self.kind.value}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "path": str(self.path) if self.path is not None else None,
            "sample_id": self.sample_id,
        }


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


@dataclass
class Dataset:
    """A listed dataset. Images/GT decode on demand through the format's readers.

    ``load_image`` returns ``(H, W)`` grayscale or ``(H, W, 3)`` RGB, ``uint8`` or ``uint16`` (full depth kept).
    ``load_gt`` returns a 2-D mask in ``schema.mask_dtype()``: class-index map (semantic) or ``uint64`` bitmask
    (multi-label), or ``None`` when the sample has no GT.
    """

    root: Path
    format_name: str
    schema: ClassSchema
    samples: list[Sample]
    read_image: ImageReader
    read_gt: GTReader
    problems: list[Problem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {s.id: i for i, s in enumerate(self.samples)}
        if len(self._index) != len(self.samples):
            dupes = [k for k, v in Counter(s.id for s in self.samples).items() if v > 1]
            raise ValueError(f"Duplicate sample ids: {dupes[:5]}")

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
        return self.read_image(self, s)

    def load_gt(self, sample: Sample | str) -> np.ndarray | None:
        s = self.get(sample) if isinstance(sample, str) else sample
        return self.read_gt(self, s)

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
    """Stable sample id: ``path`` relative to ``root`` in POSIX form."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def sample_ids(samples: Sequence[Sample]) -> list[str]:
    return [s.id for s in samples]
