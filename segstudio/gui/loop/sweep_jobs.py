"""A sweep (``engine.sweep``) trained, resumed or reported in the background, in the training controller's one slot.

``SweepJobs.start`` takes a start function that returns ``run_sweep``'s events (the sweep file or folder is read
in the worker: checking a sweep imports torch, which the window must not wait for) and gives its worker to
``TrainingController.occupy``: Stop, Train → Stop Training and closing the window stop it after the current
batch, as they stop a run. Each of the sweep's runs starts, progresses and ends through the controller's own
signals (``sig_run_started`` / ``sig_event`` / ``sig_run_ended`` with the run's record), so the training panel
shows its curves, log and outcome as it shows any run's; the sweep as a whole is told here
(``sig_finished(summary, SweepFinished | None)``, ``sig_errored(message, traceback)``) and in the panel's
progress bar and state line (which run of how many; the report's scoring).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.loop.run_monitor import RunMonitor
from segstudio.gui.loop.training import TrainingController
from segstudio.workspace import RunRecord

log = logging.getLogger(__name__)

StartFn = Callable[[Any], Iterator[Any]]


class SweepJobs(QObject):
    """``sig_finished(summary, finished)`` when a sweep job ends (finished or stopped; ``finished`` is the
    engine's ``SweepFinished``, None when it stopped before its first event), ``sig_errored(message,
    traceback)`` when it failed, ``sig_changed()`` when the sweep's records changed (refresh the history)."""

    sig_finished = Signal(str, object)
    sig_errored = Signal(str, str)
    sig_changed = Signal()

    def __init__(self, *, training: TrainingController, monitor: RunMonitor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.training, self.monitor = training, monitor
        self.worker: GeneratorWorker | None = None
        #: the sweep of the job (its id in ``ws.sweeps`` and its folder)
        self.sweep_id, self.folder = "", Path()
        self.what = "sweep"
        self._finished: Any = None

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.running

    def start(self, start: StartFn, *, sweep_id: str, folder: Path, what: str) -> None:
        """Run ``start(token)`` (``run_sweep``'s events) for the sweep ``sweep_id`` in ``folder``; ``what`` names
        the job in messages (``sweep``, ``report``). Raises ``SegstudioError`` when the slot is taken."""
        worker = GeneratorWorker(start, name=f"sweep-{folder.name}", parent=self)
        self.training.occupy(worker, sweep=folder)
        self.worker, self.sweep_id, self.folder, self.what, self._finished = worker, sweep_id, folder, what, None
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_finished.connect(lambda _last: self._on_worker_ended(stopped=False))
        worker.sig_cancelled.connect(lambda _last: self._on_worker_ended(stopped=True))
        worker.sig_errored.connect(self._on_worker_errored)
        m = self.monitor
        m.error_label.setVisible(False)
        m.progress.setFormat("%p%")
        m.progress.setRange(0, 0)
        m.state_label.setText(f"Reading the sweep {folder.name} and preparing…")
        log.info("sweep %s: %s started in %s", sweep_id, what, folder)
        worker.start()

    def _record(self, name: str) -> RunRecord | None:
        ws = self.training.workspace
        found = ws.sweeps.find_run(f"{self.sweep_id}/runs/{name}") if ws is not None else None
        return found[1].record() if found is not None else None

    # the engine's events ----------------------------------------------------------------------------------------------
    def _on_worker_progress(self, ev: object) -> None:
        from segstudio.engine.evaluate import SampleEvaluated
        from segstudio.engine.report import ReportRunStarted
        from segstudio.engine.sweep import SweepFinished, SweepRunEnded, SweepRunStarted, SweepStarted

        m = self.monitor
        if isinstance(ev, SweepStarted):
            m.log(f"sweep {ev.out.name}: {ev.total} run(s), {ev.done} done already")
            self.sig_changed.emit()
        elif isinstance(ev, SweepRunStarted):
            rec = self._record(ev.name)
            if rec is not None:
                self.training.sig_run_started.emit(rec)  # the panel shows this run (its curves so far, if resumed)
            m.progress.setFormat(f"run {ev.index + 1}/{ev.total}: %p%")
            m.log(f"sweep {self.folder.name}: run {ev.index + 1}/{ev.total}, {ev.name}"
                  + (" (resumed from its last checkpoint)" if ev.resume else ""))
        elif isinstance(ev, SweepRunEnded):
            rec = self._record(ev.name)
            if rec is not None:
                self.training.sig_run_ended.emit(rec)
            if ev.error:
                m.log(f"run {ev.name} failed: {ev.error}; the sweep goes on with the next run")
        elif isinstance(ev, ReportRunStarted):
            m.progress.setFormat(f"report {ev.index + 1}/{ev.total}: %v/%m")
            m.progress.setRange(0, max(1, ev.samples))
            m.progress.setValue(0)
            m.state_label.setText(f"Writing the sweep's report: scoring {ev.name} ({ev.index + 1}/{ev.total}) on "
                                  f"its {ev.samples} validation image(s)")
        elif isinstance(ev, SampleEvaluated):
            m.progress.setValue(ev.index + 1)
        elif isinstance(ev, SweepFinished):
            self._finished = ev
        else:
            self.training.sig_event.emit(ev)

    def _summary(self, stopped: bool) -> str:
        fin, name = self._finished, self.folder.name
        if fin is None:
            return f"Sweep {name}: stopped before its first run." if stopped else f"Sweep {name}: nothing to do."
        done = sum(r.status == "done" for r in fin.rows)
        failed = sum(r.status == "failed" for r in fin.rows)
        text = f"Sweep {name}: {done}/{len(fin.rows)} done" + (f", {failed} failed" if failed else "")
        if fin.stopped:
            return text + "; stopped. Resume continues it (Runs tab, or Train → Run Sweep… with the same file)."
        if fin.report is not None:
            text += f"; report: {fin.report}"
        if fin.report_error:
            text += f"; the report could not be written: {fin.report_error}"
        return text + "."

    def _on_worker_ended(self, *, stopped: bool) -> None:
        m = self.monitor
        summary = self._summary(stopped)
        m.progress.setFormat("%p%")
        if m.progress.maximum() == 0:
            m.progress.setRange(0, 1)
        m.state_label.setText(summary)
        m.state_label.setToolTip(str(self.folder))
        m.log(summary)
        fin = self._finished
        if fin is not None and fin.report_error:
            m.show_error(f"The sweep's report could not be written: {fin.report_error}")
        self.sig_changed.emit()
        self.sig_finished.emit(summary, fin)

    def _on_worker_errored(self, message: str, details: str) -> None:
        m = self.monitor
        if m.progress.maximum() == 0:
            m.progress.setRange(0, 1)
        m.progress.setFormat("%p%")
        m.show_error(message)
        m.log(f"error: {message}")
        m.state_label.setText(f"The sweep {self.folder.name} did not run to its end.")
        self.sig_changed.emit()
        self.sig_errored.emit(message, details)
