"""Issue 13, case 2: a lost, empty or damaged workspace.sqlite is rebuilt from the version files (or refused with
the fix), never treated as a new workspace; versions are create-only; corrupt pages and non-UTF-8 ids give our
errors."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegstudioError, WorkspaceError
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.db import SUSPECT_MARK, WorkspaceDamagedError
from segstudio.workspace.locate import slug
from segstudio.workspace.versions import SAMPLE_FILE


def _mask(v: int) -> np.ndarray:
    m = np.zeros((16, 20), np.uint8)
    m[2 : 2 + v, 3:9] = v
    return m


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _populated(folder: Path) -> dict[Path, str]:
    """A workspace with two versions of a.png, one of b.png and a review; returns every version's checksum."""
    with Workspace(folder) as ws:
        ws.save_mask("a.png", _mask(1))
        ws.save_mask("a.png", _mask(2))
        ws.save_mask("dir/b.png", _mask(3))
        ws.reviews.set("a.png", ReviewStatus.CORRECTED, comment="fixed")
    return {p: _sha(p) for p in (folder / "masks").rglob("v*.*")}


def _drop_side_files(folder: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (folder / f"workspace.sqlite{suffix}").unlink(missing_ok=True)


def test_zero_byte_database_is_rebuilt_and_the_next_save_does_not_overwrite_v0001(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    before = _populated(folder)
    (folder / "workspace.sqlite").write_bytes(b"")  # a crash during a copy, a sync tool
    _drop_side_files(folder)
    with Workspace(folder) as ws:
        report = ws.rebuild_report
        assert report is not None and "empty (0 bytes)" in report.message()
        assert report.damaged is not None and report.damaged.name.startswith("workspace.sqlite.damaged-")
        assert report.damaged.exists() and report.damaged.stat().st_size == 0  # kept, never deleted
        assert [v.version for v in ws.versions.versions("a.png")] == [1, 2]
        assert [v.version for v in ws.versions.versions("dir/b.png")] == [1]
        assert np.array_equal(ws.versions.load_latest("a.png"), _mask(2))
        v3 = ws.save_mask("a.png", _mask(4))
        assert v3.version == 3
    assert {p: _sha(p) for p in before} == before  # v0001 and v0002 byte-identical


def test_missing_or_foreign_database_is_rebuilt_with_reviews_salvaged(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    _populated(folder)
    (folder / "workspace.sqlite").unlink()
    with Workspace(folder) as ws:
        assert ws.rebuild_report is not None and "missing" in ws.rebuild_report.reason
        assert ws.rebuild_report.damaged is None
        assert sorted(ws.versions.corrected_ids()) == ["a.png", "dir/b.png"]
        ws.reviews.set("dir/b.png", "flagged")
    (folder / "workspace.sqlite").write_bytes(b"this is not a database" * 100)
    _drop_side_files(folder)
    with Workspace(folder) as ws:
        assert ws.rebuild_report is not None and "not an SQLite database" in ws.rebuild_report.reason
        assert ws.versions.latest("a.png") is not None
    assert len(list(folder.glob("workspace.sqlite.damaged-*"))) == 1


def test_damaged_page_reviews_are_salvaged(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    _populated(folder)
    with Workspace(folder) as ws:
        root = ws.db.query("SELECT rootpage FROM sqlite_master WHERE name='mask_versions'")[0][0]
    db = folder / "workspace.sqlite"
    _drop_side_files(folder)
    with db.open("r+b") as f:  # garble the version table's root page: a disk error, a bad copy
        f.seek((root - 1) * 4096)
        f.write(b"\xa5" * 4096)
    with Workspace(folder) as ws:
        report = ws.rebuild_report
        assert report is not None and "damaged" in report.reason, report
        assert report.reviews == 1
        assert ws.reviews.get("a.png").comment == "fixed"
        assert [v.version for v in ws.versions.versions("a.png")] == [1, 2]


def test_a_corrupt_page_met_by_a_query_is_our_error_and_the_next_open_rebuilds(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    _populated(folder)
    with Workspace(folder) as ws:
        ws.metrics.put_many([])
        for i in range(300):
            ws.metrics.put(f"s{i}.png", key="k", data={"pad": "x" * 200}, mean_dice=0.5)
        root = ws.db.query("SELECT rootpage FROM sqlite_master WHERE name='metrics'")[0][0]
    _drop_side_files(folder)
    with (folder / "workspace.sqlite").open("r+b") as f:
        f.seek((root - 1) * 4096)
        f.write(b"\x5a" * 4096)
    with Workspace(folder) as ws:
        assert ws.rebuild_report is None  # a damaged cache page is not found by the cheap check at open
        with pytest.raises(WorkspaceError) as info:
            ws.metrics.column(key="k")  # what showing an image does
        err = info.value
        assert isinstance(err, WorkspaceDamagedError)
        assert err.path == folder / "workspace.sqlite" and "rebuild" in str(err.fix)
        assert (folder / SUSPECT_MARK).exists()
    with Workspace(folder) as ws:  # marked: the whole file is checked, found damaged, rebuilt
        assert ws.rebuild_report is not None
        assert ws.reviews.get("a.png").status is ReviewStatus.CORRECTED
        assert ws.metrics.column(key="k") is not None
    assert not (folder / SUSPECT_MARK).exists()


def test_old_version_folders_need_the_dataset_ids_and_are_refused_without_them(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    before = _populated(folder)
    for p in (folder / "masks").rglob(SAMPLE_FILE):  # a workspace from before self-describing versions
        p.unlink()
    (folder / "workspace.sqlite").write_bytes(b"")
    _drop_side_files(folder)
    with pytest.raises(WorkspaceDamagedError) as info:
        Workspace(folder)
    assert info.value.path == folder / "workspace.sqlite" and "dataset" in str(info.value.fix)
    assert (folder / "workspace.sqlite").stat().st_size == 0 and not list(folder.glob("*.damaged-*"))  # untouched
    with Workspace(folder, sample_ids=["a.png", "dir/b.png", "c.png"]) as ws:
        assert sorted(ws.versions.corrected_ids()) == ["a.png", "dir/b.png"]
    assert {p: _sha(p) for p in before} == before


def test_the_journal_names_its_sample_for_a_rebuild(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        v = ws.save_mask("j.png", _mask(1))
        w = ws.journal.open("j.png", base_version=v.version, shape=(16, 20), dtype=np.uint8)
        w.append_patch(top=0, left=0, values=np.full((2, 2), 7, np.uint8))
        w.close()
    (folder / "masks" / slug("j.png") / SAMPLE_FILE).unlink()
    (folder / "workspace.sqlite").unlink()
    _drop_side_files(folder)
    with Workspace(folder) as ws:
        assert ws.versions.corrected_ids() == {"j.png"}
        [pending] = ws.pending_recoveries()
        restored = ws.recover("j.png")
        assert pending.sample_id == "j.png" and restored[0, 0] == 7 and restored[2, 3] == 1


def test_versions_are_create_only_and_skip_files_already_on_disk(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        folder = ws.versions.storage_path("a.png")
        folder.mkdir(parents=True)
        orphan = folder / "v0001.png"
        orphan.write_bytes(b"an orphan a crash left, or a version a lost database knew")
        stray = folder / "v0003.npz"
        stray.write_bytes(b"another")
        rec = ws.save_mask("a.png", _mask(1))
        assert rec.version == 4 and rec.path.name == "v0004.png"
        assert orphan.read_bytes().startswith(b"an orphan") and stray.read_bytes() == b"another"
        assert (folder / SAMPLE_FILE).exists()


def test_a_version_file_appearing_during_the_save_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.workspace import versions

    with Workspace(tmp_path / "ws") as ws:
        folder = ws.versions.storage_path("a.png")
        real = versions.atomic_create_bytes
        planted: list[Path] = []

        def racing_create(path: Path, data: bytes) -> Path:
            if path.name == "v0001.png" and not planted:  # another writer wins the race for this number
                path.write_bytes(b"theirs")
                planted.append(path)
            return real(path, data)

        monkeypatch.setattr(versions, "atomic_create_bytes", racing_create)
        rec = ws.save_mask("a.png", _mask(1))
        assert rec.version == 2 and (folder / "v0001.png").read_bytes() == b"theirs"
        assert np.array_equal(ws.versions.load(rec), _mask(1))


def test_non_utf8_sample_ids_are_stored_and_given_back(tmp_path: Path) -> None:
    bad = os.fsdecode(b"scan\xff\xfe.png")  # a file name that is not UTF-8, as os.listdir gives it
    look_alike = "scan\u00ff\u00fe.png"  # valid text that must stay a different sample
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        v = ws.save_mask(bad, _mask(1))
        ws.save_mask(look_alike, _mask(2))
        ws.reviews.set(bad, "accepted", comment="ok")
        ws.metrics.put(bad, key="k", data={"x": 1}, mean_dice=0.9)
        assert ws.versions.latest(bad) == v and v.sample_id == bad
        assert ws.reviews.get(bad).status is ReviewStatus.ACCEPTED
        assert set(ws.reviews.all()) == {bad}
        assert ws.versions.corrected_ids() == {bad, look_alike}
        assert np.array_equal(ws.versions.load_latest(bad), _mask(1))
        assert ws.metrics.column(key="k") == {bad: 0.9}
        w = ws.journal.open(bad, base_version=1, shape=(16, 20), dtype=np.uint8)
        w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
        w.close()
        assert [p.sample_id for p in ws.pending_recoveries()] == [bad]
    (folder / "workspace.sqlite").unlink()
    _drop_side_files(folder)
    with Workspace(folder) as ws:  # and the rebuild reads it back from the version folder
        assert ws.versions.corrected_ids() == {bad, look_alike}


def test_a_name_that_is_no_file_system_name_is_our_error(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws, pytest.raises(SegstudioError, match="UTF-8"):
        ws.reviews.set("x\ud800y", "accepted")  # a lone high surrogate: no file system decodes to it


def test_schema_is_created_inside_the_write_transaction(tmp_path: Path) -> None:
    """Two connections that both saw an empty database must not both create the tables."""
    from segstudio.workspace.db import SCHEMA_VERSION, migrate

    folder = tmp_path / "ws"
    folder.mkdir()
    a = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    b = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    assert a.execute("PRAGMA user_version").fetchone()[0] == b.execute("PRAGMA user_version").fetchone()[0] == 0
    assert migrate(a, folder) == 0
    assert migrate(b, folder) == SCHEMA_VERSION  # read again under the lock: nothing left to do
    a.close()
    b.close()
