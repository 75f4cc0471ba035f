"""Class list: colour, name, visibility, lock and pixel count per class; the selected row is the painting class."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.types import ClassSchema

COL_NAME, COL_LOCK, COL_PIXELS = 0, 1, 2


def _swatch(rgb: tuple[int, int, int]) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


def class_pixel_counts(mask: np.ndarray, schema: ClassSchema) -> dict[int, int]:
    """Pixels per class id in ``mask`` (index map or uint64 bitmask)."""
    if schema.multilabel:
        return {c.id: int(np.count_nonzero(mask & np.uint64(1 << c.id))) for c in schema}
    counts = np.bincount(mask.ravel(), minlength=schema.max_id + 1)
    return {c.id: int(counts[c.id]) if c.id < counts.size else 0 for c in schema}


def area_text(pixels: int, spacing: tuple[float, float] | None) -> str:
    """``"35,644"``, or ``"35,644 px · 1,234.5 mm²"`` when the pixel spacing is known."""
    if spacing is None:
        return f"{pixels:,}"
    return f"{pixels:,} px · {pixels * spacing[0] * spacing[1]:,.1f} mm²"


def _key_for(schema: ClassSchema, row: int, class_id: int) -> int | None:
    if not schema.multilabel:
        return class_id if 0 <= class_id <= 9 else None
    return (row + 1) % 10 if row < 10 else None


class ClassPanel(QWidget):
    sig_visibility_changed = Signal(int, bool)  # class id, visible
    sig_lock_changed = Signal(int, bool)  # class id, locked
    sig_class_selected = Signal(int)  # the class tools paint with

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("classPanel")
        self._schema: ClassSchema | None = None

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Class", "Lock", "Pixels"])
        self.tree.setToolTip("Tick to show a class; Lock protects it from every tool; "
                             "select a row (or press its number key) to paint with it")
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.itemChanged.connect(self._on_tree_item_changed)
        self.tree.currentItemChanged.connect(self._on_tree_current_changed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tree, 1)

    def set_schema(self, schema: ClassSchema, *, hidden: set[int] | None = None) -> None:
        self._schema = schema
        hidden = hidden or set()
        with QSignalBlocker(self.tree):
            self.tree.clear()
            for i, c in enumerate(schema):
                item = QTreeWidgetItem([c.name, "", ""])
                item.setData(COL_NAME, Qt.ItemDataRole.UserRole, c.id)
                item.setIcon(COL_NAME, _swatch(c.colour))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(COL_NAME, Qt.CheckState.Unchecked if c.id in hidden else Qt.CheckState.Checked)
                item.setCheckState(COL_LOCK, Qt.CheckState.Unchecked)
                key = _key_for(schema, i, c.id)
                item.setToolTip(COL_NAME, f"id {c.id}" + (f" · key {key}" if key is not None else ""))
                item.setTextAlignment(COL_PIXELS, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c.ignore:
                    item.setToolTip(COL_NAME, item.toolTip(COL_NAME) + " (ignored)")
                self.tree.addTopLevelItem(item)
            self.tree.resizeColumnToContents(COL_NAME)
            self.tree.resizeColumnToContents(COL_LOCK)

    def set_pixel_counts(self, counts: dict[int, int] | None, *,
                         spacing: tuple[float, float] | None = None) -> None:
        """Pixels per class; with the image's ``spacing`` ((row, column) mm per pixel) the area in mm² too."""
        with QSignalBlocker(self.tree):
            for item in self._items():
                cid = item.data(COL_NAME, Qt.ItemDataRole.UserRole)
                item.setText(COL_PIXELS, "—" if counts is None else area_text(counts.get(cid, 0), spacing))

    def visible_ids(self) -> set[int]:
        out = set()
        for item in self._items():
            if item.checkState(COL_NAME) == Qt.CheckState.Checked:
                out.add(int(item.data(COL_NAME, Qt.ItemDataRole.UserRole)))
        return out

    def set_class_visible(self, class_id: int, visible: bool) -> None:
        for item in self._items():
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == class_id:
                item.setCheckState(COL_NAME, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)

    def locked_ids(self) -> frozenset[int]:
        out = set()
        for item in self._items():
            if item.checkState(COL_LOCK) == Qt.CheckState.Checked:
                out.add(int(item.data(COL_NAME, Qt.ItemDataRole.UserRole)))
        return frozenset(out)

    def select_class(self, class_id: int) -> bool:
        """Make ``class_id`` the painting class (number keys); False when the schema has no such class."""
        for item in self._items():
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == class_id:
                self.tree.setCurrentItem(item)
                return True
        return False

    def select_nth(self, n: int) -> bool:
        """Select the n-th listed class (0-based), the number-key order."""
        item = self.tree.topLevelItem(n) if 0 <= n < self.tree.topLevelItemCount() else None
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        return True

    def _items(self) -> Iterator[QTreeWidgetItem]:
        """The class rows, in the listed order."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None:
                yield item

    def select_by_key(self, digit: int) -> bool:
        """Number key ``digit``: the class with that id (semantic), or the digit-th class (multi-label; 0 = 10th)."""
        if self._schema is None:
            return False
        if not self._schema.multilabel:
            return self.select_class(digit)
        return self.select_nth((digit - 1) % 10)

    def selected_class(self) -> int | None:
        item = self.tree.currentItem()
        return None if item is None else int(item.data(COL_NAME, Qt.ItemDataRole.UserRole))

    def _on_tree_current_changed(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if current is not None:
            self.sig_class_selected.emit(int(current.data(COL_NAME, Qt.ItemDataRole.UserRole)))

    def _on_tree_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        cid = int(item.data(COL_NAME, Qt.ItemDataRole.UserRole))
        if column == COL_NAME:
            self.sig_visibility_changed.emit(cid, item.checkState(COL_NAME) == Qt.CheckState.Checked)
        elif column == COL_LOCK:
            self.sig_lock_changed.emit(cid, item.checkState(COL_LOCK) == Qt.CheckState.Checked)
