"""The SQLite store: WAL, migrations, threads, reviews, versions, caches, runs, state."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.workspace import (
    SCHEMA_VERSION,
    MaskSource,
    ReviewStatus,
    RunStatus,
    Workspace,
)
from segstudio.workspace.db import MIGRATIONS
from segstudio.workspace.maskio import write_mask


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    yield w  # type: ignore[misc]
    w.close()


def test_database_is_wal_and_current_schema(ws: Workspace) -> None:
    assert ws.db.journal_mode() == "wal"
    assert ws.db.schema_version() == SCHEMA_VERSION >= 2
    assert (ws.folder / "workspace.sqlite").is_file()


def test_migration_from_version_1_keeps_data_and_backfills(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    mask = np.zeros((20, 30), np.uint16)
    mask[3:9, 4:12] = 700
    path, _ = write_mask(folder / "masks" / "a" / "v0001", mask)
    conn = sqlite3.connect(folder / "workspace.sqlite", isolation_level=None)
    MIGRATIONS[0](conn, folder)  # the version-1 schema, as an old segstudio wrote it
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO reviews VALUES ('a.png', 'flagged', 'look', 'ann', 5.0)")
    conn.execute("INSERT INTO review_history(sample_id, status, comment, reviewer, time) VALUES ('a.png','flagged','look','ann',5.0)")
    conn.execute("INSERT INTO mask_versions VALUES ('a.png', 1, ?, 6.0, 'ann', 'fix')", (path.relative_to(folder).as_posix(),))
    conn.close()

    with Workspace(folder) as w:
        assert w.db.schema_version() == SCHEMA_VERSION
        assert w.reviews.get("a.png").status is ReviewStatus.FLAGGED
        assert len(w.reviews.history("a.png")) == 1
        v = w.versions.latest("a.png")
        assert v is not None and v.source is MaskSource.CORRECTION and v.author == "ann"
        assert (v.dtype, v.shape) == ("uint16", (20, 30))
        assert v.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert np.array_equal(w.versions.load(v), mask)
        w.metrics.put("a.png", key="k", data={}, mean_dice=0.5)  # tables added by the migration exist


def test_workspace_from_a_newer_segstudio_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    Workspace(folder).close()
    conn = sqlite3.connect(folder / "workspace.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SegstudioError, match="newer segstudio"):
        Workspace(folder)


def test_reviews_history_summary_and_events(ws: Workspace) -> None:
    seen = []
    ws.events.review_changed.connect(seen.append)
    assert ws.reviews.get("x").status is ReviewStatus.UNREVIEWED and ws.reviews.get("x").time is None
    ws.reviews.set("x", ReviewStatus.FLAGGED, comment="edge?", reviewer="ann", when=1.0)
    ws.reviews.set("x", "accepted", reviewer="bob", when=2.0)  # no comment given: the note stays
    ws.reviews.set("y", "rejected", when=3.0)
    st = ws.reviews.get("x")
    assert (st.status, st.comment, st.reviewer, st.time) == (ReviewStatus.ACCEPTED, "edge?", "bob", 2.0)
    assert ws.reviews.set("y", "rejected", comment="").comment == ""
    assert [(h.status, h.reviewer) for h in ws.reviews.history("x")] == [(ReviewStatus.FLAGGED, "ann"), (ReviewStatus.ACCEPTED, "bob")]
    assert [s.sample_id for s in seen] == ["x", "x", "y", "y"]
    assert ws.reviews.set("x", "accepted", comment="").comment == ""
    summary = ws.reviews.summary(["x", "y", "z", "w"])
    assert summary[ReviewStatus.ACCEPTED] == 1 and summary[ReviewStatus.REJECTED] == 1 and summary[ReviewStatus.UNREVIEWED] == 2
    with pytest.raises(ValueError):
        ws.reviews.set("x", "maybe")


def test_versions_round_trip_revert_and_history(ws: Workspace) -> None:
    saved = []
    ws.events.version_saved.connect(saved.append)
    a = np.zeros((16, 16), np.uint8)
    a[2:5, 2:5] = 1
    b = a.copy()
    b[8:12, 8:12] = 2
    v1 = ws.save_mask("dir/s 1.png", a, author="ann", parent=0)
    v2 = ws.save_mask("dir/s 1.png", b, author="ann", parent=1)
    assert (v1.version, v2.version) == (1, 2)
    assert np.array_equal(ws.versions.load_latest("dir/s 1.png"), b)  # type: ignore[arg-type]
    v3 = ws.versions.revert("dir/s 1.png", 1, author="bob")
    assert (v3.version, v3.source, v3.parent) == (3, MaskSource.REVERT, 1)
    assert np.array_equal(ws.versions.load(v3), a)
    assert [v.version for v in ws.versions.versions("dir/s 1.png")] == [1, 2, 3]
    assert np.array_equal(ws.versions.load(ws.versions.get("dir/s 1.png", 2)), b)  # history kept
    assert [v.version for v in saved] == [1, 2, 3]
    with pytest.raises(SegstudioError, match="versions: \\[1, 2, 3\\]"):
        ws.versions.get("dir/s 1.png", 9)
    assert ws.versions.load_latest("never") is None


def test_multilabel_versions_and_latest_all(ws: Workspace) -> None:
    m = np.zeros((10, 12), np.uint64)
    m[1, 1] = np.uint64((1 << 63) | 5)
    v = ws.save_mask("hand.png", m, source=MaskSource.ACCEPTED_PREDICTION)
    assert v.path.suffix == ".npz" and v.source is MaskSource.ACCEPTED_PREDICTION
    ws.save_mask("other.png", np.ones((3, 3), np.uint8))
    ws.save_mask("other.png", np.full((3, 3), 2, np.uint8))
    latest = ws.versions.latest_all()
    assert {k: x.version for k, x in latest.items()} == {"hand.png": 1, "other.png": 2}
    assert np.array_equal(ws.versions.load(latest["hand.png"]), m)
    assert ws.versions.corrected_ids() == {"hand.png", "other.png"}


def test_gt_files_are_never_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME", raising=False)  # the sibling workspace is what is tested here
    data = tmp_path / "ds"
    (data / "masks").mkdir(parents=True)
    gt_path = data / "masks" / "a.png"
    write_mask(data / "masks" / "a", np.eye(8, dtype=np.uint8))
    before = gt_path.read_bytes()
    with Workspace.for_dataset(data) as w:
        assert w.folder == (tmp_path / "ds.segstudio").resolve()
        w.save_mask("a.png", np.zeros((8, 8), np.uint8))
        w.versions.revert("a.png", 1)
        w.reviews.set("a.png", "corrected")
    assert gt_path.read_bytes() == before
    assert sorted(p.name for p in data.rglob("*")) == ["a.png", "masks"]


def test_concurrent_writers_from_threads(ws: Workspace) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(15):
                ws.reviews.set(f"s{t}-{i}", "accepted", reviewer=f"t{t}")
                ws.save_mask(f"s{t}", np.full((4, 4), i, np.uint8))
                ws.metrics.put(f"s{t}-{i}", key="k", data={"i": i}, mean_dice=i / 15)
        except BaseException as e:  # collected, re-raised below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(ws.reviews.all()) == 60
    for t in range(4):
        assert [v.version for v in ws.versions.versions(f"s{t}")] == list(range(1, 16))
        assert np.array_equal(ws.versions.load_latest(f"s{t}"), np.full((4, 4), 14, np.uint8))  # type: ignore[arg-type]
    assert len(ws.metrics.column(key="k")) == 60


def test_metrics_cache(ws: Workspace) -> None:
    changed = []
    ws.events.metrics_changed.connect(lambda ids, k: changed.append((ids, k)))
    ws.metrics.put("a", key="pred:m1", data={"per_class": [1, 2]}, mean_dice=0.8, mean_iou=0.7, stamp="w1")
    ws.metrics.put("b", key="pred:m1", data={}, mean_dice=math.nan)
    ws.metrics.put("a", key="quality", data={"flags": []}, suspicion=0.25)
    e = ws.metrics.get("a", key="pred:m1")
    assert e is not None and e.data == {"per_class": [1, 2]} and (e.mean_dice, e.mean_iou, e.stamp) == (0.8, 0.7, "w1")
    assert ws.metrics.column(key="pred:m1") == {"a": 0.8, "b": None}
    assert ws.metrics.column(key="quality", figure="suspicion") == {"a": 0.25}
    with pytest.raises(UnknownKeyError, match="mean_iou"):
        ws.metrics.column(key="quality", figure="nope")
    assert ws.metrics.keys() == ["pred:m1", "quality"]
    assert ws.metrics.invalidate(key="pred:m1") == 2
    assert ws.metrics.get("a", key="pred:m1") is None and ws.metrics.get("a", key="quality") is not None
    assert changed[:3] == [(("a",), "pred:m1"), (("b",), "pred:m1"), (("a",), "quality")]
    assert changed[-1] == ((), "pred:m1")
    from segstudio.workspace import MetricsEntry

    ws.metrics.put_many([MetricsEntry(sample_id=f"s{i}", key="bulk", data={}) for i in range(50)])
    assert changed[-1] == (tuple(f"s{i}" for i in range(50)), "bulk")  # one event for the batch


def test_prediction_cache(ws: Workspace) -> None:
    p = np.zeros((6, 6), np.uint8)
    p[1:3, 1:3] = 1
    e = ws.predictions.save("a.png", p, checkpoint_id="run1/best", model_stamp="sha-1")
    ws.predictions.save("b.png", p, checkpoint_id="run1/best", model_stamp="sha-1")
    assert e.path.is_file() and e.path.is_relative_to(ws.folder)
    got = ws.predictions.get("a.png", checkpoint_id="run1/best")
    assert got is not None and np.array_equal(ws.predictions.load(got), p)
    ws.predictions.save("a.png", p * 2, checkpoint_id="run1/best", model_stamp="sha-2")
    assert ws.predictions.stale(checkpoint_id="run1/best", model_stamp="sha-2") == ["b.png"]
    assert len(ws.predictions.entries(checkpoint_id="run1/best")) == 2
    outside = ws.folder.parent / "ext.png"
    write_mask(ws.folder.parent / "ext", p)
    reg = ws.predictions.register("c.png", checkpoint_id="other", model_stamp="x", path=outside)
    assert reg.path == outside.resolve()
    assert ws.predictions.remove(checkpoint_id="run1/best") == 2
    assert not e.path.exists() and outside.exists()  # files outside the workspace are not ours to delete
    assert ws.predictions.get("a.png", checkpoint_id="run1/best") is None


def test_runs(ws: Workspace) -> None:
    r = ws.runs.create({"arch": "unet", "epochs": 3}, name="first")
    assert r.status is RunStatus.CREATED and (r.folder / "config.json").is_file()
    r = ws.runs.update(r.id, status="running")
    assert r.started is not None and r.finished is None
    r = ws.runs.update(r.id, best_metric=0.91, best_metric_name="dice")
    r = ws.runs.update(r.id, status=RunStatus.FINISHED, message="done")
    assert r.finished is not None and r.duration_s is not None and r.duration_s >= 0
    assert (r.best_metric, r.best_metric_name, r.config["arch"]) == (0.91, "dice", "unet")
    r2 = ws.runs.create({"arch": "fpn"}, run_id="second")
    assert [x.id for x in ws.runs.all()][0] == r2.id
    with pytest.raises(SegstudioError, match="No run"):
        ws.runs.get("nope")
    with pytest.raises(SegstudioError, match="plain folder name"):
        ws.runs.create({}, run_id="../escape")
    assert not (ws.folder / "escape").exists()


def test_state_store_round_trip(ws: Workspace) -> None:
    ws.state.set("last_sample", "a/b.png")
    ws.state.set("sort", {"column": "mean_dice", "ascending": True})
    assert ws.state.get("sort") == {"column": "mean_dice", "ascending": True}
    assert ws.state.get("missing", 3) == 3
    ws.state.delete("last_sample")
    assert ws.state.all() == {"sort": {"column": "mean_dice", "ascending": True}}
    with pytest.raises(TypeError):
        ws.state.set("bad", object())


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    with Workspace(folder) as w:
        w.reviews.set("a", "accepted")
        w.save_mask("a", np.ones((2, 2), np.uint8))
    with Workspace(folder) as w:
        assert w.reviews.get("a").status is ReviewStatus.ACCEPTED
        assert np.array_equal(w.versions.load_latest("a"), np.ones((2, 2), np.uint8))  # type: ignore[arg-type]


def test_closed_workspace_says_so(tmp_path: Path) -> None:
    w = Workspace(tmp_path / "w")
    w.close()
    with pytest.raises(SegstudioError, match="closed"):
        w.reviews.get("a")


def test_connections_of_finished_threads_are_closed(ws: Workspace) -> None:
    for i in range(20):
        t = threading.Thread(target=lambda i=i: ws.reviews.set(f"t{i}", "accepted"))
        t.start()
        t.join()
    # each thread's first query closes the connections of threads that ended: the main thread's plus the last
    assert ws.db.open_connections() <= 2
    assert len(ws.reviews.all()) == 20
