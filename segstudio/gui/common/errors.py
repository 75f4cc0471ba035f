"""Uncaught exceptions become a dialog with the traceback; the app keeps running (DESIGN rule 6)."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.core.logsetup import log_file

log = logging.getLogger(__name__)


class _Relay(QObject):
    # Exceptions may be raised off the GUI thread: a queued signal brings them to it.
    sig_raised = Signal(str, str)


_relay: _Relay | None = None
_previous_hook = sys.excepthook


def show_error(title: str, message: str, details: str = "") -> None:
    """A modal error box; ``details`` (e.g. a traceback) sits behind 'Show Details…'."""
    app = QApplication.instance()
    if app is None:
        return
    box = QMessageBox(QApplication.activeWindow())
    box.setObjectName("errorDialog")
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.exec()


def _on_raised(summary: str, details: str) -> None:
    show_error(
        "segstudio: unexpected error",
        f"{summary}\n\nYour work is kept; the app is still running.\nDetails are in the log: {log_file()}",
        details,
    )


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        _previous_hook(exc_type, exc, tb)
        return
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("uncaught exception:\n%s", details)
    if _relay is not None:
        _relay.sig_raised.emit(f"{exc_type.__name__}: {exc}", details)


def install_excepthook() -> None:
    global _relay
    if _relay is None:
        _relay = _Relay()
        _relay.sig_raised.connect(lambda s, d: QTimer.singleShot(0, lambda: _on_raised(s, d)))
    sys.excepthook = _hook
