"""Reading the engine's small JSON documents (run configs, a checkpoint's ``config.json``, training state) safely:
``json`` only, bounded in size, and every problem a ``SegstudioError`` of the caller's type naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError, UnknownKeyError

#: largest config file read (a run config is a few KiB)
MAX_CONFIG_BYTES = 4 << 20


def locate(err: SegstudioError, path: Path) -> SegstudioError:
    """``err`` with ``path`` as its file, when it names none yet (the message is rendered again)."""
    if err.path is None:
        err.path = Path(path)
        if isinstance(err, UnknownKeyError):  # its str() is the message alone
            err.message = f"{err.message} File: {path}"
        err.args = (err._render(),)
    return err


def read_json_document(path: Path, *, error: type[SegstudioError], what: str,
                       max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """A JSON file parsed with ``json`` only; a missing, unreadable, oversized, non-UTF-8, truncated or
    absurdly nested file raises ``error`` naming the file and the fix."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"The {what} is {size / 2**20:.1f} MiB; a segstudio {what} is a few KiB.", path=path,
                        fix="Point to the right file.")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"The {what} does not exist.", path=path, fix="Check the path.") from None
    except IsADirectoryError:
        raise error(f"The {what} path is a folder, not a file.", path=path, fix="Give the JSON file.") from None
    except OSError as e:
        raise error(f"Cannot read the {what} ({e.strerror or e}).", path=path,
                    fix="Check that the file is readable.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"The {what} is not UTF-8 text (is it a binary file?).", path=path,
                    fix="Point to the JSON file.") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise error(f"The {what} is not valid JSON ({e}); it may be truncated.", path=path,
                    fix="Fix the JSON syntax, or restore the file.") from None
    except ValueError as e:  # NaN / Infinity, or an integer with thousands of digits
        raise error(f"The {what} holds an invalid number ({e}).", path=path, fix="Use finite numbers.") from None
    except RecursionError:
        raise error(f"The {what} is nested too deeply to be a segstudio {what}.", path=path,
                    fix="Point to the right file.") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")
