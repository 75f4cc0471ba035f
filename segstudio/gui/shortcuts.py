"""Help → Keyboard Shortcuts: a table generated from the actions table, so it is never out of date."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.gui.actions import shortcut_rows

EXTRA_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Classes", "Select class by number (semantic: the class id; multi-label: the n-th class)", "0 … 9"),
    ("Canvas", "Pan", "Middle drag, or Space + drag while editing"),
    ("Canvas", "Window / level", "Right drag in Pan mode"),
    ("Canvas", "Erase with the brush", "Right drag while painting"),
    ("Canvas", "Click to Segment: a point on / not on the object, a box", "Click / Shift+click or right-click / drag"),
    ("Canvas", "Zoom around the cursor", "Mouse wheel"),
)


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(640, 640)
        rows = shortcut_rows() + list(EXTRA_ROWS)
        table = QTableWidget(len(rows), 3, self)
        table.setObjectName("shortcutsTable")
        table.setHorizontalHeaderLabels(["Menu", "Action", "Keys"])
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
