"""Train → Report on Runs…: two tiny runs trained in the app on the bundled sample (with a hold-out: a run trained
on every image has nothing unseen to be scored on and is not offered), then the report written in the background
from the dialog's choice and opened; the dialog preselects the run picked in the Runs tab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QDialogButtonBox

from segstudio.gui.loop.report_view import ReportDialog, ReportRequest
from segstudio.gui.main_window import MainWindow
from segstudio.workspace import RunStatus


def _train_tiny(window: MainWindow, qtbot, *, epochs: int, holdout: int = 20) -> None:  # noqa: ANN001
    panel = window.training_panel
    panel.recipe.setCurrentIndex(panel.recipe.findData("lungs-lr"))
    panel.encoder.setCurrentText("resnet18")
    panel.epochs.setValue(epochs)
    panel.image_size.setValue(64)
    panel.batch_size.setValue(2)
    panel.holdout.setValue(holdout)  # the recipe trains on every image; a report scores each run on its hold-out
    panel.steps.setValue(2)
    panel.device.set_device("cpu")
    panel.threads.setValue(1)
    window.actions_["train_start"].trigger()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)


def test_report_on_two_runs_is_written_in_the_background_and_opened(window: MainWindow, qtbot,
                                                                      tmp_path: Path) -> None:
    reports = window.reports
    shown: list[str] = []
    reports._show_message = lambda text, _ms: shown.append(text)
    assert not reports.report_on_runs() and "train one first" in shown[-1]
    # a run trained on every image has nothing unseen to be scored on: said, and no dialog
    reports._ask = lambda *a: pytest.fail("no dialog for runs without a hold-out")
    _train_tiny(window, qtbot, epochs=1, holdout=0)
    assert not reports.report_on_runs() and "no hold-out" in shown[-1] and "Hold-out" in shown[-1]
    everything = window.review.workspace.runs.all()
    _train_tiny(window, qtbot, epochs=1)
    _train_tiny(window, qtbot, epochs=2)
    runs = [r for r in window.review.workspace.runs.all() if r.id != everything[0].id]  # the two with a hold-out
    assert len(runs) == 2 and all(r.status is RunStatus.FINISHED for r in runs)
    asked: list[tuple[list[str], str | None, Path]] = []
    out = tmp_path / "out" / "lungs-report"

    def ask(offered, selected, default_out):  # noqa: ANN001, ANN202
        asked.append(([r.id for r in offered], selected, default_out))
        return ReportRequest(runs=tuple(offered), worst=2, out=out.with_suffix(".html"), open_when_done=True)

    opened: list[QUrl] = []
    reports._ask, reports._open_url = ask, opened.append
    window.training_panel.history.select_run(runs[1].id)
    assert reports.report_on_runs()
    assert asked[0][0] == [r.id for r in runs] and asked[0][1] == runs[1].id
    assert asked[0][2].parent == window.review.workspace.folder / "reports" and asked[0][2].suffix == ".html"
    assert reports.progress.isVisible() and reports.stop_button.isVisible()
    qtbot.waitUntil(lambda: not reports.running(), timeout=120_000)
    html, csv_path, json_path = reports.last_written
    assert html == out.with_suffix(".html") and csv_path.is_file() and json_path.is_file()
    text = html.read_text(encoding="utf-8")
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(doc["runs"]) == 2 and text.count('<img src="data:image/png;base64,') == 2 * 2
    assert [u.toLocalFile() for u in opened] == [str(html)]
    assert "Report written" in shown[-1] and not reports.progress.isVisible()


def test_the_dialog_checks_the_selected_run_and_needs_one(window: MainWindow, qtbot, tmp_path: Path) -> None:
    _train_tiny(window, qtbot, epochs=1)
    _train_tiny(window, qtbot, epochs=1)
    runs = window.review.workspace.runs.all()
    dlg = ReportDialog(runs, selected=runs[0].id, default_out=tmp_path / "r", parent=window)
    qtbot.addWidget(dlg)
    ok = dlg.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert [r.id for r in dlg.chosen()] == [runs[0].id] and ok.isEnabled()
    dlg.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert dlg.chosen() == [] and not ok.isEnabled()
    dlg.list.item(1).setCheckState(Qt.CheckState.Checked)
    req = dlg.request()
    assert [r.id for r in req.runs] == [runs[1].id] and req.out == tmp_path / "r.html" and req.worst == 6
    everything = ReportDialog(runs, selected=None, default_out=tmp_path / "r.html", parent=window)
    qtbot.addWidget(everything)
    assert len(everything.chosen()) == 2  # nothing picked: every finished run
