"""Train → Report on Runs…: the HTML report of ``segstudio report`` (``engine.report``) from the app.

A dialog picks the workspace's runs that have a checkpoint (the one selected in the Training panel's Runs tab, else
every finished run, checked), how many worst images to show and where to write the file (default: the
workspace's ``reports/`` folder). The runs are scored in the background on a
:class:`~segstudio.gui.common.workers.GeneratorWorker` against the open dataset, with progress and Stop in the
status bar; the report is then written (HTML, CSV and JSON) and opened in the browser when asked."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.gui.common.errors import show_error
from segstudio.gui.common.status_job import job_widgets
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.workspace.records import RunRecord, RunStatus

log = logging.getLogger(__name__)


def _has_checkpoint(run: RunRecord) -> bool:
    """What the report can score: the checkpoint ``engine.report.find_checkpoint`` would pick."""
    from segstudio.engine.report import ReportError, find_checkpoint

    try:
        find_checkpoint(run.folder)
    except ReportError:
        return False
    return True


def _has_holdout(run: RunRecord, dataset: Any) -> bool:
    """Whether the report can score ``run`` on images it did not train on: its own hold-out (``data.val_fraction``
    or a k-fold fold) or the dataset's validation split. A run trained on every image (the small-data recipes) has
    nothing to be scored on."""
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.data import holds_out

    try:
        cfg = TrainConfig.from_dict(run.config or {})
    except SegstudioError:  # a config this version cannot read: the report says what is wrong with the run
        return True
    return holds_out(dataset, cfg.data)


@dataclass(frozen=True)
class ReportRequest:
    runs: tuple[RunRecord, ...]
    worst: int
    out: Path
    open_when_done: bool


class ReportDialog(QDialog):
    """Which runs, how many worst images, where to write."""

    def __init__(self, runs: Sequence[RunRecord], *, selected: str | None, default_out: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report on Runs")
        self.setObjectName("reportDialog")
        self._runs = list(runs)
        intro = QLabel("Scores each run's checkpoint on its validation images of this dataset and writes one HTML "
                       "file: configuration, curves, per-class table, the worst images with their overlays and a "
                       "comparison table (CSV and JSON beside it).")
        intro.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setObjectName("reportRuns")
        for run in self._runs:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started or run.created))
            extra = f" · {run.best_metric_name} {run.best_metric:.4f}" if run.best_metric is not None else ""
            item = QListWidgetItem(f"{run.name or run.id} · {when} ({run.status.value}{extra})")
            item.setData(Qt.ItemDataRole.UserRole, run.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = run.id == selected if selected is not None else run.status is RunStatus.FINISHED
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setToolTip(str(run.folder))
            self.list.addItem(item)
        self.worst = QSpinBox(self)
        self.worst.setObjectName("reportWorst")
        self.worst.setRange(0, 50)
        self.worst.setValue(6)
        self.worst.setSuffix(" images")
        self.out = QLineEdit(str(default_out), self)
        self.out.setObjectName("reportOut")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out, 1)
        row.addWidget(browse)
        self.open_box = QCheckBox("Open in the browser when done", self)
        self.open_box.setChecked(True)
        form = QFormLayout()
        form.addRow("Worst images per run", self.worst)
        form.addRow("Report file", row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Write Report")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.list.itemChanged.connect(lambda _item: self._sync())
        self.out.textChanged.connect(lambda _t: self._sync())
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(QLabel("Runs (with a checkpoint):"))
        lay.addWidget(self.list, 1)
        lay.addLayout(form)
        lay.addWidget(self.open_box)
        lay.addWidget(self.buttons)
        self.resize(560, 420)
        self._sync()

    def chosen(self) -> list[RunRecord]:
        ids = {self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
               if self.list.item(i).checkState() == Qt.CheckState.Checked}
        return [r for r in self._runs if r.id in ids]

    def request(self) -> ReportRequest:
        out = Path(self.out.text().strip()).expanduser()
        if out.suffix.lower() not in (".html", ".htm"):
            out = out.with_name(out.name + ".html")
        return ReportRequest(runs=tuple(self.chosen()), worst=self.worst.value(), out=out,
                             open_when_done=self.open_box.isChecked())

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write the report to", self.out.text(), "HTML (*.html)")
        if path:
            self.out.setText(path)

    def _sync(self) -> None:
        ok = bool(self.chosen()) and bool(self.out.text().strip())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


class ReportController(QObject):
    """Owns Train → Report on Runs…; ``ask`` replaces the dialog in tests (returns a request or None)."""

    def __init__(self, *, review: Any, training: Any, training_panel: Any, status_bar: QStatusBar,
                 show_message: Callable[[str, int], None], parent: QWidget | None = None,
                 ask: Callable[[Sequence[RunRecord], str | None, Path], ReportRequest | None] | None = None,
                 open_url: Callable[[QUrl], object] | None = None) -> None:
        super().__init__(parent)
        self.review, self.training, self.training_panel = review, training, training_panel
        self._show_message = show_message
        self._parent = parent
        self._ask = ask or self._ask_with_dialog
        self._open_url = open_url or QDesktopServices.openUrl
        self._worker: GeneratorWorker | None = None
        self._request: ReportRequest | None = None
        #: the files of the last report written (html, csv, json)
        self.last_written: tuple[Path, ...] = ()
        self.progress, self.stop_button = job_widgets(status_bar, name="report", fmt="report %v/%m",
                                                      stop_tip="Stop writing the report (nothing is written)", on_stop=self.stop)

    def running(self) -> bool:
        return self._worker is not None and self._worker.running

    def _ask_with_dialog(self, runs: Sequence[RunRecord], selected: str | None, out: Path) -> ReportRequest | None:
        dlg = ReportDialog(runs, selected=selected, default_out=out, parent=self._parent)
        return dlg.request() if dlg.exec() == QDialog.DialogCode.Accepted else None

    def report_on_runs(self) -> bool:
        """Ask which runs, then score them in the background; False when nothing starts (and why is said)."""
        ds, ws = self.review.dataset, self.review.workspace
        if ds is None or ws is None:
            self._show_message("Open a dataset first.", 5000)
            return False
        if self.running():
            self._show_message("A report is being written already (Stop is in the status bar).", 5000)
            return False
        runs = [r for r in self.training.runs() if _has_checkpoint(r)]
        if not runs:
            self._show_message("No run of this dataset has a checkpoint yet: train one first (Train → Start "
                               "Training).", 8000)
            return False
        scorable = [r for r in runs if _has_holdout(r, ds)]
        if not scorable:
            self._show_message("These runs trained on every image (no hold-out), so a report has nothing unseen to "
                               "score them on: set Hold-out in the Training panel's Settings and train again, or "
                               "cross-validate the recipe (segstudio cv).", 12000)
            return False
        runs = scorable
        selected = self.training_panel.history.selected_run_id()
        if selected not in {r.id for r in runs}:
            selected = None
        default_out = Path(ws.folder) / "reports" / time.strftime("report-%Y%m%d-%H%M%S.html")
        request = self._ask(runs, selected, default_out)
        if request is None or not request.runs:
            return False
        folders = [r.folder for r in request.runs]

        def start(token: Any) -> Any:
            from segstudio.engine.report import build_report

            return build_report(folders, dataset=ds, worst=request.worst, cancel=token)

        worker = GeneratorWorker(start, name="report", parent=self)
        worker.sig_progress.connect(self._on_progress)
        worker.sig_finished.connect(self._on_finished)
        worker.sig_cancelled.connect(self._on_cancelled)
        worker.sig_errored.connect(self._on_errored)
        self._worker, self._request = worker, request
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self._set_busy(True)
        worker.start()
        self._show_message(f"Scoring {len(folders)} run(s) for the report…", 6000)
        return True

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return self._worker.stop_and_wait(timeout_s) if self._worker is not None else True

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.stop_button.setVisible(busy)

    def _on_progress(self, ev: object) -> None:
        from segstudio.engine.evaluate import SampleEvaluated
        from segstudio.engine.report import ReportRunStarted

        if isinstance(ev, ReportRunStarted):
            self.progress.setFormat(f"report: run {ev.index + 1}/{ev.total} %v/%m")
            self.progress.setRange(0, max(1, ev.samples))
            self.progress.setValue(0)
        elif isinstance(ev, SampleEvaluated):
            self.progress.setRange(0, max(1, ev.total))
            self.progress.setValue(ev.index + 1)

    def _on_finished(self, last: object) -> None:
        from segstudio.engine.report import Report, write_report

        self._set_busy(False)
        request = self._request
        if not isinstance(last, Report) or request is None:
            return
        try:
            request.out.parent.mkdir(parents=True, exist_ok=True)
            self.last_written = tuple(write_report(last, request.out))
        except (SegstudioError, OSError) as exc:
            show_error("Could not write the report", str(exc))
            return
        html = self.last_written[0]
        self._show_message(f"Report written: {html} (CSV and JSON beside it)", 12000)
        log.info("report of %d run(s) written to %s", len(last.runs), html)
        if request.open_when_done:
            self._open_url(QUrl.fromLocalFile(str(html)))

    def _on_cancelled(self, _last: object) -> None:
        self._set_busy(False)
        self._show_message("Report stopped: nothing was written.", 6000)

    def _on_errored(self, message: str, details: str) -> None:
        self._set_busy(False)
        show_error("Cannot write the report", message, details)
