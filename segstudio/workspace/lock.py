"""One writer per workspace (DESIGN §6): ``<workspace>/workspace.lock``.

The lock is an ``fcntl.flock`` held on the lock file for the whole session: the kernel drops it when the process
ends, however it ends (kill -9 included), so a crashed session never blocks the next one. The file's content
says who holds it — JSON ``{pid, host, start_ticks, user, started, version}`` — for the message a second
instance shows, and for stale-lock detection where ``flock`` is unavailable or unreliable: a holder whose pid is
dead on this host, or whose pid now belongs to a process that started at another time (a reused pid), is stale
and is taken over with a log line.

The file is never deleted and never replaced (a lock taken on a replaced file's old inode would lock nothing);
its content is rewritten in place, and emptied when the lock is released. Opening one workspace twice in one
process shares the lock (a reference count): the lock keeps other processes out, not this one's own parts.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.atomic import host_name, pid_alive
from segstudio.core.errors import WorkspaceError, io_error

try:
    import fcntl
except ImportError:  # Windows: only the pid + host + start time check below
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_NAME = "workspace.lock"


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22), or ``None``
    where that cannot be read (not Linux, process gone). Together with the pid it names one process: a pid
    reused later has another start time."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ")".
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - getuser raises whatever its last fallback (pwd) raises
        return "unknown user"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a workspace: a process on a host, since ``started`` (seconds since the epoch)."""

    pid: int
    host: str
    start_ticks: int | None
    user: str
    started: float
    version: str

    @classmethod
    def me(cls) -> LockHolder:
        from segstudio import __version__

        pid = os.getpid()
        return cls(pid=pid, host=host_name(), start_ticks=process_start_ticks(pid), user=_user(),
                   started=time.time(), version=__version__)  # fmt: skip

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LockHolder | None:
        """The holder recorded in a lock file's bytes; ``None`` for an empty (released) or unreadable file."""
        try:
            d: Any = json.loads(raw.decode("utf-8"))
            return cls(pid=int(d["pid"]), host=str(d["host"]), start_ticks=None if d.get("start_ticks") is None
                       else int(d["start_ticks"]), user=str(d.get("user", "")), started=float(d.get("started", 0.0)),
                       version=str(d.get("version", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started)) if self.started else "an unknown time"
        return f"process {self.pid} of {self.user or 'an unknown user'} on {self.host}, since {since}"

    def is_stale(self) -> bool:
        """True when this holder is certainly gone: on this host, its pid is dead or belongs to another process.
        A holder on another host cannot be checked from here and is not stale."""
        if self.host != host_name():
            return False
        if not pid_alive(self.pid):
            return True
        now = process_start_ticks(self.pid)
        return self.start_ticks is not None and now is not None and now != self.start_ticks


class WorkspaceLockedError(WorkspaceError):
    """Another segstudio holds the workspace; ``holder`` says who (``None`` when its record cannot be read)."""

    def __init__(self, folder: Path, holder: LockHolder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder is not None else "another process (its details could not be read)"
        super().__init__(
            f"The workspace is in use by another segstudio: {who}.",
            path=folder / LOCK_NAME,
            fix="Close that segstudio, or open the workspace read-only (you can look, not save). If that "
            "computer no longer runs segstudio, delete the lock file.",
        )


def read_holder(folder: Path) -> LockHolder | None:
    """Who the lock file of ``folder`` names (``None``: no file, released, or unreadable). Never writes."""
    for _ in range(3):  # the holder rewrites the content in place: a read may catch it half-written
        try:
            raw = (folder / LOCK_NAME).read_bytes()
        except OSError:
            return None
        if not raw:
            return None
        holder = LockHolder.from_json(raw)
        if holder is not None:
            return holder
        time.sleep(0.02)
    return None


_held: dict[Path, tuple[int, int]] = {}  # folder -> (fd, reference count), this process's locks
_held_lock = threading.Lock()


class WorkspaceLock:
    """The lock of one workspace folder, held until :meth:`release`. Use :meth:`acquire`."""

    def __init__(self, folder: Path, fd: int, *, took_over: LockHolder | None) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = fd
        self.took_over = took_over

    @classmethod
    def acquire(cls, folder: Path) -> WorkspaceLock:
        """Take the lock of ``folder`` (an existing folder). Raises :class:`WorkspaceLockedError` when another
        process holds it, our ``SegstudioError`` (e.g. ``DiskFullError``) when the lock file cannot be made."""
        folder = Path(folder)
        with _held_lock:
            if folder in _held:
                fd, n = _held[folder]
                _held[folder] = (fd, n + 1)
                return cls(folder, fd, took_over=None)
            fd, prev = cls._take(folder)
            _held[folder] = (fd, 1)
        if prev is not None:
            log.warning("workspace %s: took over a stale lock of %s (that process is gone)", folder, prev.describe())
        return cls(folder, fd, took_over=prev)

    @staticmethod
    def _take(folder: Path) -> tuple[int, LockHolder | None]:
        path = folder / LOCK_NAME
        for _ in range(5):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise io_error(e, path, action="create the workspace lock") from e
            try:
                prev = _read_fd(fd)
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise WorkspaceLockedError(folder, read_holder(folder)) from None
                    except OSError as e:  # ENOLCK: a file system without locks; the content check decides
                        log.warning("workspace %s: no file lock here (%s); relying on the pid check", folder, e)
                    try:
                        if os.fstat(fd).st_ino != os.stat(path).st_ino:
                            os.close(fd)  # the file was replaced while we opened it: lock the new one
                            continue
                    except FileNotFoundError:
                        os.close(fd)
                        continue
                    prev = _read_fd(fd)  # what the last holder left, now that nobody can be writing it
                if prev is not None and prev.pid != os.getpid() and not prev.is_stale():
                    if fcntl is None or prev.host != host_name():
                        raise WorkspaceLockedError(folder, prev)
                    # The flock is free, so that process does not hold the workspace any more, although it
                    # still runs (it released the flock without emptying the file): not stale, not held.
                    prev = None
                _write_fd(fd, LockHolder.me().to_json(), path)
            except BaseException:
                os.close(fd)
                raise
            return fd, prev
        raise WorkspaceError("The workspace lock file keeps being replaced.", path=path,
                             fix="Stop whatever is replacing workspace.lock, then open the workspace again.")  # fmt: skip

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (the file stays, emptied: "nobody holds it"). Safe to call twice."""
        with _held_lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            have = _held.get(self.folder)
            if have is None or have[0] != fd:
                return
            if have[1] > 1:
                _held[self.folder] = (fd, have[1] - 1)
                return
            del _held[self.folder]
            try:
                os.ftruncate(fd, 0)
            except OSError as e:
                log.warning("could not empty the workspace lock %s: %s", self.path, e)
            os.close(fd)  # closing the last descriptor drops the flock


def _read_fd(fd: int) -> LockHolder | None:
    try:
        raw = os.pread(fd, 4096, 0)
    except OSError:
        return None
    return LockHolder.from_json(raw) if raw else None


def _write_fd(fd: int, data: bytes, path: Path) -> None:
    """Record the holder in place. The record is advisory (the flock is the lock), so a full disk that refuses
    it does not refuse the lock."""
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    except OSError as e:
        log.warning("could not record the holder in the workspace lock %s: %s", path, e)
