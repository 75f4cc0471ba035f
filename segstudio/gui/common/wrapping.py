"""A scroll area's content that keeps its word-wrapped labels whole.

A ``QScrollArea`` with ``widgetResizable`` sizes its content to the viewport, down to the content's minimum size.
That minimum is computed without the content's height-for-width, so word-wrapped labels (a reason that takes three
lines at the panel's width) are squeezed to one line and clipped instead of the area scrolling. This content widget
asks its layout how tall it must be at its current width whenever it is resized or its text changes, and makes that
its minimum height: the labels keep all their lines and the scroll bar appears when they do not fit.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QWidget

__all__ = ["WrappingContent"]


class WrappingContent(QWidget):
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.fit_height()

    def event(self, event: QEvent) -> bool:
        # a child's text changed (a label's sizeHint moved): the layout asks again on its next activation
        if event.type() == QEvent.Type.LayoutRequest:
            handled = super().event(event)
            self.fit_height()
            return handled
        return super().event(event)

    def fit_height(self) -> None:
        lay = self.layout()
        if lay is None or not lay.hasHeightForWidth():
            return
        need = lay.heightForWidth(self.width())
        if need > 0 and need != self.minimumHeight():
            self.setMinimumHeight(need)
