"""What is wrong with a dataset's files: ``Problem`` (collected, shown, stored) and the errors that map to one
``ProblemKind`` (raised by the readers, collected by the formats). Below ``datasets.base`` and the readers, so that
neither needs the other to say what went wrong."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.errors import DatasetError


def safe_text(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode written as an escape, so that it can be stored (SQLite),
    logged and printed.

    A file name that is not valid UTF-8 reaches Python as lone surrogates (``os.fsdecode``): the byte ``0xff``
    is ``\\udcff`` and becomes the four characters ``\\xff``; other lone surrogates (from JSON ``\\ud800``)
    become ``\\ud800``. Valid text is returned unchanged (and checked cheaply: ASCII first)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


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

    def __post_init__(self) -> None:
        # messages quote file names, which may not be valid UTF-8; a problem must always be printable and storable
        object.__setattr__(self, "message", safe_text(self.message))

    @property
    def path_text(self) -> str | None:
        """``path`` as printable, storable text (see ``safe_text``)."""
        return safe_text(str(self.path)) if self.path is not None else None

    def __str__(self) -> str:
        where = f" [{self.path_text}]" if self.path is not None else ""
        return f"{self.kind.value}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "path": self.path_text,
            "sample_id": self.sample_id,
        }


class DatasetProblemError(DatasetError):
    """A ``DatasetError`` that maps to one ``ProblemKind``, so that callers can collect it as a ``Problem``."""

    kind: ProblemKind = ProblemKind.OTHER

    def __init__(
        self, message: str, *, path: str | Path | None = None, fix: str | None = None, kind: ProblemKind | None = None
    ) -> None:
        if kind is not None:
            self.kind = kind
        super().__init__(message, path=path, fix=fix)

    def to_problem(self, sample_id: str | None = None) -> Problem:
        msg = self.message if not self.fix else f"{self.message} Fix: {self.fix}"
        return Problem(self.kind, msg, path=self.path, sample_id=sample_id)


class CorruptImageError(DatasetProblemError):
    """The file is not a readable image (truncated, corrupt, or not an image at all)."""

    kind = ProblemKind.CORRUPT


class ImageTooLargeError(DatasetProblemError):
    """The image header declares more pixels than the limit: a possible decompression bomb."""

    kind = ProblemKind.TOO_LARGE


class ReaderFailedError(DatasetProblemError):
    """A format reader failed in a way it does not handle (a bug, or a parser library's surprise); raised by
    ``Dataset.load_image`` / ``load_gt`` and ``open_dataset`` in place of the raw exception, which is logged."""

    kind = ProblemKind.CORRUPT
