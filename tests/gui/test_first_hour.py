"""Issue 21's first hour, through the real window on the real Montgomery data: the start screen, a dropped dataset
folder (as distributed: a README beside its one data folder), a predictions folder, the queue by disagreement, one
correction, a class colour changed in Preferences, then a restart that finds all of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from canvas_driver import drag
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.settings import load_settings
from segstudio.gui.main_window import MainWindow


def _drop(win: MainWindow, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPoint(win.width() // 2, win.height() // 2)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(win, QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                           Qt.KeyboardModifier.NoModifier))


def test_the_first_hour_on_montgomery(qtbot, show_window, montgomery: Path, montgomery_predictions: tuple[Path, str]) -> None:
    folder, worst = montgomery_predictions
    as_distributed = montgomery.parent  # montgomery_cxr/: README.md + data/

    win = show_window(size=(1300, 850))
    assert win.pages.currentWidget() is win.start_screen  # nothing open yet: the start screen

    _drop(win, as_distributed)
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=20_000)
    ds = win.session.dataset
    assert ds is not None and ds.root.resolve() == montgomery.resolve() and len(ds) == 40
    assert win.pages.currentWidget() is not win.start_screen

    assert win.opening.open_predictions(folder)
    assert win.review.wait_for_scoring(60_000)
    qtbot.waitUntil(lambda: len(win.review.cached_scores()) == 40, timeout=20_000)

    win.actions_["next_in_queue"].trigger()  # Q: the queue by disagreement with the folder's masks
    qtbot.waitUntil(lambda: win.session.current is not None and win.session.current.sample.id == worst,
                    timeout=10_000)

    win.tools.set_tool("brush")
    win.class_panel.select_class(1)
    win.brush_size.setValue(20)
    before = np.array(win.editor.mask.array)
    drag(win.canvas, [(60.0, 60.0), (110.0, 70.0), (160.0, 80.0)])
    corrected = np.array(win.editor.mask.array)
    assert (corrected != before).sum() > 300
    assert win.navigation.save_current() is not None

    dlg = win.preferences.show_preferences()
    dlg.set_class_colour("left lung", (10, 20, 30))
    dlg.apply()
    assert dict((c.name, c.colour) for c in win.session.dataset.schema)["left lung"] == (10, 20, 30)
    dlg.close()
    win.close()

    recent = load_settings().recent_datasets[0]  # what the start screen offers first after the restart
    assert recent in (str(as_distributed.resolve()), str(montgomery.resolve()))
    again = show_window(size=(1300, 850))
    assert again.pages.currentWidget() is again.start_screen
    assert again.open_dataset(recent) is not None  # what clicking that entry does
    qtbot.waitUntil(lambda: again.editor.target is not None, timeout=20_000)
    ws = again.review.workspace
    assert ws is not None
    saved = ws.versions.load_latest(worst)
    assert saved is not None and np.array_equal(saved, corrected)  # the correction survived the restart
    assert dict((c.name, c.colour) for c in again.session.dataset.schema)["left lung"] == (10, 20, 30)
    assert again.review.reviews()[worst].status.value == "corrected"  # the decision the save recorded
    again.close()
