"""An uncaught exception becomes a dialog with the traceback and a log entry; the app keeps running."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.gui.common import errors


def test_uncaught_exception_shows_dialog_with_traceback(qtbot, caplog) -> None:
    errors.install_excepthook()
    seen: list[tuple[str, str]] = []

    def close_box() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append((box.text(), box.detailedText()))
            box.done(0)
        else:
            QTimer.singleShot(20, close_box)

    QTimer.singleShot(20, close_box)
    try:
        raise ValueError("brush exploded")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    text, details = seen[0]
    assert "ValueError: brush exploded" in text and "still running" in text
    assert "Traceback" in details and "brush exploded" in details
    assert any("uncaught exception" in r.getMessage() for r in caplog.records)
    # the event loop still runs afterwards
    fired: list[int] = []
    QTimer.singleShot(0, lambda: fired.append(1))
    qtbot.waitUntil(lambda: bool(fired), timeout=2000)
