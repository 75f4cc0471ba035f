"""The workspace's sweeps (``ws.sweeps``): its own under ``sweeps/`` and folders added by reference, read from each
folder's ``sweep.json`` / ``state.json`` / run folders as the engine writes them — with the summary the run history
shows (``3/6 done, stopped``, the best run, total training time) — and robust to a folder that is gone, a damaged
plan or state, a sweep whose process was killed, and a folder that is not a sweep."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from segstudio.core.errors import ReadOnlyError, SegstudioError
from segstudio.workspace import RunStatus, Workspace

LABELS = [("unet", "ce+dice"), ("unet", "focal"), ("fpn", "ce+dice"), ("fpn", "focal")]


def _name(arch: str, loss: str) -> str:
    return f"{arch}__{loss}"


def make_sweep(folder: Path, statuses: dict[str, str], *, best: dict[str, float] | None = None,
               state: bool = True, file: str = "/sweeps/lungs.json") -> Path:
    """A sweep folder as ``engine.sweep`` leaves it: the plan, the state, and a trainer's files per run that
    trained (``run.json`` once it ended, with its best monitored value and training seconds)."""
    runs = [{"name": _name(a, loss), "labels": {"architecture": a, "loss": loss}, "overrides": [],
             "config": {"model": {"architecture": a}}} for a, loss in LABELS]
    folder.mkdir(parents=True, exist_ok=True)
    plan = {"version": 1, "file": file, "document": {"description": "lungs: 2 archs x 2 losses"},
            "dataset": {"path": "/data/montgomery", "format": None}, "runs": runs}
    (folder / "sweep.json").write_text(json.dumps(plan), encoding="utf-8")
    entries: dict[str, Any] = {}
    for i, (name, status) in enumerate(statuses.items()):
        entry: dict[str, Any] = {"status": status, "updated": f"2026-01-0{i + 1}T10:00:00",
                                 "started": f"2026-01-0{i + 1}T09:00:00"}
        run = folder / "runs" / name
        if status in ("done", "stopped", "failed", "running"):
            (run / "checkpoints" / "last").mkdir(parents=True)
            (run / "train_config.json").write_text("{}", encoding="utf-8")
        if status in ("done", "stopped"):
            info = {"epochs_completed": 2 if status == "done" else 1, "train_seconds": 30.0 + i,
                    "cancelled": status == "stopped", "best_monitor": (best or {}).get(name, 0.5), "monitor": "dice"}
            (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
        if status == "failed":
            entry["error"] = "RuntimeError: injected"
        entries[name] = entry
    if state:
        (folder / "state.json").write_text(json.dumps({"version": 1, "runs": entries}), encoding="utf-8")
    return folder


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws")
    yield w
    w.close()


def test_an_own_sweep_is_read_with_its_runs_statuses_and_summary(ws: Workspace) -> None:
    make_sweep(ws.sweeps.folder / "lungs", {"unet__ce+dice": "done", "unet__focal": "done", "fpn__ce+dice": "stopped",
                                            "fpn__focal": "pending"},
               best={"unet__ce+dice": 0.71, "unet__focal": 0.83, "fpn__ce+dice": 0.64})
    [s] = ws.sweeps.all()
    assert s.id == "sweeps/lungs" and s.name == "lungs" and not s.referenced and s.condition == "ok"
    assert s.status_text == "2/4 done, stopped" and s.resumable and not s.running
    assert s.description == "lungs: 2 archs x 2 losses" and s.dataset == "/data/montgomery"
    assert [r.label for r in s.runs] == ["unet × ce+dice", "unet × focal", "fpn × ce+dice", "fpn × focal"]
    assert [r.status for r in s.runs] == ["done", "done", "stopped", "pending"]
    best = s.best()
    assert best is not None and best.name == "unet__focal" and best.best_metric == pytest.approx(0.83)
    assert s.train_seconds == pytest.approx(30 + 31 + 32)
    assert s.started == time.mktime(time.strptime("2026-01-01T09:00:00", "%Y-%m-%dT%H:%M:%S"))
    # a sweep's run is a run like any other for the history and the model registry
    rec = s.runs[2].record()
    assert rec.id == "sweeps/lungs/runs/fpn__ce+dice" and rec.status is RunStatus.CANCELLED
    assert rec.folder == ws.sweeps.folder / "lungs" / "runs" / "fpn__ce+dice"
    assert rec.name == "lungs / fpn × ce+dice" and rec.best_metric_name == "dice" and "1 epoch(s)" in rec.message
    found = ws.sweeps.find_run(rec.id)
    assert found is not None and found[0].id == s.id and found[1].name == "fpn__ce+dice"
    assert ws.sweeps.find_run("20260101-abc") is None and ws.sweeps.find_run("sweeps/lungs/runs/nope") is None


def test_failed_done_and_not_started_sweeps_say_so(ws: Workspace) -> None:
    all_done = dict.fromkeys((_name(*x) for x in LABELS), "done")
    make_sweep(ws.sweeps.folder / "a", all_done)
    make_sweep(ws.sweeps.folder / "b", {**all_done, "fpn__focal": "failed"})
    make_sweep(ws.sweeps.folder / "c", dict.fromkeys(all_done, "pending"))
    got = {s.name: s for s in ws.sweeps.all()}
    assert got["a"].status_text == "4/4 done" and not got["a"].resumable
    assert got["b"].status_text == "3/4 done, 1 failed" and got["b"].resumable  # Resume trains it again
    assert got["b"].runs[3].error == "RuntimeError: injected"
    assert got["c"].status_text == "0/4 done, not started" and got["c"].best() is None


def test_a_run_left_running_by_a_killed_process_reads_as_stopped_while_a_held_lock_means_running(
        ws: Workspace) -> None:
    folder = make_sweep(ws.sweeps.folder / "lungs", {"unet__ce+dice": "done", "unet__focal": "running",
                                                     "fpn__ce+dice": "pending", "fpn__focal": "pending"})
    s = ws.sweeps.get("sweeps/lungs")
    assert s.runs[1].status == "stopped" and s.status_text == "1/4 done, stopped" and s.resumable
    fd = os.open(folder / "sweep.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the engine holds it while it trains
        s = ws.sweeps.get("sweeps/lungs")
        assert s.running and s.runs[1].status == "running" and s.status_text == "1/4 done, running"
        assert not s.resumable
    finally:
        os.close(fd)
    assert not ws.sweeps.get("sweeps/lungs").running  # the lock went with its holder


def test_a_referenced_folder_is_listed_by_path_and_a_missing_one_shows_as_missing(ws: Workspace, tmp_path: Path) -> None:
    ext = make_sweep(tmp_path / "cluster" / "lungs-sweep", {"unet__ce+dice": "done", "unet__focal": "pending",
                                                            "fpn__ce+dice": "pending", "fpn__focal": "pending"})
    record, new = ws.sweeps.add(ext)
    assert new and record.referenced and record.id == str(ext.resolve()) and record.status_text == "1/4 done, stopped"
    assert not (ws.folder / "sweeps").exists()  # referenced, not copied
    assert ws.sweeps.add(ext)[1] is False and len(ws.sweeps.all()) == 1  # not twice
    doc = json.loads((ws.folder / "sweeps.json").read_text(encoding="utf-8"))
    assert [f["path"] for f in doc["folders"]] == [str(ext.resolve())]
    ext.rename(tmp_path / "cluster" / "moved")
    [gone] = ws.sweeps.all()  # never raises
    assert gone.condition == "missing" and gone.status_text == "missing" and gone.runs == ()
    assert str(ext.resolve()) in gone.problem and "remove the sweep" in gone.problem
    assert ws.sweeps.find_run(f"{gone.id}/runs/unet__ce+dice") is None
    ws.sweeps.forget(gone.id)
    assert ws.sweeps.all() == []
    with pytest.raises(SegstudioError, match="not a referenced folder"):
        ws.sweeps.forget("sweeps/lungs")


def test_a_folder_that_is_not_a_sweep_is_refused_naming_it_and_the_fix(ws: Workspace, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SegstudioError) as err:
        ws.sweeps.add(plain)
    assert f"The folder {plain} is not a sweep folder: it has no sweep.json." in str(err.value)
    assert "Fix: Choose the folder that `segstudio sweep FILE --out DIR` wrote" in str(err.value)
    sweep = make_sweep(tmp_path / "s", {"unet__ce+dice": "done", "unet__focal": "pending", "fpn__ce+dice": "pending",
                                        "fpn__focal": "pending"})
    with pytest.raises(SegstudioError, match="It is a run folder of a sweep: choose the folder two levels up"):
        ws.sweeps.add(sweep / "runs" / "unet__ce+dice")
    with pytest.raises(SegstudioError, match="does not exist"):
        ws.sweeps.add(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SegstudioError, match="cannot be read"):
        ws.sweeps.add(tmp_path / "bad")
    assert ws.sweeps.all() == [] and not (ws.folder / "sweeps.json").exists()


def test_damaged_plan_and_state_are_reported_and_never_raise(ws: Workspace) -> None:
    bad_plan = ws.sweeps.folder / "bad-plan"
    make_sweep(bad_plan, dict.fromkeys((_name(*x) for x in LABELS), "done"))
    (bad_plan / "sweep.json").write_text('{"runs": 3}', encoding="utf-8")
    bad_state = make_sweep(ws.sweeps.folder / "bad-state", {"unet__ce+dice": "done", "unet__focal": "stopped",
                                                             "fpn__ce+dice": "pending", "fpn__focal": "pending"})
    (bad_state / "state.json").write_text('{"version": 1, "runs": [', encoding="utf-8")
    no_state = make_sweep(ws.sweeps.folder / "no-state", {"unet__ce+dice": "done", "unet__focal": "pending",
                                                           "fpn__ce+dice": "pending", "fpn__focal": "pending"},
                          state=False)
    (ws.sweeps.folder / "stray").mkdir()  # no sweep.json: not a sweep, not listed
    got = {s.name: s for s in ws.sweeps.all()}
    assert set(got) == {"bad-plan", "bad-state", "no-state"}
    damaged = ws.sweeps.get("sweeps/bad-plan")
    assert got["bad-plan"] == damaged and damaged.runs == ()
    assert damaged.condition == "damaged" and damaged.status_text == "damaged" and not damaged.resumable
    assert str(bad_plan / "sweep.json") in damaged.problem and "not a sweep plan" in damaged.problem
    st = got["bad-state"]
    assert st.condition == "ok" and st.status_text == "1/4 done, stopped, state.json damaged"
    assert f"{bad_state / 'state.json'} is damaged" in st.problem and "resume the sweep" in st.problem
    assert [r.status for r in st.runs] == ["done", "stopped", "pending", "pending"]  # read from the run folders
    assert f"{no_state / 'state.json'} is missing" in got["no-state"].problem
    assert [r.status for r in got["no-state"].runs] == ["done", "pending", "pending", "pending"]


def test_the_app_trains_a_sweep_file_into_its_own_folder_and_the_same_file_again_into_the_same(
        ws: Workspace, tmp_path: Path) -> None:
    file = tmp_path / "lungs sweep.json"
    first = ws.sweeps.folder_for(file)
    assert first == ws.sweeps.folder / "lungs-sweep" and not first.exists()
    make_sweep(first, {"unet__ce+dice": "pending"}, file=str(file.resolve()))
    assert ws.sweeps.folder_for(file) == first  # running the same file again resumes it
    other = tmp_path / "other" / "lungs sweep.json"
    assert ws.sweeps.folder_for(other) == ws.sweeps.folder / "lungs-sweep-2"  # another file of that name


def test_a_damaged_reference_list_is_kept_aside_and_a_read_only_workspace_refuses_to_add(tmp_path: Path) -> None:
    ext = make_sweep(tmp_path / "ext", {"unet__ce+dice": "done", "unet__focal": "pending", "fpn__ce+dice": "pending",
                                        "fpn__focal": "pending"})
    with Workspace(tmp_path / "ws") as w:
        (w.folder / "sweeps.json").write_text("[oops", encoding="utf-8")
        assert w.sweeps.all() == []
        w.sweeps.add(ext)
        assert [s.folder for s in w.sweeps.all()] == [ext.resolve()]
        assert len(list(w.folder.glob("sweeps.json.damaged-*"))) == 1
    with Workspace(tmp_path / "ws", read_only=True) as ro:
        assert [s.name for s in ro.sweeps.all()] == ["ext"]  # reading works
        other = make_sweep(tmp_path / "other", {"unet__ce+dice": "pending"})
        with pytest.raises(ReadOnlyError):
            ro.sweeps.add(other)
        with pytest.raises(ReadOnlyError):
            ro.sweeps.forget(str(ext.resolve()))
