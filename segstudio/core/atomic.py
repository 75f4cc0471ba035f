"""Atomic file writes (DESIGN §6): temp file in the same folder, fsync, rename, fsync the folder.

A reader sees either the old file or the new one, never a torn one — after an exception, a full disk or a
kill -9 at any point. The temp file lives in the target's folder because ``os.replace`` is atomic only within
one file system.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError, io_error

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Temp files are named ``.<target>.<pid>.<8 hex>.tmp``: the pid lets :func:`sweep_stale_temps` tell a temp
#: left by a killed process from one another live process is writing now.
TEMP_SUFFIX = ".tmp"


def temp_path_for(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (owned by anyone)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def sweep_stale_temps(folder: str | Path, *, recursive: bool = True, min_age_s: float = 0.0) -> int:
    """Remove the temp files a killed writer left in ``folder`` (those whose writing process is gone).

    A temp file of a live process is kept (it may be mid-write); one whose pid field cannot be read is removed
    only when older than an hour. Returns how many were removed. Never raises for an unreadable folder.
    """
    root = Path(folder)
    removed = 0
    try:
        it = root.rglob(f".*{TEMP_SUFFIX}") if recursive else root.glob(f".*{TEMP_SUFFIX}")
        candidates = [p for p in it if p.is_file() or p.is_dir()]
    except OSError:
        return 0
    now = time.time()
    for p in candidates:
        parts = p.name[1:-len(TEMP_SUFFIX)].rsplit(".", 2)
        pid: int | None = None
        if len(parts) == 3 and parts[1].isdigit():
            pid = int(parts[1])
        try:
            age = now - p.lstat().st_mtime
        except OSError:
            continue
        if age < min_age_s:
            continue
        stale = (pid is not None and not pid_alive(pid)) or (pid is None and age > 3600)
        if not stale:
            continue
        try:
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            removed += 1
            log.info("removed a temp file a stopped writer left behind: %s", p)
        except OSError as e:
            log.warning("could not remove stale temp file %s: %s", p, e)
    return removed


#: Inside :func:`deferred_durability`: skip the per-file fsyncs (the caller makes the whole batch durable once).
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("segstudio_deferred_fsync", default=False)


@contextlib.contextmanager
def deferred_durability() -> Iterator[None]:
    """Within this block (in this thread or task), atomic writes still go through temp file + rename, so each
    file is whole or absent, but skip their fsyncs. For a batch written into a staging folder that is renamed
    into place at the end (an export of thousands of files): the caller calls :func:`sync_tree` on the folder
    before publishing it, one flush instead of two fsyncs per file."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        try:
            _DEFERRED.reset(token)
        except ValueError:  # ended from another context (a generator closed elsewhere): just switch it off
            _DEFERRED.set(False)


def sync_tree(folder: str | Path) -> None:
    """Make every file under ``folder`` durable (``os.sync`` where there is one, else an fsync per file)."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for p in Path(folder).rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_temp(path: Path, data: bytes | bytearray | memoryview) -> Path:
    """The bytes in a new fsync'd temp file beside ``path`` (removed again if writing fails)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise io_error(e, path.parent, action="create the folder of") from e
    tmp = temp_path_for(path)
    view = memoryview(data).cast("B")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as e:
        raise io_error(e, path, needed=len(view)) from e
    try:
        try:
            pos = 0
            while pos < len(view):
                pos += os.write(fd, view[pos : pos + _CHUNK])
            if not _DEFERRED.get():
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as e:
        _discard(tmp)
        if isinstance(e, OSError):
            raise io_error(e, path, needed=len(view)) from e
        raise
    return tmp


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove temp file %s after a failed write", tmp)


def atomic_write_bytes(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically and durably; on any failure the old file (if any) is untouched
    and no temp file is left behind. Creates missing parent folders. Returns ``path``.

    Raises :class:`~segstudio.core.errors.SegstudioError` (``DiskFullError`` on a full disk) naming the file.
    """
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException as e:
        _discard(tmp)
        if isinstance(e, OSError):
            raise io_error(e, path) from e
        raise
    if not _DEFERRED.get():
        fsync_dir(path.parent)
    return path


class FileExistsSegstudioError(SegstudioError, FileExistsError):
    """A create-only write found the file already there (it is left untouched)."""


def atomic_create_bytes(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Like :func:`atomic_write_bytes`, but never replaces an existing file: the complete temp file is
    hard-linked to ``path`` (atomic and exclusive), so a second writer or a stale orphan makes it raise
    :class:`FileExistsSegstudioError` and leaves the existing file byte-identical. File systems without hard
    links fall back to an exclusive create followed by the rename (still never replacing)."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsSegstudioError(
                f"{path.name} already exists; segstudio never overwrites it.",
                path=path,
                fix="This is a bug or a second writer: save again (a new version number is chosen).",
            ) from None
        except OSError as e:
            if e.errno in (1, 18, 38, 95):  # EPERM, EXDEV, ENOSYS, EOPNOTSUPP: no hard links here
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    raise FileExistsSegstudioError(
                        f"{path.name} already exists; segstudio never overwrites it.", path=path
                    ) from None
                os.close(fd)
                os.replace(tmp, path)
            else:
                raise io_error(e, path) from e
    finally:
        _discard(tmp)
    fsync_dir(path.parent)
    return path


def host_name() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return "unknown-host"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities become None, paths text, tuples lists, keys text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def atomic_write_json(path: str | Path, doc: Any, *, sort_keys: bool = False) -> Path:
    """:func:`atomic_write_text` of ``doc`` as indented, strict JSON (see :func:`json_safe`), readable by any tool."""
    return atomic_write_text(path, json.dumps(json_safe(doc), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")
