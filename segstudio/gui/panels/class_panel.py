"""Class list with colour, name, visibility and pixel count per class, plus the overlay opacity slider."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.types import ClassSchema

COL_NAME, COL_PIXELS = 0, 1


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


class ClassPanel(QWidget):
    sig_visibility_changed = Signal(int, bool)  # class id, visible
    sig_opacity_changed = Signal(float)  # 0..1
    sig_overlay_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("classPanel")
        self._schema: ClassSchema | None = None

        self.show_overlay = QCheckBox("Show GT overlay")
        self.show_overlay.setChecked(True)
        self.show_overlay.toggled.connect(self.sig_overlay_toggled)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("Overlay opacity")
        self.opacity_label = QLabel("50 %")
        self.opacity_label.setMinimumWidth(40)
        self.opacity.valueChanged.connect(self._on_opacity_value_changed)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Class", "Pixels"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.itemChanged.connect(self._on_tree_item_changed)

        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self.opacity, 1)
        row.addWidget(self.opacity_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.show_overlay)
        lay.addLayout(row)
        lay.addWidget(self.tree, 1)

    def set_schema(self, schema: ClassSchema, *, hidden: set[int] | None = None) -> None:
        self._schema = schema
        hidden = hidden or set()
        with QSignalBlocker(self.tree):
            self.tree.clear()
            for c in schema:
                item = QTreeWidgetItem([c.name, ""])
                item.setData(COL_NAME, Qt.ItemDataRole.UserRole, c.id)
                item.setIcon(COL_NAME, _swatch(c.colour))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(COL_NAME, Qt.CheckState.Unchecked if c.id in hidden else Qt.CheckState.Checked)
                item.setTextAlignment(COL_PIXELS, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(COL_NAME, f"id {c.id}" + (" (ignored)" if c.ignore else ""))
                self.tree.addTopLevelItem(item)
            self.tree.resizeColumnToContents(COL_NAME)

    def set_pixel_counts(self, counts: dict[int, int] | None) -> None:
        with QSignalBlocker(self.tree):
            for i in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(i)
                cid = item.data(COL_NAME, Qt.ItemDataRole.UserRole)
                item.setText(COL_PIXELS, "—" if counts is None else f"{counts.get(cid, 0):,}")

    def set_opacity(self, value: float) -> None:
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(round(value * 100))
        self.opacity_label.setText(f"{round(value * 100)} %")

    def visible_ids(self) -> set[int]:
        out = set()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.checkState(COL_NAME) == Qt.CheckState.Checked:
                out.add(int(item.data(COL_NAME, Qt.ItemDataRole.UserRole)))
        return out

    def set_class_visible(self, class_id: int, visible: bool) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == class_id:
                item.setCheckState(COL_NAME, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)

    def _on_opacity_value_changed(self, v: int) -> None:
        self.opacity_label.setText(f"{v} %")
        self.sig_opacity_changed.emit(v / 100.0)

    def _on_tree_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == COL_NAME:
            cid = int(item.data(COL_NAME, Qt.ItemDataRole.UserRole))
            self.sig_visibility_changed.emit(cid, item.checkState(COL_NAME) == Qt.CheckState.Checked)
