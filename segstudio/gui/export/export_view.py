"""The window's side of export and write-back (issue 14): File → Export…, Write Back to Dataset… and Restore
Backup…. It shows the dialogs (``export_dialog``, ``writeback_dialogs``), runs the jobs on a ``GeneratorWorker``
— the export (``workspace.export.run_export``), planning and running a write-back (``workspace.writeback``),
restoring a backup — shows their progress with an ETA and a Cancel button in the status bar, and reports the result ("Open
the export" / "Show folder"). It computes nothing itself.

Collaborators are handed in (DESIGN rule 10): the review controller (dataset, workspace, read-only), the session
(to re-read samples whose GT a write-back replaced), the status bar, and two callables of the window — save the
edit in progress, open a dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QStatusBar, QToolButton, QWidget

from segstudio.gui.common.errors import show_error
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.export.export_dialog import ExportDialog
from segstudio.gui.export.writeback_dialogs import RestoreDialog, WritebackDialog
from segstudio.workspace.export import ExportCancelled, ExportFinished, ExportPlan, ExportProgress, run_export
from segstudio.workspace.writeback import (
    BACKUPS,
    RestoreResult,
    WritebackCancelled,
    WritebackFinished,
    WritebackPlan,
    WritebackProgress,
    list_backups,
    plan_writeback,
    restore_backup,
    run_writeback,
)

if TYPE_CHECKING:
    from segstudio.gui.screen.review import ReviewController
    from segstudio.gui.screen.session import SessionController

log = logging.getLogger(__name__)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(0, round(seconds))
    if s < 60:
        return f"about {s} s left"
    m, s = divmod(s, 60)
    return f"about {m} min {s:02d} s left" if m < 60 else f"about {m // 60} h {m % 60:02d} min left"


def _one(fn: Callable[[], Any]) -> Iterator[Any]:
    yield fn()


class ExportView(QObject):
    """``sig_export_finished(ExportFinished)``, ``sig_writeback_finished(WritebackFinished)`` and
    ``sig_restored(RestoreResult)`` once each job is done (and shown)."""

    sig_export_finished = Signal(object)
    sig_writeback_finished = Signal(object)
    sig_restored = Signal(object)

    def __init__(self, *, review: ReviewController, session: SessionController, status_bar: QStatusBar,
                 save: Callable[[], object], open_dataset: Callable[[Path], object], parent: QWidget) -> None:
        super().__init__(parent)
        self.review, self.session, self.bar = review, session, status_bar
        self._save, self._open_dataset, self._parent = save, open_dataset, parent
        self.worker: GeneratorWorker | None = None
        self.dialog: ExportDialog | WritebackDialog | RestoreDialog | None = None
        self.result_box: QMessageBox | None = None
        self._job = ""
        self.progress = QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.setMinimumWidth(190)  # "exporting 1234/5678" on one line, however crowded the bar is
        self.progress.setMaximumWidth(260)
        self.eta = QLabel()
        self.eta.setObjectName("exportEta")
        self.cancel_button = QToolButton()
        self.cancel_button.setObjectName("exportCancel")
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.progress, self.eta, self.cancel_button):
            status_bar.addPermanentWidget(w)
        self._set_busy("")

    # state ------------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.running

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.eta.setText("cancelling…")

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        """Cancel a running job and wait for it (before the workspace closes)."""
        return self.worker.stop_and_wait(timeout_s) if self.worker is not None else True

    def _set_busy(self, job: str, *, total: int = 0) -> None:
        self._job = job
        for w in (self.progress, self.eta, self.cancel_button):
            w.setVisible(bool(job))
        self.cancel_button.setEnabled(bool(job))
        self.progress.setRange(0, total)  # 0..0: busy without a count (planning)
        self.progress.setValue(0)
        self.progress.setFormat(f"{job} %v/%m" if total else job)
        self.cancel_button.setToolTip(f"Stop {job}; nothing is left half-written" if job else "")
        self.eta.setText("")

    def _busy_refusal(self) -> bool:
        if self.running:
            self.bar.showMessage(f"Wait for {self._job} to finish, or cancel it.", 6000)
            return True
        return False

    def _start(self, job: str, start: Callable[[Any], Any], *, name: str, total: int = 0) -> GeneratorWorker:
        w = GeneratorWorker(start, name=name, parent=self)
        w.sig_progress.connect(self._on_worker_progress)
        w.sig_errored.connect(self._on_worker_errored)
        self.worker = w
        self._set_busy(job, total=total)
        w.start()
        return w

    # export -----------------------------------------------------------------------------------------------------
    def show_export_dialog(self) -> ExportDialog | None:
        """File → Export…: the dialog, opened without blocking; accepting it starts the export."""
        ds, ws = self.review.dataset, self.review.workspace
        if ds is None or self._busy_refusal():
            return None
        self._save()  # the edit in progress is part of what is exported
        has_predictions = ws is not None and bool(ws.predictions.entries())
        dlg = ExportDialog(ds, ws, has_predictions=has_predictions, parent=self._parent)
        dlg.accepted.connect(lambda d=dlg: self.start_export(d.plan) if d.plan is not None else None)
        self.dialog = dlg
        dlg.open()
        return dlg

    def start_export(self, plan: ExportPlan) -> GeneratorWorker | None:
        if self._busy_refusal():
            return None
        w = self._start("exporting", lambda token: run_export(plan, cancel=token), name="export",
                        total=len(plan.items))
        w.sig_finished.connect(self._on_export_worker_finished)
        w.sig_cancelled.connect(self._on_export_worker_finished)
        return w

    def _on_export_worker_finished(self, last: object) -> None:
        self._set_busy("")
        if isinstance(last, ExportFinished):
            self._show_export_result(last)
            self.sig_export_finished.emit(last)
        elif isinstance(last, ExportCancelled) or (self.worker is not None and self.worker.cancel_requested):
            out = last.out if isinstance(last, ExportCancelled) else "the destination"
            self.bar.showMessage(f"Export cancelled: nothing was written to {out}.", 10000)

    def _show_export_result(self, ev: ExportFinished) -> None:
        c = ev.counts
        extra = "".join(f", {c[k]} {what}" for k, what in (("accepted_prediction", "accepted predictions"),
                                                           ("model_prediction", "model predictions"))
                        if c.get(k))  # fmt: skip
        box = QMessageBox(self._parent)
        box.setObjectName("exportResult")
        box.setIcon(QMessageBox.Icon.Information)
        box.setWindowTitle("Export finished")
        box.setText(f"Exported {c.get('images', 0)} images ({c.get('correction', 0)} corrected{extra}) to\n{ev.out}")
        box.setInformativeText(f"The manifest ({ev.manifest.name}) lists what each image used; the change report "
                               f"({ev.report.name}) the pixels added and removed per class.")
        open_button = box.addButton("Open the Export", QMessageBox.ButtonRole.ActionRole)
        folder_button = box.addButton("Show Folder", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Close)
        open_button.clicked.connect(lambda: self._open_dataset(ev.out))
        folder_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(ev.out))))
        self.result_box = box
        box.open()
        self.bar.showMessage(f"Exported {c.get('images', 0)} images to {ev.out}", 10000)

    # write-back -------------------------------------------------------------------------------------------------
    def start_writeback(self) -> GeneratorWorker | None:
        """File → Write Back to Dataset…: plan in the background, then confirm with the list of files."""
        ds, ws = self.review.dataset, self.review.workspace
        if ds is None or ws is None or self._busy_refusal():
            return None
        if self.review.read_only:
            self.bar.showMessage("Write-back needs a writable workspace (it keeps the backup there).", 8000)
            return None
        self._save()
        w = self._start("planning the write-back", lambda token: _one(lambda: plan_writeback(ds, ws, cancel=token)),
                        name="writeback-plan")
        w.sig_finished.connect(self._on_plan_worker_finished)
        w.sig_cancelled.connect(lambda _l: self._set_busy(""))
        return w

    def _on_plan_worker_finished(self, plan: object) -> None:
        self._set_busy("")
        ws = self.review.workspace
        if not isinstance(plan, WritebackPlan) or ws is None:
            return
        if not plan.files:
            why = f" ({len(plan.skipped)} cannot be written back: {plan.skipped[0][1]})" if plan.skipped else ""
            self.bar.showMessage(f"Nothing to write back: no corrected mask differs from the dataset's GT{why}.", 10000)
            return
        dlg = WritebackDialog(plan, backup_dir=ws.folder / BACKUPS, parent=self._parent)
        dlg.accepted.connect(lambda p=plan: self.run_writeback(p))
        self.dialog = dlg
        dlg.open()

    def run_writeback(self, plan: WritebackPlan) -> GeneratorWorker | None:
        if self._busy_refusal():
            return None
        w = self._start("writing back", lambda token: run_writeback(plan, cancel=token), name="writeback",
                        total=len(plan.files))
        w.sig_finished.connect(lambda last, p=plan: self._on_writeback_worker_finished(last, p))
        w.sig_cancelled.connect(lambda last, p=plan: self._on_writeback_worker_finished(last, p))
        return w

    def _on_writeback_worker_finished(self, last: object, plan: WritebackPlan) -> None:
        self._set_busy("")
        self._reread({f.sample_id for f in plan.files})
        if isinstance(last, WritebackFinished):
            self.bar.showMessage(f"Wrote back {last.files} GT files; the originals are in {last.backup} "
                                 "(File → Restore Backup…).", 15000)
            self.sig_writeback_finished.emit(last)
        elif isinstance(last, WritebackCancelled):
            self.bar.showMessage(f"Write-back cancelled: the {last.rolled_back} files already replaced were put back.",
                                 10000)

    # restore ----------------------------------------------------------------------------------------------------
    def show_restore_dialog(self) -> RestoreDialog | None:
        """File → Restore Backup…: the workspace's backups; accepting restores the one selected."""
        ws = self.review.workspace
        if ws is None or self._busy_refusal():
            return None
        dlg = RestoreDialog(list_backups(ws.folder), parent=self._parent)
        dlg.accepted.connect(lambda d=dlg: self.restore(d.selected().path) if d.selected() is not None else None)
        self.dialog = dlg
        dlg.open()
        return dlg

    def restore(self, backup: Path) -> GeneratorWorker | None:
        if self._busy_refusal():
            return None
        w = self._start("restoring", lambda _token: _one(lambda: restore_backup(backup)), name="restore")
        w.sig_finished.connect(self._on_restore_worker_finished)
        return w

    def _on_restore_worker_finished(self, result: object) -> None:
        self._set_busy("")
        if not isinstance(result, RestoreResult):
            return
        self._reread(None)
        msg = f"Restored {len(result.restored)} files from {result.backup.name}"
        if result.unchanged:
            msg += f"; {len(result.unchanged)} were as in the backup already"
        if result.skipped:
            msg += f"; {len(result.skipped)} changed since and were left alone ({result.skipped[0][0].name}: " \
                   f"{result.skipped[0][1]})"
        self.bar.showMessage(msg + ".", 15000)
        self.sig_restored.emit(result)

    # shared -----------------------------------------------------------------------------------------------------
    def _reread(self, sample_ids: set[str] | None) -> None:
        """The GT files of these samples (None: any) changed on disk: decoded copies are dropped, the shown one
        is read again."""
        ds = self.review.dataset
        if ds is None:
            return
        for sid in (sample_ids if sample_ids is not None else [s.id for s in ds]):
            self.session.invalidate(sid)
        self.session.reload_current()

    def _on_worker_progress(self, ev: object) -> None:
        if isinstance(ev, ExportProgress | WritebackProgress):
            self.progress.setRange(0, ev.total)
            self.progress.setValue(ev.done)
            if isinstance(ev, ExportProgress):
                self.eta.setText(format_eta(ev.eta_s))

    def _on_worker_errored(self, message: str, details: str) -> None:
        job = self._job
        self._set_busy("")
        log.error("%s failed: %s", job, message)
        show_error(f"{job[:1].upper()}{job[1:]} failed" if job else "Failed", message, details)

