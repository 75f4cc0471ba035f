"""The run bundle's round trip on the real Montgomery data: Train → Export Run Bundle… writes the Training panel's
tiny settings (64², 1 epoch of 2 steps, batch 2 per process) for the open dataset; the bundle's launch script trains
it with torchrun (NPROC processes, DistributedDataParallel); Train → Import Run Folder… brings the finished run into the run history with its
metrics and curves; Use This Model makes it the workspace's model, recorded in the model history. Refusals — a
folder that is not a finished run, a destination that holds a bundle — are said with the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from segstudio.gui.loop.bundle_dialog import BundleDialog
from segstudio.gui.main_window import MainWindow
from segstudio.workspace import RunStatus
from segstudio.workspace.bundles import CONFIG_NAME, DATASET_NAME, LAUNCH_NAME

#: training processes the bundle runs with: two, trained by the engine under DDP (gloo on the CPU)
NPROC = 2
VENV_BIN = Path(sys.executable).parent


def _tiny(panel) -> None:  # noqa: ANN001 - the training panel
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
    panel.encoder.setCurrentText("resnet18")
    panel.epochs.setValue(1)
    panel.image_size.setValue(64)
    panel.batch_size.setValue(2)
    panel.holdout.setValue(20)  # a scored epoch: the imported run shows its best Dice
    panel.steps.setValue(2)
    panel.device.set_device("cpu")
    panel.threads.setValue(1)


@pytest.fixture
def mwindow(show_window, montgomery: Path, monkeypatch: pytest.MonkeyPatch):
    win: MainWindow = show_window(montgomery)
    errors: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.bundles.show_error", lambda title, text, *a: errors.append(text))
    win.errors = errors  # type: ignore[attr-defined]
    _tiny(win.training_panel)
    yield win
    win.bundles.stop_and_wait(60)


def _answer(folder: Path, seen: list[dict[str, object]], *, nproc: int = NPROC):
    """Fill the export dialog as a person would and note what it showed (it is deleted after)."""

    def ask(dlg: BundleDialog) -> bool:
        dlg.folder_edit.setText(str(folder))
        dlg.nproc.setValue(nproc)
        seen.append({"title": dlg.windowTitle(), "command": dlg.command.toPlainText(), "problem": dlg.problem_text(),
                     "enabled": dlg.export_button.isEnabled()})
        return dlg.export_button.isEnabled()

    return ask


def test_export_run_import_and_use_a_bundle_from_the_app(mwindow: MainWindow, qtbot, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    window, panel, history = mwindow, mwindow.training_panel, mwindow.training_panel.history
    ws, ds = window.review.workspace, window.session.dataset
    bundle = tmp_path / "bundles" / "lungs tiny"
    seen: list[dict[str, object]] = []
    window.bundles.ask = _answer(bundle, seen)
    window.actions_["train_export_bundle"].trigger()
    assert window.errors == [] and len(seen) == 1
    shown = seen[0]
    assert shown["title"] == "Export Run Bundle" and shown["enabled"] and shown["problem"] == ""
    assert f"torchrun --nproc-per-node={NPROC} --standalone -m segstudio train" in str(shown["command"])
    assert (bundle / LAUNCH_NAME).is_file()
    cfg = json.loads((bundle / CONFIG_NAME).read_text(encoding="utf-8"))
    assert cfg == panel.current_config().to_dict()  # exactly what the Train button would train
    ref = json.loads((bundle / DATASET_NAME).read_text(encoding="utf-8"))
    assert ref["path"] == str(Path(ds.root).resolve()) and ref["format"] == ds.format_name
    assert ref["workspace"] == str(ws.folder.resolve())  # "Train on my corrections too" is on
    # exporting into it again is refused in the dialog, with the fix
    window.bundles.ask = _answer(bundle, seen)
    window.actions_["train_export_bundle"].trigger()
    assert "holds a run bundle already" in str(seen[-1]["problem"]) and not seen[-1]["enabled"]

    # the launch script trains it with torchrun, beside the app that holds the workspace (read-only there)
    out = tmp_path / "cluster scratch" / "lungs-ddp"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "NPROC_PER_NODE": str(NPROC), "OUT": str(out), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["sh", str(bundle / LAUNCH_NAME)], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert summary["epochs_completed"] == 1 and summary["processes"] == NPROC
    assert summary["global_batch"] == 2 * NPROC
    digests = {line.rsplit(" ", 1)[1] for line in proc.stdout.splitlines() if "weights sha256" in line}
    assert len(digests) == 1 and proc.stdout.count("weights sha256") == NPROC  # every process, the same weights

    # a folder that is not a finished run is refused, naming it
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(out / "checkpoints")))
    window.actions_["train_import_run"].trigger()
    assert window.errors and "not a segstudio run" in window.errors[-1] and not window.bundles.importing
    window.errors.clear()

    # Train → Import Run Folder…: copied in the background, then in the run history, selected
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(out)))
    imported = []
    window.bundles.sig_imported.connect(imported.append)
    window.actions_["train_import_run"].trigger()
    qtbot.waitUntil(lambda: bool(imported) or bool(window.errors), timeout=120_000)
    assert window.errors == []
    rec = imported[0]
    assert rec.status is RunStatus.FINISHED and rec.name == "lungs-ddp (imported)"
    assert rec.best_metric == pytest.approx(summary["best_monitor"]) and rec.best_metric_name == "dice"
    assert rec.duration_s == pytest.approx(summary["train_seconds"])
    assert rec.folder.parent == ws.folder / "runs" and (rec.folder / "checkpoints" / "best").is_dir()
    assert history.selected_run_id() == rec.id and panel.tabs.currentWidget() is history
    row = history.tree.currentItem()
    assert row.text(0) == "lungs-ddp (imported)" and row.text(1) == "finished" and row.text(2).startswith("dice ")
    assert len({s.name: s for s in panel.metric_plot.series()}["mean"].ys) == 1  # its curves
    assert not window.bundles.progress.isVisible()
    assert (out / "run.json").is_file()  # the source stays
    window.actions_["train_import_run"].trigger()  # the same run again: it is there already
    assert window.errors and "in the run history already" in window.errors[-1] and not window.bundles.importing
    window.errors.clear()

    # Use This Model: the workspace's model, recorded in the model history under the run's name
    history.use_button.click()
    assert window.errors == []
    current = ws.models.current()
    assert current is not None and current.run_id == rec.id and current.checkpoint.parent.parent == rec.folder
    last = ws.models.history()[-1]
    assert last.run_id == rec.id and last.action.value == "adopt"
    assert "lungs-ddp (imported)" in panel.model_history.tree.topLevelItem(0).text(5)


def test_a_run_whose_checkpoint_does_not_load_is_refused_in_the_background_and_nothing_is_kept(
        window: MainWindow, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.bundles.show_error", lambda title, text, *a: errors.append(text))
    src = tmp_path / "copied run"
    (src / "checkpoints" / "best").mkdir(parents=True)
    (src / "checkpoints" / "best" / "config.json").write_text('{"format": "segstudio-checkpoint", "format_v')
    (src / CONFIG_NAME).write_text(window.training_panel.current_config().to_json(), encoding="utf-8")
    (src / "run.json").write_text('{"epochs_completed": 3, "train_seconds": 60, "best_monitor": 0.8}')
    assert window.bundles.import_folder(src)
    assert window.bundles.importing and window.bundles.progress.isVisible()
    qtbot.waitUntil(lambda: not window.bundles.importing, timeout=60_000)
    assert errors and "checkpoint does not load" in errors[0] and "config.json" in errors[0]
    ws = window.review.workspace
    assert ws.runs.all() == [] and not window.bundles.progress.isVisible()
    assert not ws.runs.folder.exists() or list(ws.runs.folder.iterdir()) == []
    # a run still training (no run.json yet) is refused at once, with the fix
    (src / "run.json").unlink()
    errors.clear()
    assert not window.bundles.import_folder(src)
    assert errors and "has not finished" in errors[0] and "Wait for the run to end" in errors[0]


def test_the_export_dialog_takes_one_process_per_gpu_found_and_keeps_what_the_user_typed(
        window: MainWindow, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from shiboken6 import Shiboken

    from segstudio.gui.loop.training import DeviceOption
    from segstudio.workspace.bundles import LaunchSpec

    def two_gpus(_token: object):  # noqa: ANN202 - the device detection job, on a machine with two GPUs
        yield (DeviceOption("auto", "Automatic"), DeviceOption("cuda:0", "A"), DeviceOption("cuda:1", "B"))

    monkeypatch.setattr("segstudio.gui.loop.device_combo.detect_devices_job", two_gpus)

    # the dialog asks the Training panel's device list to detect; the answer may come after the dialog is gone
    first = window.bundles.make_dialog()
    assert first is not None and first.nproc.value() == 1
    worker = getattr(window.training_panel.device, "_worker")  # noqa: B009 - the combo's detection job
    Shiboken.delete(first)
    qtbot.waitUntil(lambda: worker.done, timeout=60_000)
    # the next dialog takes one process per GPU found
    dlg = window.bundles.make_dialog()
    assert dlg is not None and dlg.export_button.isEnabled()
    assert dlg.launch_spec() == LaunchSpec(nproc_per_node=2, nnodes=1, gpus_per_node=2, cpus_per_node=16)
    assert "--nproc-per-node=2 --standalone" in dlg.command.toPlainText()
    dlg.nproc.setValue(1)  # the user's choice stays when the list is detected again
    dlg.nnodes.setValue(3)
    dlg.on_devices_detected(tuple(DeviceOption(f"cuda:{i}", "") for i in range(4)))
    assert dlg.nproc.value() == 1 and "--nnodes=3 --rdzv-backend=c10d" in dlg.command.toPlainText()
    dlg.deleteLater()
