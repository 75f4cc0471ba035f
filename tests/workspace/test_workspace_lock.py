"""Issue 13, case 6: one writer per workspace; a second instance is told who holds it and may open read-only;
a killed holder's lock is taken over; eight processes creating one workspace at once all end cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.atomic import host_name
from segstudio.core.errors import ReadOnlyError
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.lock import LOCK_NAME, LockHolder, WorkspaceLockedError, process_start_ticks

REPO = Path(__file__).resolve().parents[2]

_HOLDER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from segstudio.workspace import Workspace
    ws = Workspace(sys.argv[1])
    ws.save_mask("a.png", np.ones((4, 4), np.uint8))
    ws.reviews.set("a.png", "accepted")
    print("READY", flush=True)
    sys.stdin.readline()
    ws.close()
    """
)


def _start_holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_second_opener_is_told_who_holds_it_and_may_open_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    proc = _start_holder(folder)
    try:
        with pytest.raises(WorkspaceLockedError) as info:
            Workspace(folder)
        holder = info.value.holder
        assert holder is not None and holder.pid == proc.pid and holder.host == host_name()
        assert f"process {proc.pid}" in str(info.value) and "read-only" in str(info.value.fix)
        # the holder's journal files, db and versions: a read-only instance changes none of them
        before = {k: v for k, v in _listing(folder).items() if not k.startswith("workspace.sqlite-")}
        with Workspace(folder, read_only=True, dataset_root=tmp_path / "data") as ro:
            assert ro.read_only and ro.holder() is not None and ro.holder().pid == proc.pid  # type: ignore[union-attr]
            assert ro.reviews.get("a.png").status is ReviewStatus.ACCEPTED
            assert np.array_equal(ro.versions.load_latest("a.png"), np.ones((4, 4), np.uint8))
            for write in (
                lambda: ro.save_mask("a.png", np.zeros((4, 4), np.uint8)),
                lambda: ro.reviews.set("a.png", "rejected"),
                lambda: ro.state.set("k", 1),
                lambda: ro.save_settings(ro.settings),
                lambda: ro.journal.open("a.png", base_version=1, shape=(4, 4), dtype=np.uint8),
                lambda: ro.journal.discard("a.png"),
                lambda: ro.runs.create({"x": 1}),
                lambda: ro.predictions.save("a.png", np.zeros((4, 4), np.uint8), checkpoint_id="c", model_stamp="s"),
            ):
                with pytest.raises(ReadOnlyError, match="read-only"):
                    write()
        after = {k: v for k, v in _listing(folder).items() if not k.startswith("workspace.sqlite-")}
        assert after == before
    finally:
        proc.communicate("\n", timeout=30)
    with Workspace(folder) as ws:  # released on a clean exit
        assert ws.took_over is None and not ws.read_only


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    proc = _start_holder(folder)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with Workspace(folder) as ws:
        assert not ws.read_only
        assert ws.took_over is not None and ws.took_over.pid == proc.pid
        assert ws.versions.latest("a.png") is not None


def test_stale_records_without_a_flock_are_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    me = LockHolder.me()
    record = {**me.__dict__, "pid": dead_pid}
    (folder / LOCK_NAME).write_text(json.dumps(record))
    with Workspace(folder) as ws:
        assert ws.took_over is not None and ws.took_over.pid == dead_pid
    # a reused pid: alive, but started at another time than the record says
    assert LockHolder(pid=os.getppid(), host=host_name(), start_ticks=(process_start_ticks(os.getppid()) or 0) + 1,
                      user="", started=0.0, version="").is_stale()  # fmt: skip
    assert not LockHolder(pid=os.getpid(), host=host_name(), start_ticks=process_start_ticks(os.getpid()), user="",
                          started=0.0, version="").is_stale()  # fmt: skip
    assert not LockHolder(pid=dead_pid, host="elsewhere", start_ticks=None, user="", started=0.0, version="").is_stale()


def test_one_process_may_open_its_workspace_twice(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as a, Workspace(tmp_path / "ws") as b:
        a.reviews.set("x", "accepted")
        assert b.reviews.get("x").status is ReviewStatus.ACCEPTED
    with Workspace(tmp_path / "ws") as c:
        assert not c.read_only


_CREATOR = textwrap.dedent(
    """
    import sys, time, json
    from pathlib import Path
    from segstudio.workspace import Workspace
    from segstudio.workspace.db import Database
    from segstudio.workspace.lock import WorkspaceLockedError
    folder, go, raw = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "raw"
    while not go.exists():
        time.sleep(0.001)
    if raw:  # the store alone, no lock: the migration itself must be race-free
        db = Database(folder)
        print(json.dumps({"outcome": "ok", "schema": db.schema_version()}))
        db.close()
        sys.exit(0)
    try:
        ws = Workspace(folder)
        outcome = "writer"
    except WorkspaceLockedError as e:
        ws = Workspace(folder, read_only=True)
        outcome = "locked:" + str(e.holder.pid if e.holder else None)
    print(json.dumps({"outcome": outcome, "schema": ws.db.schema_version(), "reviews": len(ws.reviews.all())}))
    time.sleep(0.3)
    ws.close()
    """
)


@pytest.mark.parametrize("mode", ["raw", "workspace"])
def test_eight_processes_creating_one_workspace(tmp_path: Path, mode: str) -> None:
    folder, go = tmp_path / "new-ws", tmp_path / "go"
    if mode == "raw":
        folder.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", _CREATOR, str(folder), str(go), mode], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        for _ in range(8)
    ]
    import time

    time.sleep(1.5)  # let them all import and wait at the line
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    from segstudio.workspace.db import SCHEMA_VERSION

    assert all(r["schema"] == SCHEMA_VERSION for r in results), results
    if mode == "workspace":
        writers = [r for r in results if r["outcome"] == "writer"]
        assert writers and all(r["outcome"] == "writer" or r["outcome"].startswith("locked:") for r in results)
    with Workspace(folder) as ws:
        assert ws.rebuild_report is None and ws.db.schema_version() == SCHEMA_VERSION


def test_a_read_only_journal_deletes_nothing(tmp_path: Path) -> None:
    from segstudio.workspace import RecoveryJournal

    folder = tmp_path / "journal"
    folder.mkdir()
    headless = folder / "x-0123456789.journal"
    headless.write_bytes(b"not a journal frame")
    ro = RecoveryJournal(folder, read_only=True)
    assert ro.pending() == [] and headless.exists()
    with pytest.raises(ReadOnlyError):
        ro.mark_saved("x", version=1)
    assert headless.exists()
    assert RecoveryJournal(folder).pending() == [] and not headless.exists()  # the writer tidies it
