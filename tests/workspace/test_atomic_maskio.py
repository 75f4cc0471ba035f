"""Atomic writes and lossless mask files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from segstudio.core import atomic
from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import DiskFullError, SegstudioError
from segstudio.workspace.maskio import read_mask, write_mask


def test_write_replaces_content(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new content")
    assert p.read_bytes() == b"new content"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.bin"]


def test_failure_mid_write_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "mask.png"
    atomic_write_bytes(p, b"A" * 100)
    real_write = os.write
    calls = {"n": 0}

    def disk_full_after_first_chunk(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(atomic, "_CHUNK", 16)
    monkeypatch.setattr(atomic.os, "write", disk_full_after_first_chunk)
    with pytest.raises(DiskFullError, match="disk is full") as info:
        atomic_write_bytes(p, b"B" * 100)
    assert info.value.path == p and "free" in str(info.value)
    assert calls["n"] == 2  # it really failed part-way, after writing a chunk
    monkeypatch.undo()
    assert p.read_bytes() == b"A" * 100
    assert [x.name for x in tmp_path.iterdir()] == ["mask.png"]  # no temp file left behind


def test_failure_at_rename_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f"
    atomic_write_bytes(p, b"old")

    def boom(a: object, b: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize(
    ("dtype", "suffix", "top"),
    [(np.uint8, ".png", 255), (np.uint16, ".png", 65535), (np.uint64, ".npz", 2**64 - 1), (np.uint32, ".npz", 2**32 - 1)],
)
def test_masks_round_trip_losslessly(tmp_path: Path, dtype: type, suffix: str, top: int) -> None:
    rng = np.random.default_rng(1)
    m = rng.integers(0, 4, (33, 47)).astype(dtype)
    m[0, 0] = top
    path, digest = write_mask(tmp_path / "v0001", m)
    assert path.suffix == suffix
    back = read_mask(path, sha256=digest)
    assert back.dtype == m.dtype and np.array_equal(back, m)


def test_damaged_mask_file_is_named(tmp_path: Path) -> None:
    path, digest = write_mask(tmp_path / "v1", np.ones((8, 8), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(SegstudioError, match="damaged") as ei:
        read_mask(path, sha256=digest)
    assert ei.value.path == path


def test_non_mask_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2-D unsigned"):
        write_mask(tmp_path / "x", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D unsigned"):
        write_mask(tmp_path / "x", np.zeros((4, 4), np.float32))
