"""``segstudio sweep`` on the real Montgomery data with tiny runs (2 epochs of 2 steps at 64²): a 2×2 grid (two
losses × two augmentation presets) is trained and reported; a sweep stopped in its second run resumes without
retraining the finished run and continues the stopped one from its checkpoint; a failing run is recorded while
the others train; bad sweep files and a changed grid end with exit 2 before anything trains."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from segstudio.cli import main
from segstudio.engine.cancel import CancelToken
from segstudio.engine.events import EpochEnd, RunStarted
from segstudio.engine.sweep import (
    SweepError,
    SweepFinished,
    SweepRunStarted,
    load_sweep,
    load_sweep_folder,
    run_sweep,
)

TINY = ["model.encoder=resnet18", "model.encoder_depth=3", "image_size=64", "val_fraction=0.2", "epochs=2", "max_steps_per_epoch=2",
        "batch_size=4", "cache_mb=64", "infer.tta=[]", "infer.post=[]"]
#: two losses × two augmentation presets, as a paper's table compares them
GRID = {
    "loss": {"ce+dice": ["loss.terms=0.5*ce+0.5*dice", "model.aux_head=false"],
             "focal": ["loss.terms=focal", "model.aux_head=false"]},
    "augmentation": {"none": ["augment.preset=none"], "light": ["augment.preset=light"]},
}
NAMES = ["ce+dice__none", "ce+dice__light", "focal__none", "focal__light"]


def write_sweep(folder: Path, data: Path | str, grid: dict[str, Any] | None = None, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"description": "tiny", "dataset": str(data), "recipe": "lungs-lr", "set": TINY, "grid": grid or GRID}
    doc.update(extra)
    path = folder / "sweep-file.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["sweep", *args])
    return rc, out.getvalue(), err.getvalue()


def state(out: Path) -> dict[str, dict[str, Any]]:
    return json.loads((out / "state.json").read_text(encoding="utf-8"))["runs"]


def report_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "report.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def checkpoint_files(run_dir: Path) -> dict[str, tuple[str, int]]:
    """Every checkpoint file of a run: its hash and its mtime in ns."""
    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted((run_dir / "checkpoints").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def grid_sweep(montgomery: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep")
    file = write_sweep(root, montgomery)
    out = root / "out"
    rc, stdout, stderr = cli(str(file), "--out", str(out), "--worst", "1", "-q")
    yield {"rc": rc, "stdout": stdout, "stderr": stderr, "file": file, "out": out}
    shutil.rmtree(root, ignore_errors=True)  # some 700 MB of checkpoints


def test_a_grid_trains_every_run_and_reports_them(grid_sweep):
    out = grid_sweep["out"]
    assert grid_sweep["rc"] == 0, grid_sweep["stderr"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(NAMES)
    assert {n: s["status"] for n, s in state(out).items()} == dict.fromkeys(NAMES, "done")
    plan = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in plan["runs"]] == NAMES
    assert plan["runs"][3]["overrides"] == ["loss.terms=focal", "model.aux_head=false", "augment.preset=light"]
    assert plan["runs"][3]["labels"] == {"loss": "focal", "augmentation": "light"}
    for name in NAMES:
        cfg = json.loads((out / "runs" / name / "train_config.json").read_text(encoding="utf-8"))
        assert cfg["augment"]["preset"] == name.split("__")[1] and cfg["epochs"] == 2
        assert [t["name"] for t in cfg["loss"]["terms"]] == (["focal"] if name.startswith("focal") else ["ce", "dice"])
    rows = report_rows(out)
    assert [r["run"] for r in rows] == NAMES  # the report's comparison table is the sweep's summary
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    table = grid_sweep["stdout"].splitlines()
    assert table[0].split() == ["run", "status", "mean", "Dice"]
    for name, row in zip(NAMES, rows, strict=True):
        line = next(x for x in table if x.startswith(name + " "))
        status, shown = line.split()[1:]
        # the table prints 4 decimals of the full value, the CSV keeps 6: compare within the table's rounding
        assert status == "done" and float(shown) == pytest.approx(float(row["dice"]), abs=5e-5 + 1e-6)
        assert state(out)[name]["dice"] == pytest.approx(float(row["dice"]), abs=1e-6)


def test_a_changed_grid_is_refused(grid_sweep, montgomery):
    out, before = grid_sweep["out"], (grid_sweep["out"] / "state.json").read_bytes()
    changed = json.loads(json.dumps(GRID))
    changed["augmentation"]["light"] = ["augment.preset=medical"]
    file = write_sweep(grid_sweep["file"].parent / "changed", montgomery, changed)
    rc, _, err = cli(str(file), "--out", str(out), "-q")
    assert rc == 2
    assert "config changed: ce+dice__light, focal__light" in err and str(file) in err and "Fix:" in err
    del changed["loss"]["focal"]
    changed["augmentation"]["light"] = ["augment.preset=light"]
    file = write_sweep(grid_sweep["file"].parent / "removed", montgomery, changed)
    rc, _, err = cli(str(file), "--out", str(out), "-q")
    assert rc == 2 and "no longer in the grid: focal__none, focal__light" in err
    assert (out / "state.json").read_bytes() == before


def test_dry_run_trains_nothing(montgomery, tmp_path):
    file = write_sweep(tmp_path, montgomery)
    rc, stdout, _ = cli(str(file), "--out", str(tmp_path / "out"), "--dry-run")
    assert rc == 0 and not (tmp_path / "out").exists()
    for name in NAMES:
        line = next(x for x in stdout.splitlines() if x.strip().startswith(name + " "))
        assert "pending" in line and f"augment.preset={name.split('__')[1]}" in line


@pytest.mark.parametrize(("change", "expected"), [
    ({"grdi": {}}, "Unknown key(s) in the sweep file: 'grdi'"),
    ({"grid": {"architecture": {"unet": ["model.arch=unet"]}}}, "the config refuses the override 'model.arch=unet'"),
    ({"grid": {"augmentation": {"heavy": ["augment.preset=heavy"]}}}, "Unknown augmentation preset 'heavy'"),
    ({"grid": {"architecture": {"unet": ["model.architecture=unet"], "fpm": ["model.architecture=fpm"]}}},
     "Unknown architecture 'fpm'"),
    ({"grid": {"loss": {}}}, "axis 'loss' is empty"),
    ({"grid": {"loss": {"focal": "loss.terms=focal"}}}, "grid.loss.focal must be a list"),
    ({"grid": {"loss": {"aux": ["loss.terms=ce+aux", "model.aux_head=false"]}}}, "no auxiliary head"),
    ({"dataset": "no/such/dataset"}, "does not exist"),
    ({"config": "base.json"}, "both a recipe and a config"),
])
def test_a_bad_sweep_file_exits_2_and_trains_nothing(montgomery, tmp_path, change, expected):
    file = write_sweep(tmp_path, montgomery, **change)
    rc, stdout, err = cli(str(file), "--out", str(tmp_path / "out"), "-q")
    assert rc == 2 and expected in err, err
    assert f"File: {file}" in err and "Fix:" in err and stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_sweep_of_runs_without_a_hold_out_is_refused_before_training(montgomery, tmp_path):
    # lungs-lr trains on every film: the grid's runs would have nothing unseen to be compared on
    file = write_sweep(tmp_path, montgomery, set=[t for t in TINY if not t.startswith("val_fraction")])
    rc, stdout, err = cli(str(file), "--out", str(tmp_path / "out"), "-q")
    assert rc == 2 and "train on every image" in err and "4 of its 4 run(s)" in err, err
    assert f"File: {file}" in err and "data.val_fraction=0.2" in err and stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_stopped_sweep_resumes_where_it_stopped(montgomery, tmp_path):
    out = tmp_path / "out"
    plan = load_sweep(write_sweep(tmp_path, montgomery))
    cancel = CancelToken()
    current = None
    events = []
    for ev in run_sweep(plan, out=out, cancel=cancel, worst=0):
        events.append(ev)
        if isinstance(ev, SweepRunStarted):
            current = ev.name
        if isinstance(ev, EpochEnd) and current == NAMES[1] and ev.epoch == 0:
            cancel.cancel()  # as Ctrl+C does: the run stops at the next batch, keeping its checkpoint
    assert isinstance(events[-1], SweepFinished) and events[-1].stopped
    assert {n: s["status"] for n, s in state(out).items()} == {
        NAMES[0]: "done", NAMES[1]: "stopped", NAMES[2]: "pending", NAMES[3]: "pending"}
    assert not (out / "report.html").exists()
    stopped_run = json.loads((out / "runs" / NAMES[1] / "run.json").read_text(encoding="utf-8"))
    assert stopped_run["cancelled"] and stopped_run["epochs_completed"] == 1
    finished = checkpoint_files(out / "runs" / NAMES[0])

    events = list(run_sweep(load_sweep(write_sweep(tmp_path, montgomery)), out=out, worst=0))
    started = [ev for ev in events if isinstance(ev, SweepRunStarted)]
    assert [(s.name, s.resume) for s in started] == [(NAMES[1], True), (NAMES[2], False), (NAMES[3], False)]
    assert [ev.start_epoch for ev in events if isinstance(ev, RunStarted)] == [1, 0, 0]
    assert checkpoint_files(out / "runs" / NAMES[0]) == finished  # the finished run is not trained again
    resumed = json.loads((out / "runs" / NAMES[1] / "run.json").read_text(encoding="utf-8"))
    assert resumed["epochs_completed"] == 2 and not resumed["cancelled"]  # 1 epoch before the stop + 1 after
    with open(out / "runs" / NAMES[1] / "curves.csv", newline="", encoding="utf-8") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1]
    assert not events[-1].stopped and events[-1].report == out / "report.html"
    assert [r["run"] for r in report_rows(out)] == NAMES
    assert {n: s["status"] for n, s in state(out).items()} == dict.fromkeys(NAMES, "done")


def test_an_interrupt_before_the_first_checkpoint_starts_that_run_over(montgomery, tmp_path):
    out = tmp_path / "out"
    file = write_sweep(tmp_path, montgomery, {"augmentation": {"none": ["augment.preset=none"]}})
    events = run_sweep(load_sweep(file), out=out, worst=0)
    for ev in events:
        if isinstance(ev, RunStarted):
            with pytest.raises(KeyboardInterrupt):
                events.throw(KeyboardInterrupt)  # a second Ctrl+C: no checkpoint saved
            break
    assert state(out)["none"]["status"] == "stopped"
    rc, stdout, err = cli(str(file), "--out", str(out), "-q", "--worst", "0")
    assert rc == 0, err
    assert "run 1/1: none\n" in err and state(out)["none"]["status"] == "done"


def test_a_failing_run_is_recorded_and_the_others_run(montgomery, tmp_path, monkeypatch):
    from segstudio.engine import train as train_module

    real_step = train_module._Trainer._train_step

    def failing_step(self, x, y):
        if self.cfg.augment.preset == "light":
            raise RuntimeError("injected failure in a training step")
        return real_step(self, x, y)

    monkeypatch.setattr(train_module._Trainer, "_train_step", failing_step)
    out = tmp_path / "out"
    grid = {"augmentation": {"light": ["augment.preset=light"], "none": ["augment.preset=none"]}}
    rc, stdout, _ = cli(str(write_sweep(tmp_path, montgomery, grid)), "--out", str(out), "-q", "--worst", "0")
    assert rc == 1
    st = state(out)
    assert st["light"]["status"] == "failed" and "injected failure" in st["light"]["error"]
    assert st["none"]["status"] == "done"
    assert [r["run"] for r in report_rows(out)] == ["none"]
    assert "light  failed" in stdout and "injected failure" in stdout
    done = checkpoint_files(out / "runs" / "none")

    monkeypatch.undo()  # the cause is fixed; a grid that only adds a run is taken by the same folder
    grid["augmentation"]["xray"] = ["augment.preset=xray"]
    rc, stdout, err = cli(str(write_sweep(tmp_path, montgomery, grid)), "--out", str(out), "-q", "--worst", "0")
    assert rc == 0, err
    assert {n: s["status"] for n, s in state(out).items()} == {"light": "done", "none": "done", "xray": "done"}
    assert "error" not in state(out)["light"]
    assert checkpoint_files(out / "runs" / "none") == done
    assert [r["run"] for r in report_rows(out)] == ["light", "none", "xray"]


def test_a_file_without_a_dataset_trains_on_the_given_one_and_its_folder_resumes_without_the_file(
        montgomery, tmp_path):
    """The app's case: the sweep file names no dataset (the open one is given); the folder records it, so the
    sweep resumes from the folder alone (``segstudio sweep DIR``, the app's Resume), and a report-only pass
    trains nothing."""
    grid = {"augmentation": {"none": ["augment.preset=none"], "light": ["augment.preset=light"]}}
    file = write_sweep(tmp_path / "files", montgomery, grid)
    doc = json.loads(file.read_text(encoding="utf-8"))
    del doc["dataset"]
    file.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SweepError, match="needs a 'dataset'"):
        load_sweep(file)
    plan = load_sweep(file, dataset=montgomery, format="class-folders")
    assert plan.dataset == montgomery.resolve() and plan.format == "class-folders"
    out = tmp_path / "out"
    cancel = CancelToken()
    for ev in run_sweep(plan, out=out, cancel=cancel, worst=0):
        if isinstance(ev, EpochEnd):
            cancel.cancel()  # stopped in its first run, after its first epoch
    assert state(out)["none"]["status"] == "stopped" and state(out)["none"]["started"]
    file.unlink()
    again = load_sweep_folder(out)
    assert again.to_dict() == json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    rc, _, err = cli(str(out), "-q", "--worst", "0")
    assert rc == 0, err
    assert {n: s["status"] for n, s in state(out).items()} == {"none": "done", "light": "done"}
    (out / "report.html").unlink()
    events = list(run_sweep(load_sweep_folder(out), out=out, worst=0, report_only=True))
    assert not [ev for ev in events if isinstance(ev, SweepRunStarted | RunStarted)]
    assert events[-1].report == out / "report.html" and (out / "report.html").is_file()
    rc, _, err = cli(str(out), "--out", str(tmp_path / "elsewhere"), "-q")
    assert rc == 2 and "resumes in place" in err
