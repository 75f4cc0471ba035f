"""The start screen, drag and drop onto the window, and the window title (issue 21)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from canvas_driver import drag
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.settings import AppSettings
from segstudio.gui.window import drop
from segstudio.gui.window.drop import DropAs
from segstudio.workspace import ReviewStatus, Workspace


def _copy_sample(sample_dataset_path: Path, dest: Path) -> Path:
    shutil.copytree(sample_dataset_path, dest, ignore=shutil.ignore_patterns("*.segstudio"))
    return dest


def _window(qtbot, settings: AppSettings | None = None):  # noqa: ANN001, ANN202
    from segstudio.gui.main_window import MainWindow

    win = MainWindow(settings=settings or AppSettings())
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


def _mime(path: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def _drop(win, path: Path) -> None:  # noqa: ANN001
    """What a file manager's drop delivers: a drag-enter, then the drop, on the window."""
    mime = _mime(path)
    pos = QPoint(win.width() // 2, win.height() // 2)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted()
    assert win.drops.overlay.isVisible()
    ev = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, ev)
    assert not win.drops.overlay.isVisible()


def _finish(win) -> None:  # noqa: ANN001
    win.training.stop_and_wait(60)
    win.predictions_view.inference.stop_and_wait(60)


def test_start_screen_lists_recent_datasets_with_progress_and_opens_one(qtbot, tmp_path: Path,
                                                                        sample_dataset_path: Path) -> None:
    reviewed = _copy_sample(sample_dataset_path, tmp_path / "reviewed")
    fresh = _copy_sample(sample_dataset_path, tmp_path / "fresh")
    with Workspace.for_dataset(reviewed) as ws:
        ws.reviews.set("cxr/MCUCXR_0004_0.png", ReviewStatus.ACCEPTED)
        ws.reviews.set("cxr/MCUCXR_0038_0.png", ReviewStatus.FLAGGED)
    missing = str(tmp_path / "gone")
    win = _window(qtbot, AppSettings(recent_datasets=(str(reviewed), str(fresh), missing)))
    screen = win.start_screen
    assert win.pages.currentWidget() is screen  # nothing open: the start screen is the central page
    assert win.windowTitle() == "segstudio"
    screen.wait_for_progress()
    qtbot.waitUntil(lambda: len(screen.infos) == 3, timeout=5000)
    texts = [screen.recent.item(i).text() for i in range(screen.recent.count())]
    assert "2 reviewed (1 accepted, 1 flagged)" in texts[0]
    assert "not reviewed yet" in texts[1]
    assert "not found" in texts[2]
    assert not screen.recent.item(2).flags() & Qt.ItemFlag.ItemIsEnabled
    # reading the progress took no lock and wrote nothing: the window opens the workspace writable
    screen.recent.itemClicked.emit(screen.recent.item(0))
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    assert win.session.dataset is not None and win.session.dataset.root == reviewed.resolve()
    assert not win.review.read_only
    assert win.pages.currentWidget() is win.split and win.docks.browser.isVisible()
    # File → Start Screen mid-session, and back
    win.actions_["start_screen"].trigger()
    assert win.pages.currentWidget() is screen and screen.back_button.isVisibleTo(screen)
    assert not win.docks.browser.isVisible()  # the docks describe the dataset: hidden on the start screen
    screen.back_button.click()
    assert win.pages.currentWidget() is win.split and win.docks.browser.isVisible()
    _finish(win)


def test_start_screen_opens_the_bundled_sample(qtbot, sample_dataset_path: Path) -> None:
    win = _window(qtbot)
    assert win.start_screen.empty_label.isVisibleTo(win.start_screen)
    win.start_screen.sample_button.click()
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    assert win.session.dataset is not None
    assert win.session.dataset.root.resolve() == sample_dataset_path.resolve()
    _finish(win)


def test_dropping_a_dataset_folder_opens_it(qtbot, tmp_path: Path, sample_dataset_path: Path) -> None:
    lungs = _copy_sample(sample_dataset_path, tmp_path / "lungs")
    win = _window(qtbot)
    _drop(win, lungs)
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    assert win.session.dataset is not None and win.session.dataset.root == lungs.resolve()
    assert win.settings.recent_datasets[0] == str(lungs.resolve())
    _finish(win)


def _predictions_for(dataset: Path, out: Path) -> Path:
    out.mkdir()
    for img in sorted((dataset / "cxr").glob("*.png")):
        left = cv2.imread(str(dataset / "leftMask" / img.name), cv2.IMREAD_GRAYSCALE) > 127
        pred = np.zeros(left.shape, np.uint8)
        pred[left] = 1
        cv2.imwrite(str(out / img.name), pred)
    return out


@pytest.mark.parametrize("answer", [DropAs.PREDICTIONS, DropAs.CANCEL])
def test_dropping_a_predictions_folder_mid_session_asks_and_sets_the_prediction_layer(
        qtbot, tmp_path: Path, sample_dataset_path: Path, monkeypatch: pytest.MonkeyPatch, answer: DropAs) -> None:
    lungs = _copy_sample(sample_dataset_path, tmp_path / "lungs")
    preds = _predictions_for(lungs, tmp_path / "preds")
    asked = []
    monkeypatch.setattr(drop, "ask_dataset_or_predictions",
                        lambda _p, folder, *, dataset_name, matches: asked.append((folder, dataset_name, matches))
                        or answer)
    win = _window(qtbot)
    assert win.open_dataset(lungs) is not None
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    assert win.review.predictions is None
    _drop(win, preds)
    assert asked == [(preds, "lungs", 8)]  # a folder of PNGs is also an image folder: ambiguous, so asked
    if answer is DropAs.PREDICTIONS:
        assert win.review.predictions is not None and len(win.review.predictions) == 8
        assert win.session.dataset is not None and win.session.dataset.root == lungs.resolve()
        qtbot.waitUntil(lambda: win.editor.target is not None and win.editor.target.prediction is not None,
                        timeout=10_000)
    else:
        assert win.review.predictions is None
    _finish(win)


def test_classify_drop(tmp_path: Path, sample_dataset_path: Path) -> None:
    from segstudio.datasets.registry import open_dataset

    lungs = _copy_sample(sample_dataset_path, tmp_path / "lungs")
    ds = open_dataset(lungs)
    preds = _predictions_for(lungs, tmp_path / "preds")
    assert drop.classify_drop(preds, None) is DropAs.DATASET  # nothing open: a folder is a dataset
    assert drop.classify_drop(preds, ds) is DropAs.ASK
    assert drop.classify_drop(lungs, ds) is DropAs.DATASET  # the open dataset itself: reopen, never predictions
    (tmp_path / "other").mkdir()
    assert drop.classify_drop(tmp_path / "other", ds) is DropAs.DATASET  # no mask named like a sample
    npz = tmp_path / "npz_preds"
    npz.mkdir()
    for s in ds.samples:
        np.savez(npz / (Path(s.id).stem + ".npz"), mask=np.zeros((4, 4), np.uint8))
    assert drop.classify_drop(npz, ds) is DropAs.PREDICTIONS  # no dataset format reads it: no question


def test_title_names_the_dataset_and_shows_unsaved_state(qtbot, tmp_path: Path, sample_dataset_path: Path) -> None:
    lungs = _copy_sample(sample_dataset_path, tmp_path / "lungs")
    win = _window(qtbot)
    ds = win.open_dataset(lungs)
    assert ds is not None
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    title = win.windowTitle()
    assert f"lungs ({ds.format_name})" in title and "[*]" in title
    assert not win.isWindowModified()
    win.tools.set_tool("brush")
    drag(win.canvas, [(100, 100), (140, 120), (180, 140)])
    assert win.editor.dirty
    assert win.isWindowModified()
    win.save_now()
    assert not win.editor.dirty and not win.isWindowModified()
    _finish(win)
