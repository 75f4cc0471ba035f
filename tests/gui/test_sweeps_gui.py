"""Sweeps in the app, on the real Montgomery data with tiny runs (64², 2 epochs of 1 step): Train → Run Sweep… trains
a sweep file that names no dataset on the open one into the workspace's sweeps/ folder; Stop stops it at a clean
point; the run history groups it (one sweep row, its runs as children with their labels and statuses); Resume
finishes it and writes its report; a child's curves show and its model can be used; Open Report opens the report;
Train → Add Sweep Folder… lists a sweep folder from elsewhere by reference, refuses a folder that is not a sweep,
and a referenced folder that disappears shows as missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QFileDialog

from segstudio.engine.events import EpochEnd
from segstudio.gui.loop.run_history import KIND_ROLE, SWEEP
from segstudio.gui.main_window import MainWindow

TINY = ["model.encoder=resnet18", "model.encoder_depth=3", "image_size=64", "val_fraction=0.2", "epochs=2", "max_steps_per_epoch=1",
        "batch_size=4", "cache_mb=64", "infer.tta=[]", "infer.post=[]", "device=cpu"]
GRID = {"augmentation": {"none": ["augment.preset=none"], "light": ["augment.preset=light"]}}


@pytest.fixture
def mwindow(show_window, montgomery: Path, monkeypatch: pytest.MonkeyPatch):
    win: MainWindow = show_window(montgomery)
    errors: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.sweeps.show_error", lambda title, text, *a: errors.append(text))
    win.errors = errors  # type: ignore[attr-defined]
    opened: list[QUrl] = []
    win.sweeps._open_url = opened.append
    win.opened = opened  # type: ignore[attr-defined]
    win.training_panel.threads.setValue(1)
    yield win
    win.training.stop_and_wait(60)


def _sweep_file(folder: Path, **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"description": "tiny: two augmentation presets", "recipe": "lungs-lr", "set": TINY, "grid": GRID, **extra}
    path = folder / "aug sweep.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _choose(monkeypatch: pytest.MonkeyPatch, *, file: Path | None = None, folder: Path | None = None) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(file), "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))


def _tree_rows(window: MainWindow) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each top-level row's (name, status) and its children's."""
    tree = window.training_panel.history.tree
    rows = []
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        kids = [(top.child(j).text(0), top.child(j).text(1)) for j in range(top.childCount())]
        rows.append((f"{top.text(0)}|{top.text(1)}", kids))
    return rows


def test_a_sweep_runs_from_the_app_stops_groups_resumes_and_its_runs_are_models(
        mwindow: MainWindow, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window, panel, history = mwindow, mwindow.training_panel, mwindow.training_panel.history
    ws = window.review.workspace
    file = _sweep_file(tmp_path / "files")
    _choose(monkeypatch, file=file)
    started: list[str] = []
    window.training.sig_run_started.connect(lambda run: started.append(run.id))

    def stop_in_second_run(ev: object) -> None:
        if isinstance(ev, EpochEnd) and len(started) == 2 and window.training.worker is not None:
            panel.stop_button.click()  # as the user does: after this batch, keeping the last checkpoint

    window.training.sig_event.connect(stop_in_second_run)
    window.actions_["train_sweep"].trigger()
    assert window.training.running and panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: not window.training.running, timeout=180_000)
    assert mwindow.errors == []
    out = ws.folder / "sweeps" / "aug-sweep"
    sweep_id = "sweeps/aug-sweep"
    assert started == [f"{sweep_id}/runs/none", f"{sweep_id}/runs/light"]
    plan = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    assert plan["dataset"]["path"] == str(window.session.dataset.root.resolve())  # the open dataset
    # the history groups it: one sweep row, its runs as children with their statuses
    assert history.sweep_ids() == [sweep_id]
    assert _tree_rows(window) == [("aug-sweep|1/2 done, stopped", [("none", "done"), ("light", "stopped")])]
    assert history.run_ids() == started
    top = history.tree.topLevelItem(0)
    assert top.data(0, KIND_ROLE) == SWEEP and top.text(2).startswith("dice ") and top.text(3).endswith(" s")
    assert "stopped" in panel.state_label.text() and "Resume" in panel.state_label.text()
    assert not (out / "report.html").exists()
    assert window.training.chosen_model() is None  # a stopped sweep chooses no model
    # a child's curves show as a plain run's do
    history.select_run(f"{sweep_id}/runs/none")
    dice = {s.name: s for s in panel.metric_plot.series()}
    assert len(dice["mean"].ys) == 2
    history.select_sweep(sweep_id)
    assert "1/2 done, stopped" in panel.state_label.text()
    assert history.resume_button.isEnabled() and not history.use_button.isEnabled()
    assert history.report_button.isEnabled()

    # Resume: the stopped run continues from its checkpoint, then the report is written
    history.resume_button.click()
    assert window.training.running and not history.resume_button.isEnabled()
    qtbot.waitUntil(lambda: not window.training.running, timeout=180_000)
    assert mwindow.errors == []
    assert started[2:] == [f"{sweep_id}/runs/light"]  # the done run is not trained again
    assert _tree_rows(window) == [("aug-sweep|2/2 done", [("none", "done"), ("light", "done")])]
    assert (out / "report.html").is_file()
    light = json.loads((out / "runs" / "light" / "run.json").read_text(encoding="utf-8"))
    assert light["epochs_completed"] == 2 and not light["cancelled"]
    # the workspace had no model: the sweep's best run became it
    best = ws.sweeps.get(sweep_id).best()
    chosen = window.training.chosen_model()
    assert best is not None and chosen is not None and chosen.parent.parent == best.folder
    # "Use This Model" on the other child promotes it like any run, recorded with its id
    other = next(r for r in ws.sweeps.get(sweep_id).runs if r.name != best.name)
    history.select_run(other.id)
    assert history.use_button.isEnabled()
    history.use_button.click()
    chosen = window.training.chosen_model()
    assert chosen is not None and chosen.parent.parent == other.folder
    assert ws.models.current().run_id == other.id
    assert other.label in panel.model_label.text()
    # Open Report opens the sweep's report; written again on request, then opened
    history.select_sweep(sweep_id)
    history.report_button.click()
    assert mwindow.opened == [QUrl.fromLocalFile(str(out / "report.html"))]
    (out / "report.html").unlink()
    history.report_button.click()  # missing: written first (in the background), then opened
    assert window.training.running
    qtbot.waitUntil(lambda: not window.training.running, timeout=180_000)
    assert (out / "report.html").is_file() and mwindow.opened[-1] == QUrl.fromLocalFile(str(out / "report.html"))
    assert len(started) == 3  # writing the report trained nothing

    # running the same file again resumes the same folder (all done: nothing trains)
    window.actions_["train_sweep"].trigger()
    qtbot.waitUntil(lambda: not window.training.running, timeout=180_000)
    assert len(started) == 3 and history.sweep_ids() == [sweep_id] and mwindow.errors == []

    # Add Sweep Folder…: a copy elsewhere (as a cluster's) is listed by reference
    external = tmp_path / "cluster" / "aug-sweep-cluster"
    shutil.copytree(out, external, ignore=shutil.ignore_patterns("sweep.lock"))
    _choose(monkeypatch, folder=external)
    window.actions_["train_add_sweep"].trigger()
    assert mwindow.errors == []
    assert set(history.sweep_ids()) == {sweep_id, str(external.resolve())}
    assert not (ws.folder / "sweeps" / "aug-sweep-cluster").exists()  # not copied
    history.select_run(f"{external.resolve()}/runs/light")
    history.use_button.click()
    assert window.training.chosen_model().parent.parent == external.resolve() / "runs" / "light"
    # a folder that is not a sweep is refused, naming it and the fix
    _choose(monkeypatch, folder=tmp_path / "files")
    window.actions_["train_add_sweep"].trigger()
    assert len(mwindow.errors) == 1 and str(tmp_path / "files") in mwindow.errors[0]
    assert "is not a sweep folder" in mwindow.errors[0] and "Fix:" in mwindow.errors[0]
    # a referenced folder that disappears shows as missing, with its path
    external.rename(tmp_path / "cluster" / "gone")
    panel.refresh_runs()
    missing = next(r for r in _tree_rows(window) if r[0].startswith("aug-sweep-cluster"))
    assert missing[0] == "aug-sweep-cluster|missing" and missing[1][0][0] == f"not found: {external.resolve()}"
    # the right-click menu: a sweep's own actions; a referenced one can leave the list (its folder is left alone)
    tree = history.tree
    own = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount()) if tree.topLevelItem(i).text(0) == "aug-sweep")
    actions = {a.text(): a for a in history.context_menu(own).actions() if a.text()}
    assert {"Use This Model", "Resume", "Open Report", "Write the Report Again", "Use the Best Run's Model",
            "Open the Sweep Folder"} == set(actions)
    assert not actions["Resume"].isEnabled() and actions["Write the Report Again"].isEnabled()
    actions["Use the Best Run's Model"].trigger()
    assert window.training.chosen_model().parent.parent == best.folder
    actions["Open the Sweep Folder"].trigger()
    assert mwindow.opened[-1] == QUrl.fromLocalFile(str(out))
    gone = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).text(0) == "aug-sweep-cluster")
    actions = {a.text(): a for a in history.context_menu(gone).actions() if a.text()}
    assert not actions["Open Report"].isEnabled() and not actions["Open the Sweep Folder"].isEnabled()
    actions["Remove from the Run History"].trigger()
    assert history.sweep_ids() == [sweep_id] and ws.sweeps.references() == []
    # a retraining round from a sweep's model is named after that run
    from segstudio.engine.retrain import round_name

    assert round_name(ws, ws.models.current()) == f"aug-sweep / {best.label} · round 1"


def test_a_bad_sweep_file_is_refused_with_its_name_and_the_fix(mwindow: MainWindow, qtbot, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    window = mwindow
    bad = _sweep_file(tmp_path, grid={"augmentation": {"heavy": ["augment.preset=heavy"]}})
    _choose(monkeypatch, file=bad)
    window.actions_["train_sweep"].trigger()
    qtbot.waitUntil(lambda: not window.training.running, timeout=60_000)
    assert len(mwindow.errors) == 1
    assert "Unknown augmentation preset 'heavy'" in mwindow.errors[0] and str(bad) in mwindow.errors[0]
    assert "Fix:" in mwindow.errors[0]
    assert window.training_panel.error_label.isVisible()
    assert window.training_panel.history.sweep_ids() == [] and window.training_panel.start_button.isEnabled()


def test_the_run_history_tree_orders_groups_keeps_the_selection_and_shows_a_sweeps_problem(qtbot, tmp_path) -> None:
    from segstudio.gui.loop.run_history import RunHistory
    from segstudio.workspace import RunRecord, RunStatus, SweepRecord, SweepRun

    def sweep_run(sweep: str, name: str, status: str, best: float | None) -> SweepRun:
        return SweepRun(id=f"sweeps/{sweep}/runs/{name}", name=name, sweep_name=sweep, labels=(("loss", name),),
                        status=status, folder=tmp_path / sweep / "runs" / name, best_metric=best,
                        best_metric_name="dice" if best is not None else "", train_seconds=40.0 if best else None,
                        started=200.0)

    plain = RunRecord(id="20260101-aaa", config={}, status=RunStatus.FINISHED, folder=tmp_path / "r", created=100.0,
                      name="lungs-lr", best_metric=0.8, best_metric_name="dice", started=100.0, finished=160.0)
    runs = (sweep_run("s", "focal", "done", 0.7), sweep_run("s", "dice", "stopped", 0.9),
            sweep_run("s", "ce", "pending", None))
    sweep = SweepRecord(id="sweeps/s", name="s", folder=tmp_path / "s", referenced=False, runs=runs, created=150.0,
                        problem="state.json is damaged (…); the statuses shown are read from the run folders.")
    h = RunHistory()
    qtbot.addWidget(h)
    h.set_runs([plain], [sweep])
    tree = h.tree
    assert [tree.topLevelItem(i).text(0) for i in range(2)] == ["s", "lungs-lr"]  # newest first
    top = tree.topLevelItem(0)
    assert [top.text(c) for c in range(5)][:4] == ["s", "1/3 done, stopped, state.json damaged", "dice 0.900", "80 s"]
    assert top.isExpanded()  # its problem shows without a click
    assert top.child(0).text(0).startswith("state.json is damaged") and top.child(0).toolTip(0) == sweep.problem
    assert [top.child(i).text(0) for i in range(1, 4)] == ["focal", "dice", "ce"]
    assert h.run_ids() == [r.id for r in runs] + [plain.id]
    selected: list[str] = []
    h.sig_run_selected.connect(selected.append)
    h.select_run(runs[1].id)
    assert selected == [runs[1].id] and h.selected_sweep_id() == "sweeps/s" and h.use_button.isEnabled()
    h.set_runs([plain], [sweep])  # a refresh keeps the selection and says nothing
    assert h.selected_run_id() == runs[1].id and selected == [runs[1].id]
    h.select_sweep("sweeps/s")
    assert h.selected_run_id() is None and not h.use_button.isEnabled() and h.report_button.isEnabled()
