"""The workspace's training runs and sweeps, newest first, as a tree: a run is a row (name, status, best metric,
duration, started); a sweep is a row with its runs as children (their grid labels, status, best, training time)
and a summary of its own (``3/6 done, stopped``, the best run's metric, the runs' total training time).

"Use This Model" takes a run or a sweep's run; Resume continues a stopped run, or the selected sweep; Open
Report opens a sweep's report. The right-click menu offers the same, and for a sweep also rewriting the report,
using its best run's model, opening its folder and (for a folder added by reference) removing it from the list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QPoint, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.workspace import RunRecord, SweepRecord, SweepRun

COLUMNS = ("run", "status", "best", "duration", "started")
ID_ROLE, KIND_ROLE = Qt.ItemDataRole.UserRole, Qt.ItemDataRole.UserRole + 1
RUN, SWEEP, NOTE = "run", "sweep", "note"


def _seconds(secs: float | None) -> str:
    if secs is None:
        return ""
    return f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.1f} min" if secs < 7200 else f"{secs / 3600:.1f} h"


def _duration(run: RunRecord) -> str:
    if run.duration_s is None:
        return "running…" if run.started is not None and run.finished is None else ""
    return _seconds(run.duration_s)


def _when(t: float | None) -> str:
    if not t:
        return ""
    when = time.localtime(t)
    return time.strftime("%b %d %H:%M" if when.tm_year == time.localtime().tm_year else "%Y-%m-%d", when)


def _best(value: float | None, name: str) -> str:
    return f"{name} {value:.3f}" if value is not None else ""


class RunHistory(QWidget):
    """``sig_run_selected(run_id)`` when a run (or a sweep's run) becomes the selection (the panel shows its
    curves), ``sig_use_requested(run_id)`` for "Use this model", ``sig_resume_requested(run_id)`` for a plain
    run's Resume; ``sig_sweep_*`` carry a sweep's id (``sig_sweep_report_requested``: and whether to write the
    report again even when there is one)."""

    sig_run_selected = Signal(str)
    sig_use_requested = Signal(str)
    sig_resume_requested = Signal(str)
    sig_sweep_selected = Signal(str)
    sig_sweep_resume_requested = Signal(str)
    sig_sweep_report_requested = Signal(str, bool)
    sig_sweep_best_requested = Signal(str)
    sig_sweep_folder_requested = Signal(str)
    sig_sweep_forget_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("runHistoryTable")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels([c.capitalize() for c in COLUMNS])
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setUniformRowHeights(True)
        self.tree.setAllColumnsShowFocus(True)
        # every column as wide as its content, the last one taking what is left: in a narrow dock the names stay
        # whole and the tree scrolls sideways, rather than every run becoming "un…"
        header = self.tree.header()
        header.setStretchLastSection(True)
        for c in range(len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._on_tree_selection_changed)
        self.tree.itemExpanded.connect(lambda item: self._expanded.add(item.data(0, ID_ROLE)))
        self.tree.itemCollapsed.connect(lambda item: self._expanded.discard(item.data(0, ID_ROLE)))
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_tree_context_menu)
        self.use_button = self._button("Use This Model", "useModelButton",
                                       "Make this run's best checkpoint (else its last) the workspace's model",
                                       self._on_use_clicked)
        self.resume_button = self._button("Resume", "resumeRunButton",
                                          "Continue a stopped run from its last checkpoint, or the selected sweep",
                                          self._on_resume_clicked)
        self.report_button = self._button("Open Report", "openSweepReportButton",
                                          "Open the selected sweep's report in the browser (written first when "
                                          "it is missing)", self._on_report_clicked)
        #: the panel sets the controllers' rules
        self.can_resume: Callable[[RunRecord], bool] = lambda _run: False
        self.can_resume_sweep: Callable[[SweepRecord], bool] = lambda _sweep: False
        self.idle: Callable[[], bool] = lambda: True
        self.model_label = QLabel("Model: none chosen", self)
        self.model_label.setWordWrap(True)
        # the model on a line of its own: beside three buttons it would set the dock's (the window's) least width
        row = QHBoxLayout()
        row.addStretch(1)
        for b in (self.report_button, self.resume_button, self.use_button):
            row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.model_label)
        lay.addLayout(row)
        self._runs: list[RunRecord] = []
        self._sweeps: list[SweepRecord] = []
        self._expanded: set[str] = set()
        self._seen_sweeps: set[str] = set()

    def _button(self, text: str, name: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        b = QPushButton(text, self)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.setEnabled(False)
        b.clicked.connect(slot)
        return b

    # content ------------------------------------------------------------------------------------------------------
    def set_runs(self, runs: Sequence[RunRecord], sweeps: Sequence[SweepRecord] = ()) -> None:
        """Show ``runs`` (plain runs) and ``sweeps`` with their runs, newest first; the selection is kept."""
        keep = self._selected()
        self._runs, self._sweeps = list(runs), list(sweeps)
        for s in self._sweeps:  # a sweep seen first with a problem opens, so that the problem shows
            if s.id not in self._seen_sweeps and (s.condition != "ok" or s.problem or s.running):
                self._expanded.add(s.id)
            self._seen_sweeps.add(s.id)
        rows: list[tuple[float, RunRecord | SweepRecord]] = [(r.started or r.created, r) for r in self._runs]
        rows += [(s.started, s) for s in self._sweeps]
        with QSignalBlocker(self.tree):
            self.tree.clear()
            for _, row in sorted(rows, key=lambda x: x[0], reverse=True):
                if isinstance(row, SweepRecord):
                    self._add_sweep(row)
                else:
                    self._item(None, RUN, row.id, (row.name or row.id, row.status.value,
                                                   _best(row.best_metric, row.best_metric_name), _duration(row),
                                                   _when(row.started or row.created)),
                               tip=f"{row.id}\n{row.folder}\n{row.message}".strip())
            if keep is not None:
                item = self._find(*keep)
                if item is not None:
                    self.tree.setCurrentItem(item)
        self._sync_buttons()

    def _item(self, parent: QTreeWidgetItem | None, kind: str, key: str, texts: Sequence[str], *,
              tip: str = "") -> QTreeWidgetItem:
        item = QTreeWidgetItem(list(texts))
        for c in range(len(COLUMNS)):
            item.setData(c, ID_ROLE, key)
            item.setData(c, KIND_ROLE, kind)
        if tip:
            item.setToolTip(0, tip)
        if parent is None:
            self.tree.addTopLevelItem(item)
        else:
            parent.addChild(item)
        return item

    def _add_sweep(self, s: SweepRecord) -> None:
        best = s.best()
        item = self._item(None, SWEEP, s.id, (
            s.name, s.status_text, _best(best.best_metric, best.best_metric_name) if best else "",
            _seconds(s.train_seconds), _when(s.started)), tip=self._sweep_tip(s))
        item.setIcon(0, qta.icon("fa5s.layer-group", color="#d0d0d0"))
        font = QFont(item.font(0))
        font.setBold(True)
        for c in range(len(COLUMNS)):
            item.setFont(c, font)
        if best is not None:
            item.setToolTip(2, f"best run: {best.label}")
        item.setToolTip(3, "total training time of its runs")
        if s.condition != "ok" or s.problem:
            note = self._item(item, NOTE, s.id, (self._note(s),), tip=s.problem)
            note.setFirstColumnSpanned(True)
            note.setFlags(Qt.ItemFlag.ItemIsEnabled)
            note.setForeground(0, self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        for run in s.runs:
            self._add_sweep_run(item, run)
        item.setExpanded(s.id in self._expanded)

    def _add_sweep_run(self, parent: QTreeWidgetItem, run: SweepRun) -> None:
        secs = "running…" if run.status == "running" else _seconds(run.train_seconds)
        extra = f"\nreport: mean Dice {run.dice:.4f}" if run.dice is not None else ""
        err = f"\n{run.error}" if run.error else ""
        item = self._item(parent, RUN, run.id, (run.label, run.status, _best(run.best_metric, run.best_metric_name),
                                                secs, _when(run.started)), tip=f"{run.name}\n{run.folder}{err}{extra}")
        if run.error:
            item.setToolTip(1, run.error)

    @staticmethod
    def _note(s: SweepRecord) -> str:
        """The problem in a few words (the whole of it is the row's tooltip)."""
        if s.condition == "missing":
            return f"not found: {s.folder}"
        if s.condition == "damaged":
            return f"cannot be read: {s.folder / 'sweep.json'}"
        return "state.json is damaged: the statuses are read from the run folders"

    @staticmethod
    def _sweep_tip(s: SweepRecord) -> str:
        lines = [f"sweep {s.name} ({len(s.runs)} runs)" if s.runs else f"sweep {s.name}", str(s.folder)]
        if s.referenced:
            lines.append("added by reference (the folder stays where it is)")
        lines += [x for x in (s.description, f"dataset: {s.dataset}" if s.dataset else "",
                              f"sweep file: {s.file}" if s.file else "", s.problem) if x]
        return "\n".join(lines)

    # queries --------------------------------------------------------------------------------------------------------
    def _all_items(self) -> list[QTreeWidgetItem]:
        out: list[QTreeWidgetItem] = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top is None:
                continue
            out.append(top)
            out += [c for c in (top.child(j) for j in range(top.childCount())) if c is not None]
        return out

    def _find(self, kind: str, key: str) -> QTreeWidgetItem | None:
        return next((it for it in self._all_items() if it.data(0, KIND_ROLE) == kind and it.data(0, ID_ROLE) == key),
                    None)

    def _selected(self) -> tuple[str, str] | None:
        items = self.tree.selectedItems()
        return (items[0].data(0, KIND_ROLE), items[0].data(0, ID_ROLE)) if items else None

    def run_ids(self) -> list[str]:
        """Every run shown, in order: plain runs and the runs of each sweep."""
        return [it.data(0, ID_ROLE) for it in self._all_items() if it.data(0, KIND_ROLE) == RUN]

    def sweep_ids(self) -> list[str]:
        return [it.data(0, ID_ROLE) for it in self._all_items() if it.data(0, KIND_ROLE) == SWEEP]

    def selected_run_id(self) -> str | None:
        sel = self._selected()
        return sel[1] if sel is not None and sel[0] == RUN else None

    def selected_sweep_id(self) -> str | None:
        """The selected sweep, or the sweep of the selected run (None for a plain run or nothing)."""
        items = self.tree.selectedItems()
        if not items:
            return None
        item = items[0] if items[0].data(0, KIND_ROLE) == SWEEP else items[0].parent()
        return item.data(0, ID_ROLE) if item is not None else None

    def sweep(self, sweep_id: str | None) -> SweepRecord | None:
        return next((s for s in self._sweeps if s.id == sweep_id), None)

    def select_run(self, run_id: str) -> None:
        item = self._find(RUN, run_id)
        if item is not None:
            parent = item.parent()
            if parent is not None:
                parent.setExpanded(True)
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def select_sweep(self, sweep_id: str) -> None:
        item = self._find(SWEEP, sweep_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def set_model(self, run_id: str | None, checkpoint: Path | None) -> None:
        self.model_label.setText(f"Model: {checkpoint.parent.parent.name}/{checkpoint.name}" if checkpoint
                                 else "Model: none chosen")
        self.model_label.setToolTip(str(checkpoint) if checkpoint else "")

    # buttons and menu -----------------------------------------------------------------------------------------------
    def _sync_buttons(self) -> None:
        rid = self.selected_run_id()
        sweep = self.sweep(self.selected_sweep_id())
        self.use_button.setEnabled(rid is not None)
        run = next((r for r in self._runs if r.id == rid), None)
        if sweep is not None:
            self.resume_button.setEnabled(self.can_resume_sweep(sweep))
            self.resume_button.setToolTip(f"Continue the sweep {sweep.name}: its stopped and failed runs from "
                                          "their last checkpoint, then the ones not started, then its report")
        else:
            self.resume_button.setEnabled(run is not None and self.can_resume(run))
            self.resume_button.setToolTip("Continue a stopped run from its last checkpoint, or the selected sweep")
        self.report_button.setEnabled(sweep is not None and sweep.condition == "ok"
                                      and any(r.status == "done" for r in sweep.runs))

    def refresh_buttons(self) -> None:
        """Ask the rules again (a job started or ended)."""
        self._sync_buttons()

    def _on_tree_selection_changed(self) -> None:
        self._sync_buttons()
        sel = self._selected()
        if sel is not None and sel[0] == RUN:
            self.sig_run_selected.emit(sel[1])
        elif sel is not None and sel[0] == SWEEP:
            self.sig_sweep_selected.emit(sel[1])

    def _on_resume_clicked(self) -> None:
        sid, rid = self.selected_sweep_id(), self.selected_run_id()
        if sid is not None:
            self.sig_sweep_resume_requested.emit(sid)
        elif rid is not None:
            self.sig_resume_requested.emit(rid)

    def _on_use_clicked(self) -> None:
        rid = self.selected_run_id()
        if rid is not None:
            self.sig_use_requested.emit(rid)

    def _on_report_clicked(self) -> None:
        sid = self.selected_sweep_id()
        if sid is not None:
            self.sig_sweep_report_requested.emit(sid, False)

    def context_menu(self, item: QTreeWidgetItem) -> QMenu:
        """The right-click menu of ``item`` (selected first), its entries enabled as the buttons are."""
        self.tree.setCurrentItem(item)
        menu = QMenu(self)
        menu.setObjectName("runHistoryMenu")
        for b in (self.use_button, self.resume_button, self.report_button):
            act = menu.addAction(b.text(), b.click)
            act.setEnabled(b.isEnabled())
        sweep = self.sweep(self.selected_sweep_id())
        if sweep is not None and item.data(0, KIND_ROLE) == SWEEP:
            sid = sweep.id
            menu.addSeparator()
            act = menu.addAction("Write the Report Again", lambda: self.sig_sweep_report_requested.emit(sid, True))
            act.setEnabled(self.report_button.isEnabled() and self.idle())
            act = menu.addAction("Use the Best Run's Model", lambda: self.sig_sweep_best_requested.emit(sid))
            act.setEnabled(sweep.best() is not None)
            act = menu.addAction("Open the Sweep Folder", lambda: self.sig_sweep_folder_requested.emit(sid))
            act.setEnabled(sweep.condition != "missing")
            if sweep.referenced:
                menu.addAction("Remove from the Run History", lambda: self.sig_sweep_forget_requested.emit(sid))
        return menu

    def _on_tree_context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        if item is not None and item.data(0, KIND_ROLE) != NOTE:
            self.context_menu(item).popup(self.tree.viewport().mapToGlobal(pos))
