"""Crash-recovery journal (DESIGN §6): unsaved edits survive kill -9.

While a sample is edited, every finished stroke appends the after-state of the rectangle it touched (plus,
optionally, which pixels in it changed) to ``journal/<sample slug>.journal``, fsync'd. A periodic snapshot of the
whole mask may be appended too; replay then starts from the last snapshot, so the journal need not be replayed
from the beginning (and the base mask is not needed). A clean save deletes the file.

File format — a sequence of frames ``b"SSJ1" | u32 payload length | u32 CRC-32 | payload`` (little endian),
payload = ``u32 header length | JSON header | zlib data``. A frame torn by a kill mid-append fails its length
or CRC check; replay stops there, losing only that last stroke. An append that fails (a full disk) cuts the file
back to where it was, so the strokes appended after the disk has room again stay reachable, and raises our
error (``DiskFullError``) naming the file: the caller then knows the stroke is *not* journaled.

One process writes a workspace's journals (the workspace lock); a read-only instance gets a journal whose every
write raises ``ReadOnlyError`` and which deletes nothing, not even a journal without a header.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_bytes, fsync_dir
from segstudio.core.errors import ReadOnlyError, SegstudioError, io_error
from segstudio.workspace.locate import slug

log = logging.getLogger(__name__)

_MAGIC = b"SSJ1"
_FRAME = struct.Struct("<4sII")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class PendingRecovery:
    """Unsaved work found in the journal of one sample.

    ``base_version``: the mask version the edits started from (0 = the dataset's GT). ``patches`` counts the
    strokes recorded after the last snapshot; ``has_snapshot`` means the journal restores without a base.
    """

    sample_id: str
    base_version: int
    shape: tuple[int, ...]
    dtype: str
    patches: int
    has_snapshot: bool
    modified: float
    path: Path


def _frame(header: dict[str, Any], data: bytes = b"") -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    payload = _U32.pack(len(h)) + h + data
    return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _read_frames(path: Path) -> list[tuple[dict[str, Any], bytes]]:
    """Every intact frame of a journal, in order; stops quietly at a torn or damaged tail."""
    return _scan(path)[0]


def _scan(path: Path) -> tuple[list[tuple[dict[str, Any], bytes]], int]:
    """The intact frames and the byte length they span (where a torn tail begins)."""
    raw = path.read_bytes()
    out = []
    pos = 0
    while pos + _FRAME.size <= len(raw):
        magic, n, crc = _FRAME.unpack_from(raw, pos)
        payload = raw[pos + _FRAME.size : pos + _FRAME.size + n]
        if magic != _MAGIC or len(payload) != n or zlib.crc32(payload) != crc:
            log.warning("journal %s: damaged frame at byte %d; replay stops there", path, pos)
            break
        (hn,) = _U32.unpack_from(payload, 0)
        out.append((json.loads(payload[4 : 4 + hn]), payload[4 + hn :]))
        pos += _FRAME.size + n
    return out, pos


class JournalWriter:
    """Appends one sample's edits; safe to share between the editing thread and an autosave worker.

    Every record gets a sequence number (``seq`` is the last one). An autosave that captured the mask after
    record ``n`` calls :meth:`rebase` (through ``Workspace.save_mask(..., journal_seq=n)``): the journal then
    starts over from the saved version and keeps only records newer than ``n``, so strokes made while the
    save was running are not lost.
    """

    def __init__(
        self,
        path: Path,
        *,
        sample_id: str,
        base_version: int,
        shape: tuple[int, ...],
        dtype: np.dtype,
        fsync: bool = True,
        on_close: Callable[[JournalWriter], None] | None = None,
    ) -> None:
        self.path = path
        self.sample_id = sample_id
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.base_version = int(base_version)
        self.seq = 0
        self._fsync = fsync
        self._lock = threading.Lock()
        self._on_close = on_close
        self._fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            frames, good = _scan(path) if path.exists() else ([], 0)
            self._fd = self._open_fd(path)
            if frames and frames[0][0].get("type") == "open":
                self.base_version = int(frames[0][0]["base_version"])
                self.seq = max(int(h.get("seq", 0)) for h, _ in frames)
                # Cut a torn tail (a kill mid-append): records appended after it would be unreachable.
                if os.fstat(self._fd).st_size > good:
                    os.ftruncate(self._fd, good)
            else:
                os.ftruncate(self._fd, 0)
                self._write(self._fd, _frame(self._header()))
                fsync_dir(path.parent)
        except OSError as e:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise io_error(e, path, action="start the recovery journal") from e

    @staticmethod
    def _open_fd(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)

    def _header(self) -> dict[str, Any]:
        return {"type": "open", "sample_id": self.sample_id, "base_version": self.base_version,
                "shape": list(self.shape), "dtype": self.dtype.str, "time": time.time(), "seq": 0}  # fmt: skip

    def _write(self, fd: int, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view) :]
        if self._fsync:
            os.fsync(fd)

    def _append(self, header: dict[str, Any], data: bytes) -> int:
        with self._lock:
            if self._fd is None:
                raise SegstudioError("The recovery journal is closed.", path=self.path)
            frame = _frame({**header, "seq": self.seq + 1}, data)
            start = os.fstat(self._fd).st_size
            try:
                self._write(self._fd, frame)
            except OSError as e:
                # A part-written frame would hide every later one from replay: cut it off (shrinking a file
                # needs no space). The stroke is not journaled, and the error says so.
                try:
                    os.ftruncate(self._fd, start)
                except OSError as e2:
                    log.warning("could not cut a failed append off %s: %s", self.path, e2)
                raise io_error(e, self.path, action="journal the last stroke in", needed=len(frame)) from e
            self.seq += 1
            return self.seq

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def append_patch(self, *, top: int, left: int, values: np.ndarray, changed: np.ndarray | None = None) -> int:
        """Record a stroke: ``values`` (``(h, w)``, the mask's dtype) is the after-state of the rectangle at
        ``(top, left)``; ``changed`` (``(h, w) bool``), if given, limits it to the pixels the stroke changed.
        Returns the record's sequence number."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        h, w = values.shape
        if top < 0 or left < 0 or top + h > self.shape[0] or left + w > self.shape[1]:
            raise ValueError(f"patch {h}x{w} at ({top}, {left}) lies outside the {self.shape} mask")
        data = values.tobytes()
        header: dict[str, Any] = {"type": "patch", "top": int(top), "left": int(left), "h": h, "w": w, "n": len(data)}
        if changed is not None:
            bits = np.packbits(np.asarray(changed, bool).ravel()).tobytes()
            header["changed"] = len(bits)
            data = bits + data
        return self._append(header, zlib.compress(data, 1))

    def append_snapshot(self, mask: np.ndarray) -> int:
        """Record the whole current mask; replay starts from the newest snapshot. Returns its sequence number."""
        mask = np.ascontiguousarray(mask, dtype=self.dtype)
        if mask.shape != self.shape:
            raise ValueError(f"snapshot shape {mask.shape} differs from the journal's {self.shape}")
        return self._append({"type": "snapshot", "time": time.time()}, zlib.compress(mask.tobytes(), 1))

    def rebase(self, *, base_version: int, upto_seq: int | None = None) -> None:
        """The mask as of record ``upto_seq`` (``None``: all records) was saved as ``base_version``: restart the
        journal from it, keeping newer records. The new file replaces the old one atomically."""
        with self._lock:
            if self._fd is None:
                raise SegstudioError("The recovery journal is closed.", path=self.path)
            keep = [] if upto_seq is None else [(h, d) for h, d in _read_frames(self.path)[1:] if int(h.get("seq", 0)) > upto_seq]
            self.base_version = int(base_version)
            blob = _frame(self._header()) + b"".join(_frame(h, d) for h, d in keep)
            atomic_write_bytes(self.path, blob)
            os.close(self._fd)
            self._fd = self._open_fd(self.path)

    def close(self) -> None:
        """Stop journaling (the file stays: unsaved work in it is still offered for recovery)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if self._on_close is not None:
            self._on_close(self)

    def discard(self) -> None:
        """The work was saved (or thrown away on purpose): delete the journal."""
        self.close()
        _unlink(self.path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as e:
        raise io_error(e, path, action="remove") from e
    fsync_dir(path.parent)


def replay(path: Path, *, base: np.ndarray | None) -> np.ndarray:
    """The mask the journal at ``path`` describes: ``base`` (or the last snapshot) with every later patch."""
    frames = _read_frames(path)
    if not frames or frames[0][0].get("type") != "open":
        raise SegstudioError("The recovery journal has no readable header.", path=path, fix="Discard this recovery.")
    head = frames[0][0]
    shape, dtype = tuple(head["shape"]), np.dtype(head["dtype"])
    start, mask = 1, None
    for i in range(len(frames) - 1, 0, -1):
        if frames[i][0]["type"] == "snapshot":
            mask = np.frombuffer(zlib.decompress(frames[i][1]), dtype).reshape(shape).copy()
            start = i + 1
            break
    if mask is None:
        if base is None:
            raise SegstudioError(
                f"The journal of {head['sample_id']!r} holds edits on top of mask version {head['base_version']}, "
                "which is needed to restore them.",
                path=path,
                fix="Pass the base mask (the GT for version 0).",
            )
        if tuple(base.shape) != shape:
            raise ValueError(f"base mask shape {base.shape} differs from the journal's {shape}")
        mask = np.array(base, dtype=dtype, copy=True)
    for h, data in frames[start:]:
        if h["type"] != "patch":
            continue
        raw = zlib.decompress(data)
        nbits = int(h.get("changed", 0))
        vals = np.frombuffer(raw[nbits:], dtype).reshape(h["h"], h["w"])
        region = mask[h["top"] : h["top"] + h["h"], h["left"] : h["left"] + h["w"]]
        if nbits:
            changed = np.unpackbits(np.frombuffer(raw[:nbits], np.uint8), count=h["h"] * h["w"]).reshape(h["h"], h["w"]).astype(bool)
            region[changed] = vals[changed]
        else:
            region[...] = vals
    return mask


class RecoveryJournal:
    """The journals of one workspace (``<workspace>/journal/``)."""

    def __init__(self, folder: Path, *, fsync: bool = True, read_only: bool = False) -> None:
        self.folder = folder
        self._fsync = fsync
        self.read_only = read_only
        self._writers: dict[str, JournalWriter] = {}
        self._writers_lock = threading.Lock()

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"The workspace is open read-only: cannot {what}; nothing was written.",
                path=self.folder,
                fix="Close the other segstudio using this workspace (or free the disk), then open it again.",
            )

    def path_for(self, sample_id: str) -> Path:
        return self.folder / f"{slug(sample_id)}.journal"

    def open(
        self, sample_id: str, *, base_version: int, shape: tuple[int, ...], dtype: np.dtype | type, resume: bool = False
    ) -> JournalWriter:
        """Start journaling edits of ``sample_id``. ``resume=True`` appends to a journal just restored from;
        otherwise an old journal of the sample is replaced (its work was declined or saved)."""
        self._check_writable("journal unsaved edits")
        with self._writers_lock:
            old = self._writers.pop(sample_id, None)
        if old is not None:
            old.close()
        if not resume:
            _unlink(self.path_for(sample_id))
        w = JournalWriter(
            self.path_for(sample_id), sample_id=sample_id, base_version=base_version, shape=shape,
            dtype=np.dtype(dtype), fsync=self._fsync, on_close=self._forget,
        )  # fmt: skip
        with self._writers_lock:
            self._writers[sample_id] = w
        return w

    def _forget(self, writer: JournalWriter) -> None:
        with self._writers_lock:
            if self._writers.get(writer.sample_id) is writer:
                del self._writers[writer.sample_id]

    def mark_saved(self, sample_id: str, *, version: int, upto_seq: int | None = None) -> None:
        """The sample's mask (as of record ``upto_seq``; ``None`` = everything) was saved as ``version``.

        With a writer open on the sample the journal is rebased onto the new version (newer records kept);
        otherwise the journal is deleted: a clean save leaves nothing to recover."""
        self._check_writable("clear the recovery journal")
        with self._writers_lock:
            w = self._writers.get(sample_id)
        if w is not None and w.is_open:
            w.rebase(base_version=version, upto_seq=upto_seq)
        else:
            _unlink(self.path_for(sample_id))

    def pending(self) -> list[PendingRecovery]:
        """Unsaved work left by a previous session, oldest first. Journals this process is still writing and
        journals without edits are not listed."""
        out: list[PendingRecovery] = []
        if not self.folder.is_dir():
            return out
        with self._writers_lock:
            live = {w.path for w in self._writers.values() if w.is_open}
        for p in sorted(self.folder.glob("*.journal")):
            if p in live:
                continue
            info = self._info(p)
            if info is not None:
                out.append(info)
        out.sort(key=lambda r: r.modified)
        return out

    def info(self, sample_id: str) -> PendingRecovery | None:
        """What the sample's journal holds (``None``: no journal, or no edits since the last save)."""
        p = self.path_for(sample_id)
        return self._info(p) if p.exists() else None

    def _info(self, p: Path) -> PendingRecovery | None:
        try:
            frames = _read_frames(p)
        except OSError as e:
            log.warning("cannot read journal %s: %s", p, e)
            return None
        if not frames or frames[0][0].get("type") != "open":
            if self.read_only:
                return None
            log.warning("journal %s has no header; removing it", p)
            _unlink(p)
            return None
        head = frames[0][0]
        kinds = [f[0]["type"] for f in frames[1:]]
        last_snap = max((i for i, k in enumerate(kinds) if k == "snapshot"), default=-1)
        patches = sum(1 for k in kinds[last_snap + 1 :] if k == "patch")
        if patches == 0 and last_snap < 0:
            return None  # opened but not edited since the last save: nothing to offer
        return PendingRecovery(
            sample_id=head["sample_id"], base_version=int(head["base_version"]), shape=tuple(head["shape"]),
            dtype=np.dtype(head["dtype"]).name, patches=patches, has_snapshot=last_snap >= 0,
            modified=p.stat().st_mtime, path=p,
        )  # fmt: skip

    def restore(self, sample_id: str, *, base: np.ndarray | None) -> np.ndarray:
        """The unsaved mask of ``sample_id`` (``base``: the mask of the journal's ``base_version``)."""
        p = self.path_for(sample_id)
        if not p.exists():
            raise SegstudioError(f"No unsaved work recorded for {sample_id!r}.", path=p)
        return replay(p, base=base)

    def discard(self, sample_id: str) -> None:
        """Throw the sample's unsaved work away (closing its writer, if one is open here)."""
        self._check_writable("discard unsaved edits")
        with self._writers_lock:
            w = self._writers.pop(sample_id, None)
        if w is not None:
            w.close()
        _unlink(self.path_for(sample_id))
