"""Issue 13, case 7: a full disk. Saving a mask, a review, a journal append or the settings gives a DiskFullError
naming the folder and the space; the previous version and the journal stay intact; a workspace opens read-only
when nothing can be written; stale temp files are swept when it opens writable."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from segstudio.core import atomic
from segstudio.core.errors import DiskFullError, ReadOnlyError
from segstudio.workspace import ReviewStatus, Workspace, replay
from segstudio.workspace import journal as journal_mod


def _enospc(*_: object, **__: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def _mask(v: int) -> np.ndarray:
    m = np.zeros((32, 32), np.uint8)
    m[: v + 1, :] = v
    return m


def test_full_disk_on_save_keeps_the_previous_version_and_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(tmp_path / "ws") as ws:
        v1 = ws.save_mask("a.png", _mask(1))
        digest = hashlib.sha256(v1.path.read_bytes()).hexdigest()
        w = ws.journal.open("a.png", base_version=1, shape=(32, 32), dtype=np.uint8)
        w.append_patch(top=0, left=0, values=np.full((3, 3), 9, np.uint8))
        journal_bytes = w.path.read_bytes()
        monkeypatch.setattr(atomic.os, "write", _enospc)
        with pytest.raises(DiskFullError) as info:
            ws.save_mask("a.png", _mask(2))
        msg = str(info.value)
        assert "disk is full" in msg and str(ws.versions.storage_path("a.png")) in msg and "free" in msg
        monkeypatch.undo()
        assert [v.version for v in ws.versions.versions("a.png")] == [1]
        assert hashlib.sha256(v1.path.read_bytes()).hexdigest() == digest
        assert w.path.read_bytes() == journal_bytes  # the unsaved stroke is still there to recover
        assert sorted(p.name for p in ws.versions.storage_path("a.png").iterdir()) == ["sample.json", "v0001.png"]
        assert ws.save_mask("a.png", _mask(2)).version == 2  # room again: the next save works


def test_full_disk_on_a_journal_append_is_reported_and_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(tmp_path / "ws") as ws:
        w = ws.journal.open("a.png", base_version=0, shape=(8, 8), dtype=np.uint8)
        w.append_patch(top=0, left=0, values=np.full((2, 2), 1, np.uint8))
        size = w.path.stat().st_size
        real_write = os.write

        def half_then_full(fd: int, data: bytes) -> int:  # part of the frame lands, then the disk is full
            if len(data) > 8:
                real_write(fd, bytes(data[:8]))
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(journal_mod.os, "write", half_then_full)
        with pytest.raises(DiskFullError, match="journal") as info:
            w.append_patch(top=2, left=2, values=np.full((2, 2), 2, np.uint8))
        assert info.value.path == w.path
        monkeypatch.undo()
        assert w.path.stat().st_size == size  # the torn frame was cut off
        w.append_patch(top=4, left=4, values=np.full((2, 2), 3, np.uint8))  # reachable after the failure
        out = replay(w.path, base=np.zeros((8, 8), np.uint8))
        assert out[0, 0] == 1 and out[2, 2] == 0 and out[4, 4] == 3


def test_full_disk_on_a_review_and_on_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(tmp_path / "ws") as ws:
        ws.reviews.set("a.png", "accepted")
        conn = ws.db.connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        with pytest.raises(DiskFullError) as info:
            for i in range(2000):
                ws.reviews.set(f"s{i}.png", "flagged", comment="x" * 500)
        assert info.value.path == ws.db.path and "free" in str(info.value)
        conn.execute("PRAGMA max_page_count = 1073741823")
        assert ws.reviews.get("a.png").status is ReviewStatus.ACCEPTED
        monkeypatch.setattr(atomic.os, "write", _enospc)
        with pytest.raises(DiskFullError, match="workspace.json"):
            ws.save_settings(ws.settings.replace(gate_class_margin=0.05))


def test_opening_when_nothing_can_be_written_is_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.workspace import workspace as ws_mod
    from segstudio.workspace.db import Database

    folder = tmp_path / "ws"
    with Workspace(folder, dataset_root=tmp_path / "data") as ws:
        ws.save_mask("a.png", _mask(1))

    class FullDiskDatabase(Database):
        def __init__(self, folder: Path, **kw: object) -> None:
            if not kw.get("read_only") and not kw.get("memory"):
                raise DiskFullError("Cannot open the workspace database: the disk is full.", path=folder)
            super().__init__(folder, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ws_mod, "Database", FullDiskDatabase)
    with Workspace(folder, dataset_root=tmp_path / "other-data") as ws:  # a new dataset root: would be written
        assert ws.read_only and "disk is full" in (ws.read_only_reason or "")
        assert np.array_equal(ws.versions.load_latest("a.png"), _mask(1))
        with pytest.raises(ReadOnlyError):
            ws.reviews.set("a.png", "accepted")
        assert ws.lock is None  # a read-only view does not keep others out


def test_a_read_only_folder_opens_read_only_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ws.save_mask("a.png", _mask(1))
        ws.reviews.set("a.png", "corrected")
    listing = sorted(p.name for p in folder.iterdir())
    for p in [folder, *folder.rglob("*")]:
        if p.is_dir():
            p.chmod(0o555)
    try:
        with Workspace(folder, dataset_root=tmp_path / "data") as ws:
            assert ws.read_only and "not writable" in (ws.read_only_reason or "")
            assert ws.reviews.get("a.png").status is ReviewStatus.CORRECTED
            with pytest.raises(ReadOnlyError):
                ws.save_mask("a.png", _mask(2))
        assert sorted(p.name for p in folder.iterdir()) == listing
    finally:
        for p in [folder, *folder.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)


def test_stale_temp_files_are_swept_when_a_workspace_opens(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ws.save_mask("a.png", _mask(1))
        d = ws.versions.storage_path("a.png")
    dead = subprocess.run(["true"], check=True)
    assert dead.returncode == 0
    gone_pid = 2**22 - 7  # above the default pid_max: no live process has it
    stale = d / f".v0002.png.{gone_pid}.0123abcd.tmp"
    stale.write_bytes(b"half a file")
    live = d / f".v0002.png.{os.getpid()}.0123abcd.tmp"
    live.write_bytes(b"being written")
    with Workspace(folder):
        assert not stale.exists() and live.exists()


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0  # fmt: skip


def test_a_real_full_file_system(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "3m"):
        pytest.skip("needs root and permission to mount a tmpfs (a container without CAP_SYS_ADMIN cannot)")
    try:
        folder = mnt / "ws"
        with Workspace(folder) as ws:
            v1 = ws.save_mask("a.png", _mask(1))
            ws.reviews.set("a.png", "accepted")
            filler = mnt / "filler"
            with filler.open("wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            noise = np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)  # incompressible
            with pytest.raises(DiskFullError) as info:
                ws.save_mask("a.png", noise)
            assert str(folder) in str(info.value)
            assert [v.version for v in ws.versions.versions("a.png")] == [1]
            assert np.array_equal(ws.versions.load(v1), _mask(1))
        with Workspace(folder) as again:  # opens (writable or, if even that fails, read-only) with the work
            assert again.reviews.get("a.png").status is ReviewStatus.ACCEPTED
            assert np.array_equal(again.versions.load_latest("a.png"), _mask(1))
        filler.unlink()
        with Workspace(folder) as ws:
            assert not ws.read_only and ws.save_mask("a.png", noise).version == 2
        assert not [p for p in folder.rglob("*.tmp")]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
