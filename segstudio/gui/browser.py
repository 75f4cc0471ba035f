"""Sample browser: a virtual list model over the dataset's samples (rows are never materialised as widgets)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from segstudio.datasets.base import Dataset

SampleIdRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class SampleListModel(QAbstractListModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset: Dataset | None = None

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.beginResetModel()
        self._dataset = dataset
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() or self._dataset is None else len(self._dataset)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self._dataset is None or not index.isValid():
            return None
        s = self._dataset[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            tags = []
            if s.split:
                tags.append(s.split)
            if s.problems:
                tags.append(f"⚠ {len(s.problems)}")
            return f"{s.name}" + (f"   [{', '.join(tags)}]" if tags else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [s.id]
            lines += [str(p) for p in s.problems]
            return "\n".join(lines)
        if role == Qt.ItemDataRole.ForegroundRole and s.problems:
            return QColor(220, 140, 40)
        if role == SampleIdRole:
            return s.id
        return None


class SampleBrowser(QListView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sampleBrowser")
        self.model_ = SampleListModel(self)
        self.setModel(self.model_)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    def select_row(self, row: int) -> None:
        idx = self.model_.index(row, 0)
        if idx.isValid():
            self.setCurrentIndex(idx)
            self.scrollTo(idx)
