"""File → Write Back to Dataset… and File → Restore Backup…: the two confirmations ``ExportView`` shows.

The write-back dialog lists every GT file to be replaced and where the backup goes; the restore dialog lists the
workspace's write-back backups. Both only show and ask: ``ExportView`` runs the jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.gui.export.export_dialog import StatusLine


class WritebackDialog(QDialog):
    """The confirmation of a write-back: every GT file to be replaced (scrollable), what replaces it, the files
    left alone and why, and where the backup goes. Proceed / Cancel."""

    def __init__(self, plan: Any, *, backup_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("writebackDialog")
        self.setWindowTitle("Write Back to Dataset")
        self.plan = plan
        root = Path(plan.dataset_root)
        lay = QVBoxLayout(self)
        n = len(plan.files)
        head = QLabel(f"{n} GT file{'s' if n != 1 else ''} in {root} will be replaced by the corrected masks, "
                      "each in its own encoding. Files whose mask did not change are not touched.")
        head.setObjectName("writebackHeadline")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.table = QTableWidget(n, 2)
        self.table.setObjectName("writebackFiles")
        self.table.setHorizontalHeaderLabels(["File", "Replaced by"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for r, f in enumerate(plan.files):
            p = Path(f.path)
            try:
                shown = p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                shown = str(p)
            item = QTableWidgetItem(shown)
            item.setToolTip(str(p))
            self.table.setItem(r, 0, item)
            self.table.setItem(r, 1, QTableWidgetItem(f"{f.used} ({f.sample_id})"))
        lay.addWidget(self.table, 1)
        if plan.skipped:
            sk = StatusLine("writebackSkipped")
            sk.show_state(f"{len(plan.skipped)} corrected image(s) cannot be written back and are left as they are: "
                          + "; ".join(f"{sid}: {why}" for sid, why in plan.skipped[:3])
                          + (" …" if len(plan.skipped) > 3 else ""), ok=False)
            lay.addWidget(sk)
        self.backup = StatusLine("writebackBackup")
        self.backup.show_state(f"Every replaced file is copied first into a timestamped backup under {backup_dir} "
                               "(File → Restore Backup… puts them back).", ok=True)
        lay.addWidget(self.backup)
        buttons = QDialogButtonBox()
        self.proceed_button = buttons.addButton("Replace files", QDialogButtonBox.ButtonRole.AcceptRole)
        self.proceed_button.setObjectName("writebackProceed")
        self.proceed_button.setEnabled(n > 0)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)  # the safe answer is the default one
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(720, 480)


class RestoreDialog(QDialog):
    """The write-back backups of the workspace, newest first: time, files, state. Restore / Cancel."""

    def __init__(self, backups: list[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("restoreDialog")
        self.setWindowTitle("Restore a Write-Back Backup")
        self.backups = backups
        lay = QVBoxLayout(self)
        head = QLabel("Put the dataset's GT files back as they were before a write-back. Files changed since "
                      "then are left alone and listed." if backups else
                      "This workspace has no write-back backups.")
        head.setWordWrap(True)
        lay.addWidget(head)
        self.table = QTableWidget(len(backups), 4)
        self.table.setObjectName("restoreBackups")
        self.table.setHorizontalHeaderLabels(["Time", "Files", "State", "Backup folder"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        hdr = self.table.horizontalHeader()
        for col in range(3):
            hdr.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for r, b in enumerate(backups):
            cells = (b.time.replace("T", " ")[:19], str(b.files), b.state.replace("_", " "), Path(b.path).name)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{b.path}\nwritten back into {b.dataset_root}")
                self.table.setItem(r, col, item)
        lay.addWidget(self.table, 1)
        buttons = QDialogButtonBox()
        self.restore_button = buttons.addButton("Restore", QDialogButtonBox.ButtonRole.AcceptRole)
        self.restore_button.setObjectName("restoreButton")
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        if backups:
            self.table.selectRow(0)
        self._on_table_selection_changed()
        self.resize(640, 360)

    def selected(self) -> Any | None:
        rows = self.table.selectionModel().selectedRows()
        return self.backups[rows[0].row()] if rows else None

    def select(self, index: int) -> None:
        self.table.selectRow(index)

    def _on_table_selection_changed(self) -> None:
        self.restore_button.setEnabled(self.selected() is not None)
