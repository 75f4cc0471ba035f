"""Cells of a ``QTableWidget`` that are always there."""

from __future__ import annotations

from PySide6.QtWidgets import QTableWidget, QTableWidgetItem


def cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """The item at ``(row, column)``; a cell that has none yet gets an empty one, so that reading it gives ``""``
    and writing it shows."""
    item = table.item(row, column)
    if item is None:
        item = QTableWidgetItem("")
        table.setItem(row, column, item)
    return item


def cell_text(table: QTableWidget, row: int, column: int) -> str:
    """The text at ``(row, column)``, ``""`` for a cell without an item (nothing is added to the table)."""
    item = table.item(row, column)
    return item.text() if item is not None else ""


def header_text(table: QTableWidget, column: int) -> str:
    """The column's header text, ``""`` for a column without a header item."""
    item = table.horizontalHeaderItem(column)
    return item.text() if item is not None else ""
