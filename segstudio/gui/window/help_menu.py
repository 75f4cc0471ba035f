"""The Help menu: keyboard shortcuts, the getting-started tour, about, the log folder."""

from __future__ import annotations

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QWidget

from segstudio.core.logsetup import log_file
from segstudio.gui.shortcuts import ShortcutsDialog
from segstudio.gui.window.about import AboutDialog
from segstudio.gui.window.tour import Tour


class HelpController(QObject):
    def __init__(self, *, window: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window = window  # the dialogs' parent, and what the tour walks over
        self.tour: Tour | None = None

    def show_about(self) -> None:
        AboutDialog(self.window).exec()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.window).exec()

    def show_tour(self) -> Tour:
        """Help → Getting Started Tour: five non-modal steps over the window."""
        if self.tour is not None and self.tour.active:
            self.tour.skip()
        self.tour = Tour(self.window)
        self.tour.start()
        return self.tour

    def open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file().parent)))
