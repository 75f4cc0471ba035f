"""The window's two central pages: the start screen (while nothing is open, or on File → Start Screen) and the
review page. The docks describe the open dataset, so they step aside on the start screen and come back as they
were."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QByteArray, QObject
from PySide6.QtWidgets import QDockWidget, QMainWindow, QStackedWidget, QWidget

from segstudio.gui.screen.session import SessionController
from segstudio.gui.window.preferences import SettingsStore
from segstudio.gui.window.start_screen import StartScreen


class PageController(QObject):
    def __init__(self, *, window: QMainWindow, pages: QStackedWidget, start_screen: StartScreen,
                 review_page: QWidget, docks: Sequence[QDockWidget], session: SessionController,
                 settings: SettingsStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window, self.pages, self.start_screen, self.review_page = window, pages, start_screen, review_page
        self.docks, self.session, self._settings = docks, session, settings
        self._layout_before_start: QByteArray | None = None
        start_screen.sig_back_requested.connect(self.show_review_page)
        session.sig_dataset_opened.connect(lambda _ds: self.show_review_page())

    def show_start_screen(self) -> None:
        """The start screen as the central page, its recent list read afresh; with a dataset open it leads back."""
        ds = self.session.dataset
        self.start_screen.set_back_target(ds.root.name if ds is not None else None)
        self.start_screen.set_recent(self._settings.value.recent_datasets)
        if ds is not None and self._layout_before_start is None:
            # the docks describe the open dataset: out of the way on the start screen, back as they were after it
            # (saveState keeps which tab of a tabified group was in front). Not at startup: hiding them there
            # changes the window's minimum size before the restored geometry applies.
            self._layout_before_start = self.window.saveState()
            for d in self.docks:
                d.hide()
        self.pages.setCurrentWidget(self.start_screen)

    def show_review_page(self) -> None:
        if self.session.dataset is not None:
            self.restore_docks()
            self.pages.setCurrentWidget(self.review_page)

    def restore_docks(self) -> None:
        """The review page's dock layout, if the start screen put it aside (also before the layout is saved)."""
        if self._layout_before_start is not None:
            self.window.restoreState(self._layout_before_start)
            self._layout_before_start = None
