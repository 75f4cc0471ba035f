"""Two synchronised canvases side by side (GT | prediction, or before | after) that zoom and pan together."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from segstudio.gui.common.view_modes import VIEW_MODES
from segstudio.gui.screen.canvas import ImageCanvas

__all__ = ["SECOND_LAYER", "VIEW_MODES", "SplitView"]

SECOND_LAYER = "second"


def _titled(title: QLabel, canvas: ImageCanvas) -> QWidget:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(0)
    title.setObjectName("paneTitle")
    title.setAlignment(Qt.AlignmentFlag.AlignCenter)
    lay.addWidget(title)
    lay.addWidget(canvas, 1)
    return box


class SplitView(QSplitter):
    """``primary`` is the editable canvas; ``secondary`` mirrors its view and shows one comparison layer."""

    def __init__(self, primary: ImageCanvas, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("splitView")
        self.primary = primary
        self.secondary = ImageCanvas()
        self.secondary.setObjectName("secondaryCanvas")
        self.primary_title = QLabel("GT (editable)")
        self.secondary_title = QLabel("Prediction")
        self._left = _titled(self.primary_title, primary)
        self._right = _titled(self.secondary_title, self.secondary)
        self.addWidget(self._left)
        self.addWidget(self._right)
        self.setChildrenCollapsible(False)
        self._syncing = False
        self.mode = "single"
        primary.sig_view_changed.connect(lambda: self._sync(primary, self.secondary))
        self.secondary.sig_view_changed.connect(lambda: self._sync(self.secondary, primary))
        self.set_mode("single")

    def set_mode(self, mode: str) -> None:
        if mode not in VIEW_MODES:
            raise ValueError(f"Unknown view mode {mode!r}; valid: {', '.join(VIEW_MODES)}")
        self.mode = mode
        split = mode != "single"
        self._right.setVisible(split)
        self.primary_title.setVisible(split)
        if mode == "gt|pred":
            self.primary_title.setText("GT (editable)")
            self.secondary_title.setText("Prediction")
        elif mode == "before|after":
            self.primary_title.setText("After (editable)")
            self.secondary_title.setText("Before (as opened)")
        if split:
            self.setSizes([1, 1])
            self._sync(self.primary, self.secondary)

    def _sync(self, src: ImageCanvas, dst: ImageCanvas) -> None:
        if self._syncing or self.mode == "single":
            return
        self._syncing = True
        try:
            dst.copy_view_from(src)
        finally:
            self._syncing = False
