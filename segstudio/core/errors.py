"""Errors that say what is wrong, with which file, and how to fix it."""

from __future__ import annotations

from pathlib import Path


class SegstudioError(Exception):
    """Base class of every error segstudio raises on purpose.

    ``str(err)`` is a complete sentence a user can act on: what is wrong, the file, and the fix.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.path is not None:
            # a file name that is not valid UTF-8 holds lone surrogates, which a strict stdout cannot print
            parts.append("File: " + str(self.path).encode("utf-8", "backslashreplace").decode("utf-8"))
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return "\n".join(parts)


class DatasetError(SegstudioError):
    """A dataset cannot be opened or a file of it cannot be read."""


class UnknownKeyError(SegstudioError, KeyError):
    """A registry lookup with a key that is not registered; the message lists the valid keys."""

    def __init__(self, kind: str, key: str, valid: list[str] | tuple[str, ...]) -> None:
        options = ", ".join(sorted(valid)) or "(none registered)"
        super().__init__(f"Unknown {kind} {key!r}. Valid {kind}s: {options}.")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class WorkspaceError(SegstudioError):
    """The workspace cannot be opened, read or written (damaged database, locked, no space, read-only)."""


class FileIOError(SegstudioError, OSError):
    """A file could not be read or written (our message with the path and the fix; ``errno`` kept).

    It is an ``OSError`` too, so code that already handles a failed write keeps handling it."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None,
                 errno: int | None = None) -> None:
        super().__init__(message, path=path, fix=fix)
        self.errno = errno  # type: ignore[misc]


class DiskFullError(FileIOError):
    """A write failed because the disk (or the user's quota) is full; nothing already saved was touched."""


class ReadOnlyError(SegstudioError):
    """A write was asked of something opened read-only (a workspace held by another instance, a full disk)."""


_ENOSPC = {28, 122}  # ENOSPC, EDQUOT


def free_bytes(folder: str | Path) -> int | None:
    """Free space where ``folder`` (or its nearest existing parent) lives, or None when it cannot be asked."""
    import shutil

    p = Path(folder)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def _mib(n: int) -> str:
    if n < 2**20:
        return f"{max(1, round(n / 1024))} KiB"
    return f"{n / 2**20:.1f} MiB"


def disk_full_error(path: Path, *, what: str, action: str = "write", needed: int | None = None,
                    errno: int | None = None) -> DiskFullError:
    """The disk holding ``path`` is full: the folder, its free space, the space needed, and that nothing saved
    before was touched."""
    folder = path.parent
    free = free_bytes(folder)
    need = f"about {_mib(needed)}" if needed else "a few MiB"
    have = f"{_mib(free)} free" if free is not None else "free space unknown"
    return DiskFullError(
        f"Cannot {action} {what}: the disk is full ({have} in {folder}; {need} needed). "
        "What was saved before is intact.",
        path=path,
        fix=f"Free {need} on the disk holding {folder}, then save again.",
        errno=errno,
    )


def io_error(err: OSError, path: str | Path, *, action: str = "write", needed: int | None = None) -> FileIOError:
    """Our error for an ``OSError`` met while doing ``action`` on ``path``: what, which file, and the fix.

    A full disk becomes :class:`DiskFullError` naming the folder, the free space there and the space needed;
    permissions, read-only file systems and missing folders get their own fix. The caller raises it ``from err``.
    """
    p = Path(path)
    folder = p.parent if p.suffix or not p.is_dir() else p
    reason = err.strerror or str(err)
    if err.errno in _ENOSPC:
        return disk_full_error(p, what=p.name, action=action, needed=needed, errno=err.errno)
    import errno as _errno

    if err.errno in (_errno.EACCES, _errno.EPERM):
        fix = f"Make {folder} writable for this user, or choose another folder."
    elif err.errno == _errno.EROFS:
        fix = f"{folder} is on a read-only file system: choose a folder on a writable disk."
    elif err.errno in (_errno.ENOENT, _errno.ENOTDIR):
        fix = "Check that the path exists and that none of its parents is a file."
    elif err.errno == _errno.EISDIR:
        fix = "The path is a folder: give a file name."
    elif err.errno == _errno.EEXIST:
        fix = "Choose a new name; segstudio never replaces this file."
    else:
        fix = "Check the disk and the path, then try again."
    return FileIOError(f"Cannot {action} {p.name} ({reason}).", path=p, fix=fix, errno=err.errno)
