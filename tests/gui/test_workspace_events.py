"""The window follows the workspace's own events: a review or a current model changed through the workspace API —
from the GUI thread or from a worker thread, as a command-line tool or a background job would — shows in the
window, and opening a workspace folder opens that workspace."""

from __future__ import annotations

import threading
from pathlib import Path

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus


def _in_thread(fn) -> None:  # noqa: ANN001
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def test_a_review_set_through_the_workspace_shows_in_the_browser(window: MainWindow, qtbot) -> None:
    ws, ds = window.review.workspace, window.session.dataset
    sid = ds.samples[3].id
    with qtbot.waitSignal(window.review.sig_review_changed, timeout=5000) as blocker:
        _in_thread(lambda: ws.reviews.set(sid, ReviewStatus.FLAGGED, comment="odd border", reviewer="script"))
    assert blocker.args[0] == sid and blocker.args[1].status is ReviewStatus.FLAGGED
    assert window.browser.model_.review(sid).status is ReviewStatus.FLAGGED


def test_a_model_chosen_through_the_registry_reaches_the_training_panel(window: MainWindow, qtbot,
                                                                         tmp_path: Path) -> None:
    ws = window.review.workspace
    ckpt = ws.folder / "runs" / "outside" / "checkpoints" / "best"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    with qtbot.waitSignal(window.training.sig_model_chosen, timeout=5000) as blocker:
        _in_thread(lambda: ws.models.adopt(ckpt, run_id="", reason="chosen by a script"))
    assert blocker.args[0] == ckpt
    qtbot.waitUntil(lambda: window.training_panel.model_history.tree.topLevelItemCount() == 1, timeout=5000)
    assert "chosen by a script" in window.training_panel.model_history.tree.topLevelItem(0).text(6)
    assert window.training_panel.model_label.toolTip() == str(ckpt)


def test_opening_a_workspace_folder_opens_that_workspace(show_window, sample_dataset_path: Path,
                                                         tmp_path: Path) -> None:
    from segstudio.datasets.registry import open_dataset
    from segstudio.workspace import Workspace

    ds = open_dataset(sample_dataset_path)
    elsewhere = tmp_path / "my-review.segstudio"
    with Workspace(elsewhere, dataset_root=ds.root) as ws:
        ws.save_settings(ws.settings.replace(dataset_format=ds.format_name))
        ws.reviews.set(ds.samples[0].id, ReviewStatus.ACCEPTED, reviewer="earlier")
    win = show_window(elsewhere)
    assert win.review.workspace.folder == elsewhere.resolve()
    assert win.review.review(ds.samples[0].id).status is ReviewStatus.ACCEPTED
