"""Crash-recovery journal (DESIGN §6): unsaved edits survive kill -9.

While a sample is edited, every finished stroke appends the after-state of the rectangle it touched (plus,
optionally, which pixels in it changed) to ``journal/<sample slug>.journal``, fsync'd. A periodic snapshot of the
whole mask may be appended too; replay then starts from the last snapshot, so the journal need not be replayed
from the beginning (and the base mask is not needed). A clean save deletes the file.

File format — a sequence of frames ``b"SSJ1" | u32 payload length | u32 CRC-32 | payload`` (little endian),
payload = ``u32 header length | JSON header | zlib data``. A frame torn by a kill mid-append fails its length
or CRC check; replay stops there, losing only that last stroke.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.workspace.atomic import fsync_dir
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
    return out


class JournalWriter:
    """Appends one sample's edits. Not thread-safe by itself: the one editor of a sample owns its writer."""

    def __init__(self, path: Path, *, sample_id: str, base_version: int, shape: tuple[int, ...], dtype: np.dtype, fsync: bool = True) -> None:
        self.path = path
        self.sample_id = sample_id
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
        if fresh:
            header = {"type": "open", "sample_id": sample_id, "base_version": int(base_version),
                      "shape": list(self.shape), "dtype": self.dtype.str, "time": time.time()}  # fmt: skip
            self._append(_frame(header))
            fsync_dir(path.parent)

    def _append(self, frame: bytes) -> None:
        if self._fd is None:
            raise SegstudioError("The recovery journal is closed.", path=self.path)
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view) :]
        if self._fsync:
            os.fsync(self._fd)

    def append_patch(self, *, top: int, left: int, values: np.ndarray, changed: np.ndarray | None = None) -> None:
        """Record a stroke: ``values`` (``(h, w)``, the mask's dtype) is the after-state of the rectangle at
        ``(top, left)``; ``changed`` (``(h, w) bool``), if given, limits it to the pixels the stroke changed."""
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
        self._append(_frame(header, zlib.compress(data, 1)))

    def append_snapshot(self, mask: np.ndarray) -> None:
        """Record the whole current mask; replay starts from the newest snapshot."""
        mask = np.ascontiguousarray(mask, dtype=self.dtype)
        if mask.shape != self.shape:
            raise ValueError(f"snapshot shape {mask.shape} differs from the journal's {self.shape}")
        self._append(_frame({"type": "snapshot", "time": time.time()}, zlib.compress(mask.tobytes(), 1)))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """The work was saved (or thrown away on purpose): delete the journal."""
        self.close()
        _unlink(self.path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
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

    def __init__(self, folder: Path, *, fsync: bool = True) -> None:
        self.folder = folder
        self._fsync = fsync

    def path_for(self, sample_id: str) -> Path:
        return self.folder / f"{slug(sample_id)}.journal"

    def open(
        self, sample_id: str, *, base_version: int, shape: tuple[int, ...], dtype: np.dtype | type, resume: bool = False
    ) -> JournalWriter:
        """Start journaling edits of ``sample_id``. ``resume=True`` appends to a journal just restored from;
        otherwise an old journal of the sample is replaced (its work was declined or saved)."""
        if not resume:
            _unlink(self.path_for(sample_id))
        return JournalWriter(
            self.path_for(sample_id), sample_id=sample_id, base_version=base_version, shape=shape, dtype=np.dtype(dtype), fsync=self._fsync
        )

    def pending(self) -> list[PendingRecovery]:
        """Unsaved work left by a previous session, oldest first (empty journals are cleaned up)."""
        out: list[PendingRecovery] = []
        if not self.folder.is_dir():
            return out
        for p in sorted(self.folder.glob("*.journal")):
            try:
                frames = _read_frames(p)
            except OSError as e:
                log.warning("cannot read journal %s: %s", p, e)
                continue
            if not frames or frames[0][0].get("type") != "open":
                log.warning("journal %s has no header; removing it", p)
                _unlink(p)
                continue
            head = frames[0][0]
            kinds = [f[0]["type"] for f in frames[1:]]
            last_snap = max((i for i, k in enumerate(kinds) if k == "snapshot"), default=-1)
            patches = sum(1 for k in kinds[last_snap + 1 :] if k == "patch")
            if patches == 0 and last_snap < 0:
                _unlink(p)  # opened but never edited: nothing to offer
                continue
            out.append(
                PendingRecovery(
                    sample_id=head["sample_id"], base_version=int(head["base_version"]), shape=tuple(head["shape"]),
                    dtype=np.dtype(head["dtype"]).name, patches=patches, has_snapshot=last_snap >= 0,
                    modified=p.stat().st_mtime, path=p,
                )
            )  # fmt: skip
        out.sort(key=lambda r: r.modified)
        return out

    def restore(self, sample_id: str, *, base: np.ndarray | None) -> np.ndarray:
        """The unsaved mask of ``sample_id`` (``base``: the mask of the journal's ``base_version``)."""
        p = self.path_for(sample_id)
        if not p.exists():
            raise SegstudioError(f"No unsaved work recorded for {sample_id!r}.", path=p)
        return replay(p, base=base)

    def discard(self, sample_id: str) -> None:
        _unlink(self.path_for(sample_id))
