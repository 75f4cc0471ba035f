"""File → Export…, Write Back and Restore Backup through the window (issue 14): a correction painted on the canvas
is found in the exported dataset; write-back replaces the GT files (backup kept) and restore puts them back; the
source GT files are byte-identical after every export. The dialogs are filled programmatically and accepted; no
modal loop blocks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from canvas_driver import drag

from segstudio.datasets import open_dataset
from segstudio.gui.export.export_dialog import ExportDialog, format_choices
from segstudio.gui.export.export_view import format_eta
from segstudio.gui.export.writeback_dialogs import RestoreDialog, WritebackDialog
from segstudio.gui.main_window import MainWindow
from segstudio.gui.screen.status import WORKSPACE_WRITE_ACTIONS
from segstudio.workspace.export import MANIFEST_NAME, REPORT_NAME


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _paint_and_save(win: MainWindow) -> tuple[str, np.ndarray]:
    """A class-2 stroke in a corner the GT leaves as background, saved as a version; (sample id, the mask)."""
    win.tools.set_tool("brush")
    win.class_panel.select_class(2)
    win.brush_size.setValue(16)
    base = np.array(win.editor.mask.array)
    drag(win.canvas, [(40.0, 40.0), (70.0, 50.0), (100.0, 60.0)])
    painted = np.array(win.editor.mask.array)
    assert (painted != base).sum() > 300
    rec = win.navigation.save_current()
    assert rec is not None
    return win.session.current.sample.id, painted


def _by_stem(ds, sample_id: str):  # noqa: ANN001, ANN202
    stem = Path(sample_id).stem
    return next(s for s in ds if Path(s.id).stem == stem)


def test_export_through_the_view_carries_the_correction(qtbot, window: MainWindow, tmp_path: Path,
                                                        sample_dataset_path: Path) -> None:
    before = _digest(sample_dataset_path)
    sid, painted = _paint_and_save(window)

    dlg = window.export_view.show_export_dialog()
    assert isinstance(dlg, ExportDialog) and dlg.isVisible()
    out = tmp_path / "export"
    dlg.set_format("paired-folders")
    dlg.set_destination(out)
    dlg.refresh()
    assert dlg.dest_status.ok and dlg.summary.ok
    assert dlg.summary.text.text().startswith("8 images, 1 corrected, 3 classes → paired-folders")
    with qtbot.waitSignal(window.export_view.sig_export_finished, timeout=60_000) as blocker:
        dlg.accept()
    finished = blocker.args[0]
    assert finished.out == out.resolve() and finished.counts["correction"] == 1
    assert not window.export_view.progress.isVisible()
    assert (out / MANIFEST_NAME).is_file() and (out / REPORT_NAME).is_file()
    assert sid in (out / REPORT_NAME).read_text()

    exported = open_dataset(out)
    assert len(exported) == 8 and exported.schema.names == window.session.dataset.schema.names
    assert np.array_equal(exported.load_gt(_by_stem(exported, sid)), painted)
    assert _digest(sample_dataset_path) == before

    # the result offers to open the export in the window
    box = window.export_view.result_box
    assert box is not None and box.isVisible()
    open_button = next(b for b in box.buttons() if b.text() == "Open the Export")
    open_button.click()
    qtbot.waitUntil(lambda: window.session.dataset is not None and window.session.dataset.root == out.resolve(),
                    timeout=10_000)
    assert _digest(sample_dataset_path) == before


def test_cancelled_export_leaves_nothing(qtbot, window: MainWindow, tmp_path: Path) -> None:
    dlg = ExportDialog(window.review.dataset, window.review.workspace, destination=tmp_path / "never")
    qtbot.addWidget(dlg)
    dlg.set_format("paired-folders")
    dlg.refresh()
    assert dlg.plan is not None
    view = window.export_view
    view.start_export(dlg.plan)
    view.cancel()
    qtbot.waitUntil(lambda: view.worker is not None and view.worker.done, timeout=60_000)
    assert view.worker.outcome == "cancelled"
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]  # no temp folder left either
    assert "cancelled" in window.statusBar().currentMessage()


def test_dialog_checks_as_you_type(qtbot, window: MainWindow, tmp_path: Path, sample_dataset_path: Path) -> None:
    dlg = ExportDialog(window.review.dataset, window.review.workspace, destination=tmp_path / "new")
    qtbot.addWidget(dlg)
    dlg.set_format("coco")
    dlg.refresh()
    assert dlg.export_button.isEnabled()
    assert "→ coco, compressed RLE" in dlg.summary.text.text()
    dlg.set_option("encoding", "polygon")
    assert dlg.request().options["encoding"] == "polygon"

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    dlg.set_destination(busy)
    dlg.refresh()
    assert not dlg.dest_status.ok and "not empty" in dlg.dest_status.text.text()
    assert not dlg.export_button.isEnabled()
    dlg.set_destination(sample_dataset_path / "exported")
    dlg.refresh()
    assert not dlg.dest_status.ok and "dataset" in dlg.dest_status.text.text()
    dlg.accept()  # refused: stays open, nothing planned
    assert dlg.result() != ExportDialog.DialogCode.Accepted and dlg.plan is None

    # plan_export's errors are shown in the dialog, not raised
    dlg.set_destination(tmp_path / "new")
    dlg.set_statuses(set())
    dlg.refresh()
    assert not dlg.summary.ok and "No image matches" in dlg.summary.text.text()
    assert not dlg.export_button.isEnabled()

    # classes: leave one out, merge two by name
    dlg.set_statuses({"unreviewed"})
    dlg.set_class("left lung", export_as="lung")
    dlg.set_class("right lung", export_as="lung")
    dlg.refresh()
    req = dlg.request()
    assert dict(req.rename) == {"left lung": "lung", "right lung": "lung"} and req.classes is None
    assert "2 classes" in dlg.summary.text.text()
    assert dlg.class_table.item(2, 2).text() == "merged into 'lung'"
    dlg.set_class("right lung", kept=False, export_as="right lung")
    dlg.refresh()
    assert dlg.request().classes == ("background", "left lung")


def test_formats_that_cannot_hold_multilabel_are_disabled(qtbot, sample_dataset_path: Path, tmp_path: Path) -> None:
    ds = open_dataset(sample_dataset_path, multilabel=True)
    choices = {c.name: c for c in format_choices(ds)}
    assert not choices["paired-folders"].enabled and "multi-label" in choices["paired-folders"].reason
    assert choices["class-folders"].enabled
    dlg = ExportDialog(ds, None, destination=tmp_path / "ml")
    qtbot.addWidget(dlg)
    model = dlg.format_box.model()
    row = dlg.format_box.findData("paired-folders")
    assert not model.item(row).isEnabled() and "multi-label" in model.item(row).toolTip()
    assert dlg.format_name() is not None and choices[dlg.format_name()].enabled


def test_write_back_and_restore_on_a_copy(qtbot, show_window, tmp_path: Path, sample_dataset_path: Path) -> None:
    copy = tmp_path / "lungs"
    shutil.copytree(sample_dataset_path, copy)
    original = _digest(copy)
    bundled = _digest(sample_dataset_path)
    win = show_window(copy)
    try:
        sid, painted = _paint_and_save(win)
        view = win.export_view
        assert win.actions_["writeback"].isEnabled() and win.actions_["export"].isEnabled()

        view.start_writeback()
        qtbot.waitUntil(lambda: isinstance(view.dialog, WritebackDialog), timeout=60_000)
        confirm = view.dialog
        assert confirm.table.rowCount() == 1
        assert confirm.table.item(0, 0).text() == f"rightMask/{Path(sid).name}"
        assert "backups" in confirm.backup.text.text()
        with qtbot.waitSignal(view.sig_writeback_finished, timeout=60_000):
            confirm.accept()
        changed = {k for k, v in _digest(copy).items() if original.get(k) != v}
        assert changed == {f"rightMask/{Path(sid).name}"}
        reread = open_dataset(copy)
        assert np.array_equal(reread.load_gt(reread.get(sid)), painted)

        restore = view.show_restore_dialog()
        assert isinstance(restore, RestoreDialog) and restore.table.rowCount() == 1
        assert restore.table.item(0, 1).text() == "1"
        with qtbot.waitSignal(view.sig_restored, timeout=60_000) as blocker:
            restore.accept()
        assert len(blocker.args[0].restored) == 1
        assert _digest(copy) == original
        assert _digest(sample_dataset_path) == bundled
    finally:
        win.training.stop_and_wait(60)
        win.predictions_view.inference.stop_and_wait(60)
        win.export_view.stop_and_wait(60)


def test_read_only_allows_export_not_write_back() -> None:
    assert "writeback" in WORKSPACE_WRITE_ACTIONS and "restore_backup" in WORKSPACE_WRITE_ACTIONS
    assert "export" not in WORKSPACE_WRITE_ACTIONS


@pytest.mark.parametrize(("s", "text"), [(None, ""), (4.4, "about 4 s left"), (125, "about 2 min 05 s left"),
                                         (7300, "about 2 h 01 min left")])
def test_format_eta(s: float | None, text: str) -> None:
    assert format_eta(s) == text
