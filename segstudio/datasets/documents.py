"""Reading the text documents of a dataset safely: JSON, class lists, image lists, colour tables.

Every reader of a JSON or text file goes through here (issue 13, case 8), so that malformed input of any kind
(truncated, not UTF-8, nested 100,000 deep, a gigabyte long, ``1e999`` where a size belongs, a list where an id
belongs) becomes one ``DatasetProblemError`` naming the file, never a raw ``RecursionError``, ``OverflowError``
or ``AttributeError``. The typed accessors (``get_int``, ``get_str``, ``get_id``, ...) read one field of a
parsed document and answer ``None`` for a missing or mistyped value; callers decide whether that is a problem
to report or a reason to skip. ``describe`` renders any value for a message in a few characters.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError

#: Largest annotation index read (COCO train2017's instances file is 448 MB).
MAX_JSON_BYTES = 2 * 2**30
#: Largest class list, image list, colour table or per-image annotation file read.
MAX_TEXT_BYTES = 64 * 2**20

_MISSING_FIX = "Check the file is complete, valid JSON (UTF-8)."


def _size_checked(path: Path, max_bytes: int) -> int:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError as e:
        raise DatasetProblemError("The file does not exist.", path=path, kind=ProblemKind.MISSING_MASK) from e
    except OSError as e:
        raise _unreadable(path, e) from e
    if size > max_bytes:
        raise DatasetProblemError(
            f"The file is {size / 2**20:,.0f} MiB, over the limit of {max_bytes / 2**20:,.0f} MiB for this kind "
            "of file; it was not read.",
            path=path,
            fix="Check it is the right file (not a data dump renamed); split it if it is genuine.",
            kind=ProblemKind.TOO_LARGE,
        )
    return size


def _unreadable(path: Path, err: OSError) -> DatasetProblemError:
    import errno

    if err.errno in (errno.EACCES, errno.EPERM):
        fix = "Make the file readable for this user."
    elif err.errno == errno.ELOOP:
        fix = "The path is a symbolic link that points to itself (a loop): remove or fix the link."
    elif err.errno == errno.EISDIR:
        fix = "A folder has the name of the file: rename it."
    else:
        fix = "Check the disk and the file, then try again."
    return DatasetProblemError(
        f"Cannot read the file ({err.strerror or err}).", path=path, fix=fix, kind=ProblemKind.CORRUPT
    )


def read_bytes(path: Path, *, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The file's bytes, after checking its size; errors name the file."""
    size = _size_checked(path, max_bytes)
    try:
        with open(path, "rb") as f:
            # read(n) reserves n bytes up front: ask for the size seen (+1 for a file still growing), not the limit
            return f.read(size + 1)[:max_bytes]
    except OSError as e:
        raise _unreadable(path, e) from e


def read_text(path: Path, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A UTF-8 text file (a BOM is dropped); errors name the file and say how to fix it."""
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetProblemError(
            f"The file is not UTF-8 text (byte {e.start}).",
            path=path,
            fix="Save it as UTF-8 text.",
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e


def read_lines(path: Path, *, max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """The non-empty lines of a UTF-8 text file, stripped."""
    return [ln.strip() for ln in read_text(path, max_bytes=max_bytes).splitlines() if ln.strip()]


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file; anything wrong with it raises ``DatasetProblemError`` (``bad_annotation``) naming it.

    Bounded: files over ``max_bytes`` are not read; nesting deeper than the interpreter's recursion limit
    (~1000) is refused instead of escaping as ``RecursionError``; ``NaN``/``Infinity`` and huge numbers parse
    (the typed accessors reject them where a size or an id belongs).
    """
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        text = data.decode("utf-8-sig")
        return json.loads(text)
    except RecursionError as e:
        raise DatasetProblemError(
            "The JSON is nested too deeply to be an annotation file.",
            path=path,
            fix=_MISSING_FIX,
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e
    except UnicodeDecodeError as e:
        raise DatasetProblemError(
            f"The JSON file is not UTF-8 (byte {e.start}).", path=path, fix="Save it as UTF-8.",
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e
    except ValueError as e:  # JSONDecodeError, and integers past Python's digit limit
        raise DatasetProblemError(
            f"Cannot parse the JSON file ({describe_error(e)}).",
            path=path,
            fix=_MISSING_FIX,
            kind=ProblemKind.BAD_ANNOTATION,
        ) from e


def read_json_object(path: Path, *, max_bytes: int = MAX_JSON_BYTES, what: str = "file") -> dict[str, Any]:
    """``read_json`` for documents that must be a JSON object (``{...}``)."""
    doc = read_json(path, max_bytes=max_bytes)
    if not isinstance(doc, dict):
        raise DatasetProblemError(
            f"The {what} is a JSON {describe(doc)}, not an object {{...}}.",
            path=path,
            fix=_MISSING_FIX,
            kind=ProblemKind.BAD_ANNOTATION,
        )
    return doc


# --- typed accessors ---------------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """``value`` for a message, at most ~40 characters, without walking into nested containers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 128 else f"an integer of {value.bit_length()} bits"
        return text
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        shown = value[:32].encode("utf-8", "backslashreplace").decode("utf-8")
        return repr(shown) + ("..." if len(value) > 32 else "")
    if isinstance(value, list):
        return f"list of {len(value)}"
    if isinstance(value, dict):
        return f"object of {len(value)} keys"
    return type(value).__name__


def describe_error(err: BaseException) -> str:
    """An exception's text for a message, cut to 200 characters."""
    text = str(err)
    return text if len(text) <= 200 else text[:197] + "..."


def as_int(value: Any, *, lo: int | None = None, hi: int | None = None) -> int | None:
    """``value`` as an int when it is a whole number within ``lo..hi`` (``3.0`` counts; bools, ``NaN``, ``1e999``,
    strings and containers do not), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        out = int(value)
    else:
        return None
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        return None
    return out


def as_float(value: Any) -> float | None:
    """A finite number as float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def as_str(value: Any, *, numbers: bool = True) -> str | None:
    """A string (or, with ``numbers``, a number written as one), else None."""
    if isinstance(value, str):
        return value
    if numbers and not isinstance(value, bool) and isinstance(value, int | float):
        return describe(value)
    return None


def as_id(value: Any) -> int | str | None:
    """An identifier: an int or a string (``3.0`` -> ``3``), else None (lists, objects, ``NaN``, bools)."""
    if isinstance(value, str):
        return value
    return as_int(value)


def get_int(obj: Mapping[str, Any], key: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
    return as_int(obj.get(key), lo=lo, hi=hi)


def get_str(obj: Mapping[str, Any], key: str, *, numbers: bool = True) -> str | None:
    return as_str(obj.get(key), numbers=numbers)


def get_id(obj: Mapping[str, Any], key: str) -> int | str | None:
    return as_id(obj.get(key))


def get_list(obj: Mapping[str, Any], key: str) -> list[Any] | None:
    """The value when it is a list, ``[]`` when the key is missing or null, None when it is something else."""
    value = obj.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else None


def get_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """JSON true/false (or 0/1); anything else is ``default``."""
    value = obj.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return default


def bad_field(path: Path, where: str, key: str, value: Any, expected: str) -> DatasetProblemError:
    """The error for one mistyped field: which file, where in it, what was found and what belongs there."""
    return DatasetProblemError(
        f"{where}: {key!r} must be {expected}, not {describe(value)}.",
        path=path,
        fix=f"Fix {key!r} there.",
        kind=ProblemKind.BAD_ANNOTATION,
    )
