"""The workspace's training runs, newest first: name, status, best metric, duration; "use this model"."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.workspace import RunRecord

COLUMNS = ("run", "status", "best", "duration", "started")


def _duration(run: RunRecord) -> str:
    secs = run.duration_s
    if secs is None:
        return "running…" if run.started is not None and run.finished is None else ""
    return f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.1f} min"


class RunHistory(QWidget):
    """``sig_run_selected(run_id)`` when the selection changes (the panel shows that run's curves),
    ``sig_use_requested(run_id)`` for "Use this model"."""

    sig_run_selected = Signal(str)
    sig_use_requested = Signal(str)
    sig_resume_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("runHistoryTable")
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.use_button = QPushButton("Use This Model", self)
        self.use_button.setObjectName("useModelButton")
        self.use_button.setToolTip("Make this run's best checkpoint (else its last) the workspace's model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._on_use_clicked)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setObjectName("resumeRunButton")
        self.resume_button.setToolTip("Continue a stopped run from its last checkpoint")
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.can_resume = lambda _run: False  # the panel sets the controller's rule
        self.model_label = QLabel("Model: none chosen", self)
        self.model_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.model_label, 1)
        row.addWidget(self.resume_button)
        row.addWidget(self.use_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        self._runs: list[RunRecord] = []

    def set_runs(self, runs: Sequence[RunRecord]) -> None:
        keep = self.selected_run_id()
        self._runs = list(runs)
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(self._runs))
            for r, run in enumerate(self._runs):
                best = f"{run.best_metric_name} {run.best_metric:.3f}" if run.best_metric is not None else ""
                started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started or run.created))
                for c, text in enumerate((run.name or run.id, run.status.value, best, _duration(run), started)):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, run.id)
                    if c == 0:
                        item.setToolTip(f"{run.id}\n{run.folder}\n{run.message}".strip())
                    self.table.setItem(r, c, item)
            ids = [run.id for run in self._runs]
            if keep in ids:
                self.table.selectRow(ids.index(keep))
        self._sync_button()

    def run_ids(self) -> list[str]:
        return [run.id for run in self._runs]

    def selected_run_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def select_run(self, run_id: str) -> None:
        ids = self.run_ids()
        if run_id in ids:
            self.table.selectRow(ids.index(run_id))

    def set_model(self, run_id: str | None, checkpoint: Path | None) -> None:
        self.model_label.setText(f"Model: {checkpoint.parent.parent.name}/{checkpoint.name}" if checkpoint
                                 else "Model: none chosen")
        self.model_label.setToolTip(str(checkpoint) if checkpoint else "")

    def _sync_button(self) -> None:
        rid = self.selected_run_id()
        self.use_button.setEnabled(rid is not None)
        run = next((r for r in self._runs if r.id == rid), None)
        self.resume_button.setEnabled(run is not None and self.can_resume(run))

    def _on_table_selection_changed(self) -> None:
        self._sync_button()
        rid = self.selected_run_id()
        if rid is not None:
            self.sig_run_selected.emit(rid)

    def _on_resume_clicked(self) -> None:
        rid = self.selected_run_id()
        if rid is not None:
            self.sig_resume_requested.emit(rid)

    def _on_use_clicked(self) -> None:
        rid = self.selected_run_id()
        if rid is not None:
            self.sig_use_requested.emit(rid)
