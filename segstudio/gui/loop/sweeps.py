"""Sweeps in the app: Train → Run Sweep… trains a sweep file (``segstudio sweep``'s format, ``docs/cli.md``) into the
workspace's ``sweeps/<file name>/`` in the background; Train → Add Sweep Folder… lists a sweep trained elsewhere
(the command line, a cluster) by reference; and the run history's sweep rows resume a sweep, open (or write) its
report, use its best run's model, open its folder or forget a referenced one.

The sweep trains on the dataset its file names, else on the open dataset — its GT, as ``segstudio sweep`` trains
(corrections are what retraining rounds are for). Running the same file again resumes its folder; a folder's
Resume continues the sweep as its ``sweep.json`` records it, whether or not the file is still there. The jobs run in
the training controller's one slot (``gui.loop.sweep_jobs``). The window composes; this controller holds the
behaviour and receives its collaborators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.gui.common.errors import show_error
from segstudio.gui.loop.sweep_jobs import SweepJobs
from segstudio.gui.loop.training import TrainingController, default_threads, run_checkpoint
from segstudio.gui.loop.training_panel import TrainingPanel
from segstudio.workspace import SweepRecord, Workspace

log = logging.getLogger(__name__)

#: the workspace state key of the folder the last sweep file was chosen in
LAST_DIR_KEY = "sweep_file_dir"
_APP_FIX = ("Undo the change to the sweep file, or save it under another name: the app trains each sweep file into "
            "its own folder, the workspace's sweeps/<file name>.")


class SweepController(QObject):
    """``open_url`` replaces ``QDesktopServices.openUrl`` (tests); ``show_panel`` brings the training panel up."""

    def __init__(self, *, training: TrainingController, panel: TrainingPanel,
                 show_message: Callable[[str, int], None], show_panel: Callable[[], None] = lambda: None,
                 dialog_parent: QWidget | None = None, open_url: Callable[[QUrl], object] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.training, self.panel = training, panel
        self._show_message, self._show_panel = show_message, show_panel
        self._dialog_parent = dialog_parent
        self._open_url = open_url or QDesktopServices.openUrl
        self.jobs = SweepJobs(training=training, monitor=panel.monitor, parent=self)
        self.jobs.sig_changed.connect(panel.refresh_runs)
        self.jobs.sig_finished.connect(self._on_jobs_finished)
        self.jobs.sig_errored.connect(self._on_jobs_errored)
        self._open_when_done = False
        h = panel.history
        h.can_resume_sweep = lambda s: not training.running and s.resumable
        h.sig_sweep_selected.connect(self._on_history_sweep_selected)
        h.sig_sweep_resume_requested.connect(self.resume)
        h.sig_sweep_report_requested.connect(self.open_report)
        h.sig_sweep_best_requested.connect(self.use_best)
        h.sig_sweep_folder_requested.connect(self.open_folder)
        h.sig_sweep_forget_requested.connect(self.forget)

    # starting ---------------------------------------------------------------------------------------------------
    def _context(self, title: str) -> tuple[Workspace, Any] | None:
        ws, ds = self.training.workspace, self.training.dataset
        if ws is None or ds is None:
            self._show_message("Open a dataset first: its workspace keeps the sweep.", 6000)
            return None
        if self.training.running:
            self._show_message("A training run or sweep is in progress already: stop it or wait for it.", 6000)
            return None
        if ws.read_only:
            show_error(title, f"This workspace is open read-only ({ws.read_only_reason}): a sweep writes into it.")
            return None
        return ws, ds

    def _start(self, title: str, job: Callable[[Any], Iterator[Any]], *, sweep_id: str, folder: Path,
               what: str) -> bool:
        try:
            self.jobs.start(job, sweep_id=sweep_id, folder=folder, what=what)
        except SegstudioError as exc:
            show_error(title, str(exc))
            return False
        self.panel.sync_enabled()
        self._show_panel()
        self.panel.tabs.setCurrentWidget(self.panel.history)
        self.panel.history.select_sweep(sweep_id)
        return True

    def run_sweep_dialog(self) -> bool:
        """Train → Run Sweep…: choose a sweep file, then :meth:`run_file`."""
        ws = self.training.workspace
        start = str(ws.state.get(LAST_DIR_KEY, "") or Path.home()) if ws is not None else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Run a sweep file", start,
                                              "Sweep files (*.json);;All files (*)")
        if not path:
            return False
        if ws is not None and not ws.read_only:
            ws.state.set(LAST_DIR_KEY, str(Path(path).parent))
        return self.run_file(Path(path))

    def run_file(self, file: Path) -> bool:
        """Train the sweep file ``file`` (checked in the worker) into the workspace's folder for it (running the
        same file again resumes that folder). False when nothing started (and why was said)."""
        ctx = self._context("Cannot run the sweep")
        if ctx is None:
            return False
        ws, ds = ctx
        out = ws.sweeps.folder_for(file)
        threads = self.panel.threads.value() or default_threads()

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.sweep import SweepError, check_folder, load_sweep, run_sweep

            torch.set_num_threads(threads)
            plan = load_sweep(file, dataset=ds.root, format=ds.format_name)
            try:
                check_folder(plan, out)
            except SweepError as e:
                raise SweepError(e.message, path=e.path, fix=_APP_FIX) from None
            own = "dataset" not in plan.document  # the open dataset, as it is open (format options and all)
            return run_sweep(plan, out=out, cancel=token, dataset=ds if own else None)

        sweep_id = f"{ws.sweeps.folder.name}/{out.name}"
        started = self._start("Cannot run the sweep", job, sweep_id=sweep_id, folder=out, what="sweep")
        if started:
            self._show_message(f"Sweep {file.name}: checking its runs, then training them into {out}…", 8000)
        return started

    def _folder_job(self, record: SweepRecord, *, report_only: bool) -> Callable[[Any], Iterator[Any]]:
        ds, folder = self.training.dataset, record.folder
        threads = self.panel.threads.value() or default_threads()

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.sweep import load_sweep_folder, run_sweep

            torch.set_num_threads(threads)
            plan = load_sweep_folder(folder)
            same = ds is not None and plan.dataset == Path(ds.root).resolve() and plan.format in (None, ds.format_name)
            return run_sweep(plan, out=folder, cancel=token, dataset=ds if same else None, report_only=report_only)

        return job

    def _record(self, sweep_id: str, title: str, *, readable: bool = True) -> SweepRecord | None:
        ws = self.training.workspace
        try:
            record = ws.sweeps.get(sweep_id) if ws is not None else None
        except SegstudioError as exc:
            show_error(title, str(exc))
            return None
        if record is not None and readable and record.condition != "ok":
            show_error(title, record.problem)
            return None
        return record

    def resume(self, sweep_id: str) -> bool:
        """Continue the sweep as its folder records it: stopped and failed runs from their last checkpoint, then
        the ones not started, then its report."""
        if self._context("Cannot resume the sweep") is None:
            return False
        record = self._record(sweep_id, "Cannot resume the sweep")
        if record is None:
            return False
        if record.running:
            self._show_message(f"The sweep {record.name} is being trained by another segstudio now.", 8000)
            return False
        started = self._start("Cannot resume the sweep", self._folder_job(record, report_only=False),
                              sweep_id=record.id, folder=record.folder, what="sweep")
        if started:
            self._show_message(f"Resuming the sweep {record.name} ({record.status_text})…", 8000)
        return started

    # the report -------------------------------------------------------------------------------------------------
    def open_report(self, sweep_id: str, rewrite: bool = False) -> bool:
        """Open the sweep's ``report.html`` in the browser; when it is missing (or ``rewrite``), write it first over
        the runs done so far (in the background) and open it when written."""
        record = self._record(sweep_id, "Cannot open the sweep's report")
        if record is None:
            return False
        report = record.report
        if report is not None and not rewrite:
            self._open_url(QUrl.fromLocalFile(str(report)))
            since = [r for r in record.runs if r.status == "done" and (r.updated or 0) > report.stat().st_mtime + 1]
            self._show_message(f"Opened {report}" + (
                f" — it predates {len(since)} run(s) done since: right-click the sweep → Write the Report Again"
                if since else ""), 10000)
            return True
        if not any(r.status == "done" for r in record.runs):
            self._show_message(f"The sweep {record.name} has no finished run to report on yet.", 6000)
            return False
        if self._context("Cannot write the sweep's report") is None:
            return False
        self._open_when_done = True
        started = self._start("Cannot write the sweep's report", self._folder_job(record, report_only=True),
                              sweep_id=record.id, folder=record.folder, what="report")
        if started:
            self._show_message(f"Writing the report of the sweep {record.name} (it opens when written)…", 8000)
        else:
            self._open_when_done = False
        return started

    def _on_jobs_finished(self, summary: str, finished: Any) -> None:
        self.panel.sync_enabled()
        self._show_message(summary, 15000)
        report = getattr(finished, "report", None)
        if self._open_when_done and report is not None:
            self._open_url(QUrl.fromLocalFile(str(report)))
        self._open_when_done = False
        if finished is not None and not finished.stopped and self.training.chosen_model() is None:
            self._adopt_first_model()

    def _on_jobs_errored(self, message: str, details: str) -> None:
        self._open_when_done = False
        self.panel.sync_enabled()
        show_error("The sweep stopped with an error", message, details)

    def _adopt_first_model(self) -> None:
        """A workspace's first model is its first trained one (as after a run): here the sweep's best run."""
        try:
            record = self.training.workspace.sweeps.get(self.jobs.sweep_id) if self.training.workspace else None
        except SegstudioError:
            return
        best = record.best() if record is not None else None
        if best is not None and run_checkpoint(best.folder) is not None:
            self.training.use_model(best.id, reason=f"the best run of the sweep {record.name if record else ''}: "
                                                    "the workspace's first model")

    # the history's other sweep actions ----------------------------------------------------------------------------
    def use_best(self, sweep_id: str) -> bool:
        record = self._record(sweep_id, "Cannot use the sweep's best model")
        best = record.best() if record is not None else None
        if record is None or best is None:
            if record is not None:
                self._show_message(f"The sweep {record.name} has no run with a best value yet.", 6000)
            return False
        try:
            path = self.training.use_model(best.id, reason=f"the best run of the sweep {record.name}")
        except SegstudioError as exc:
            show_error("Cannot use the sweep's best model", str(exc))
            return False
        self._show_message(f"Model: {best.label} of the sweep {record.name} ({path})", 8000)
        return True

    def open_folder(self, sweep_id: str) -> None:
        record = self._record(sweep_id, "Cannot open the sweep folder", readable=False)
        if record is not None and record.condition == "missing":
            show_error("Cannot open the sweep folder", record.problem)
        elif record is not None:
            self._open_url(QUrl.fromLocalFile(str(record.folder)))

    def forget(self, sweep_id: str) -> bool:
        ws = self.training.workspace
        if ws is None:
            return False
        try:
            ws.sweeps.forget(sweep_id)
        except SegstudioError as exc:
            show_error("Cannot remove the sweep from the run history", str(exc))
            return False
        self.panel.refresh_runs()
        self._show_message(f"Removed {sweep_id} from the run history; the folder is left as it is (Train → Add "
                           "Sweep Folder… brings it back).", 10000)
        return True

    def add_folder_dialog(self) -> bool:
        """Train → Add Sweep Folder…: choose a sweep folder, then :meth:`add_folder`."""
        if self.training.workspace is None:
            self._show_message("Open a dataset first: its workspace keeps the list of sweeps.", 6000)
            return False
        path = QFileDialog.getExistingDirectory(self._dialog_parent, "Add a sweep folder (segstudio sweep --out)",
                                                str(Path.home()))
        return bool(path) and self.add_folder(Path(path))

    def add_folder(self, folder: Path) -> bool:
        """List the sweep in ``folder`` in the run history by reference (nothing is copied)."""
        ws = self.training.workspace
        if ws is None:
            return False
        try:
            record, new = ws.sweeps.add(folder)
        except SegstudioError as exc:
            show_error("Cannot add the sweep folder", str(exc))
            return False
        self.panel.refresh_runs()
        self._show_panel()
        self.panel.tabs.setCurrentWidget(self.panel.history)
        self.panel.history.select_sweep(record.id)
        self._show_message(f"The sweep {record.name} ({record.status_text}) " + (
            f"is in the run history, read from {record.folder}." if new else "is in the run history already."), 10000)
        return True

    def _on_history_sweep_selected(self, sweep_id: str) -> None:
        record = self.panel.history.sweep(sweep_id)
        if record is None or self.training.running:
            return
        best = record.best()
        text = f"Sweep {record.name}: {record.status_text}"
        if best is not None:
            text += f" · best {best.label} ({best.best_metric_name} {best.best_metric:.3f})"
        self.panel.state_label.setText(text if not record.problem else f"{text}\n{record.problem}")
        self.panel.state_label.setToolTip(str(record.folder))
