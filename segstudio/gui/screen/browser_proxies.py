"""Sort and filter proxies of the sample browser: the sort order as a numpy permutation (milliseconds for
10,000 rows, where Qt's proxy sort calls back into Python per comparison), and the filter combo + name filter
on top of it. See ``browser_model`` for the whole picture."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractProxyModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt

from segstudio.gui.screen.browser_model import COLUMNS, SampleTableModel

Index = QModelIndex | QPersistentModelIndex
_ROLE = Qt.ItemDataRole


class OrderProxy(QAbstractProxyModel):
    """The model's rows in a sort order held as a numpy permutation (``order[proxy row] = dataset row``)."""

    def __init__(self, model: SampleTableModel) -> None:
        super().__init__(model)
        self.model_ = model
        self.order = np.arange(model.rowCount(), dtype=np.int64)
        self.pos = self.order.copy()  # inverse: pos[dataset row] = proxy row
        self.order_list: list[int] = self.order.tolist()  # the filter's per-row lookups: a list indexes faster
        self.setSourceModel(model)
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._on_model_reset)
        model.dataChanged.connect(self._on_model_data_changed)

    def apply_order(self, order: np.ndarray) -> None:
        """Re-order rows, keeping persistent indexes (the current row, the selection) on their samples."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        rows = [int(self.order[i.row()]) for i in old]
        self.order = np.asarray(order, np.int64)
        self.order_list = self.order.tolist()
        self.pos = np.empty_like(self.order)
        self.pos[self.order] = np.arange(len(self.order))
        self.changePersistentIndexList(old, [self.index(int(self.pos[r]), i.column()) for r, i in zip(rows, old, strict=True)])
        self.layoutChanged.emit()

    def _on_model_reset(self) -> None:
        self.order = np.arange(self.model_.rowCount(), dtype=np.int64)
        self.pos = self.order.copy()
        self.order_list = self.order.tolist()
        self.endResetModel()

    def _on_model_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        rows = self.pos[top.row() : bottom.row() + 1]
        if len(rows):
            lo, hi = int(rows.min()), int(rows.max())
            self.dataChanged.emit(self.index(lo, top.column()), self.index(hi, bottom.column()), roles)

    def mapToSource(self, proxy: Index) -> QModelIndex:  # noqa: N802
        if not proxy.isValid() or proxy.row() >= len(self.order):
            return QModelIndex()
        return self.model_.index(int(self.order[proxy.row()]), proxy.column())

    def mapFromSource(self, source: Index) -> QModelIndex:  # noqa: N802
        if not source.isValid() or source.row() >= len(self.pos):
            return QModelIndex()
        return self.index(int(self.pos[source.row()]), source.column())

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        return self.createIndex(row, column) if self.hasIndex(row, column, parent) else QModelIndex()

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        return QModelIndex()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _ROLE.DisplayRole) -> Any:  # noqa: N802
        return self.model_.headerData(section, orientation, role)


class FilterProxy(QSortFilterProxyModel):
    """Filters rows of the order proxy; hands header-click sorting to it (see the module docstring)."""

    def __init__(self, order: OrderProxy) -> None:
        super().__init__(order)
        self.order_ = order
        self.filter_key = "all"
        self.text = ""
        self.pinned = -1  # dataset row that stays visible whatever the filter (the current sample)
        self.sort_column = -1
        self.sort_ascending = True
        self._matches = order.model_.matches
        self.setDynamicSortFilter(True)
        self.setSourceModel(order)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_column = column
        self.sort_ascending = order == Qt.SortOrder.AscendingOrder
        self.order_.apply_order(self.order_.model_.sort_order(column, self.sort_ascending))

    def set_filter(self, filter_key: str, text: str) -> None:
        self.beginFilterChange()
        self.filter_key, self.text = filter_key, text.casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def accepts_dataset_row(self, row: int) -> bool:
        return row == self.pinned or self.order_.model_.matches(row, self.filter_key, self.text)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        row = self.order_.order_list[source_row]
        return row == self.pinned or self._matches(row, self.filter_key, self.text)

    def proxy_row_of(self, dataset_row: int) -> int:
        """Visible row of a dataset row, -1 when filtered out."""
        src = self.order_.index(int(self.order_.pos[dataset_row]), 0)
        return self.mapFromSource(src).row()

    def dataset_row(self, proxy_row: int) -> int:
        return int(self.order_.order[self.mapToSource(self.index(proxy_row, 0)).row()])
