"""Opening datasets and predictions folders: the File menu's dialogs, the recent list, asking for the format
when detection is ambiguous, attaching the workspace (read-only when another segstudio holds it, rebuilt when
damaged) and offering to restore unsaved work after a crash. Running jobs are stopped and the current sample
saved before a workspace closes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu, QMessageBox, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.core.paths import sample_dataset_dir
from segstudio.datasets.base import Dataset
from segstudio.datasets.registry import OPENED_SUBFOLDER, AmbiguousFormatError, format_descriptions
from segstudio.gui.common.errors import show_error
from segstudio.gui.loop.predictions_view import PredictionsController
from segstudio.gui.loop.training_panel import TrainingPanel
from segstudio.gui.screen.navigation import NavigationController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import OpenRequest, SessionController
from segstudio.gui.screen.status import StatusController
from segstudio.gui.window import workspace_dialogs
from segstudio.gui.window.preferences import SettingsStore, effective_schema
from segstudio.workspace.lock import WorkspaceLockedError

log = logging.getLogger(__name__)


class _Job(Protocol):
    def stop_and_wait(self, timeout_s: float = ...) -> bool: ...


class OpenController(QObject):
    def __init__(self, *, dialog_parent: QWidget, session: SessionController, review: ReviewController,
                 settings: SettingsStore, navigation: NavigationController, status: StatusController,
                 predictions: PredictionsController, training_panel: TrainingPanel, export_jobs: _Job,
                 prepare_sample: Callable[..., object], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._parent, self.session, self.review, self.settings = dialog_parent, session, review, settings
        self.navigation, self.status, self.predictions = navigation, status, predictions
        self.training_panel, self.export_jobs, self._prepare_sample = training_panel, export_jobs, prepare_sample

    def _stop_jobs(self, *, action: str) -> bool:
        """Before the workspace closes: a training run stops (when the user agrees), prediction and export jobs
        stop, the current sample is saved. False: the user keeps the run going."""
        if not self.training_panel.stop_for_close(action=action):
            return False
        self.predictions.inference.stop_and_wait(60)
        self.export_jobs.stop_and_wait(60)
        self.navigation.save_current()
        return True

    def _show(self, ds: Dataset) -> None:
        self.session.set_dataset(ds, extra=self._prepare_sample, side=self.review.prediction_mask)

    # datasets ---------------------------------------------------------------------------------------------------
    def open_dataset(self, path: str | Path, *, format_name: str | None = None,
                     predictions: str | Path | None = None) -> Dataset | None:
        """Open ``path`` (a dataset, or a workspace, which opens its dataset); ask for the format when detection is
        ambiguous; errors become a message box."""
        if not self._stop_jobs(action="open another dataset"):
            return None
        req = OpenRequest.resolve(path, format_name=format_name, predictions=predictions)
        path, format_name, predictions = req.path, req.format_name, req.predictions
        try:
            ds = self.session.load(path, format_name=format_name)
            # the colours the user chose (palette for datasets without colours, overrides) before any panel shows it
            ds.schema = effective_schema(ds.schema, self.settings.value, str(Path(ds.root).resolve()))
        except AmbiguousFormatError as exc:
            choice = self._choose_format(path, [n for n, _ in exc.candidates])
            return self.open_dataset(path, format_name=choice, predictions=predictions) if choice else None
        except SegstudioError as exc:
            show_error("Cannot open dataset", str(exc))
            return None
        if not self._open_workspace(ds, predictions=predictions, folder=req.workspace):
            return None
        self.predictions.dataset_opening(explicit_folder=self.review.predictions is not None)
        self.settings.value = self.settings.value.with_recent(str(Path(path).resolve()))
        self.settings.save()
        self._offer_recovery()
        self._show(ds)
        problems = ds.all_problems()
        if problems:
            self.status.show_message(f"{len(problems)} problem(s) found; flagged samples are marked", 8000)
        elif ds.options.get(OPENED_SUBFOLDER):
            self.status.show_message(f"Opened the data folder {ds.root} (nothing to open beside it)", 8000)
        return ds

    def _open_workspace(self, ds: Dataset, *, predictions: str | Path | None, read_only: bool = False,
                        folder: Path | None = None) -> bool:
        """Attach the dataset's workspace; asks before opening one another segstudio holds (read-only or not at
        all) and tells when a damaged one was rebuilt. False: the dataset is not opened (the session is as it
        was)."""
        try:
            self.review.open(ds, predictions=predictions, read_only=read_only, workspace_dir=folder)
        except WorkspaceLockedError as exc:
            if not workspace_dialogs.ask_open_read_only(self._parent, exc):
                return False
            return self._open_workspace(ds, predictions=predictions, read_only=True, folder=folder)
        except SegstudioError as exc:
            if predictions is None:
                show_error("Cannot open the workspace", str(exc))
                return False
            show_error("Cannot open the workspace or predictions", str(exc))
            return self._open_workspace(ds, predictions=None, read_only=read_only, folder=folder)
        ws = self.review.workspace
        if ws is not None and ws.rebuild_report is not None:
            workspace_dialogs.tell_rebuilt(self._parent, ws.rebuild_report)
        self.status.show_workspace_state()
        return True

    def _choose_format(self, path: str | Path, names: list[str]) -> str | None:
        """Ask which format to open an ambiguous path as; each choice shows the format's description."""
        desc = format_descriptions()
        labels = [f"{n} — {desc.get(n, '')}" for n in names]
        choice, ok = QInputDialog.getItem(self._parent, "Choose the dataset format",
                                          f"More than one format fits\n{path}\nOpen it as:", labels, 0, False)
        return names[labels.index(choice)] if ok and choice in labels else None

    def _offer_recovery(self) -> None:
        pending = self.review.pending_recoveries()  # none when read-only: the journals are the holder's
        if not pending:
            return
        names = "\n".join(f"  {p.sample_id} ({p.patches} stroke(s))" for p in pending[:12])
        more = f"\n  … and {len(pending) - 12} more" if len(pending) > 12 else ""
        answer = QMessageBox.question(
            self._parent, "Restore unsaved work?",
            f"segstudio did not exit cleanly last time. Unsaved edits were kept for:\n{names}{more}\n\n"
            "Restore them (each becomes a new mask version)?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard, QMessageBox.StandardButton.Yes,
        )
        for p in pending:
            try:
                if answer == QMessageBox.StandardButton.Yes:
                    v = self.review.restore(p)
                    log.info("restored unsaved edits of %s as version %d", p.sample_id, v)
                else:
                    self.review.discard_recovery(p)
            except SegstudioError as exc:
                show_error("Cannot restore unsaved work", str(exc))

    # predictions ------------------------------------------------------------------------------------------------
    def open_predictions(self, folder: str | Path) -> bool:
        ds = self.session.dataset
        if ds is None:
            return False
        # the workspace is reopened, and a run writes its record and reads corrections through it
        if not self._stop_jobs(action="open a predictions folder"):
            return False
        try:
            current = self.review.workspace
            self.review.open(ds, predictions=folder, read_only=self.review.read_only,
                             workspace_dir=current.folder if current is not None else None)
        except SegstudioError as exc:
            show_error("Cannot open the predictions folder", str(exc))
            return False
        self.status.show_workspace_state()
        self.predictions.dataset_opening(explicit_folder=True)
        cur = self.session.current
        self._show(ds)
        if cur is not None:
            self.session.go_to_id(cur.sample.id)
        return True

    # the File menu ----------------------------------------------------------------------------------------------
    def open_sample_dataset(self) -> None:
        self.open_dataset(sample_dataset_dir())

    def open_folder_dialog(self) -> None:
        last = self.settings.value.last_dataset
        start = str(Path(last).parent) if last else str(Path.home())
        path = QFileDialog.getExistingDirectory(self._parent, "Open dataset folder", start)
        if path:
            self.open_dataset(path)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent, "Open annotation file", str(Path.home()),
                                              "Annotations (*.json);;All files (*)")
        if path:
            self.open_dataset(path)

    def open_predictions_dialog(self) -> None:
        ds = self.session.dataset
        path = QFileDialog.getExistingDirectory(self._parent, "Open predictions folder",
                                                str(ds.root) if ds is not None else str(Path.home()))
        if path:
            self.open_predictions(path)

    def fill_recent_menu(self, menu: QMenu) -> None:
        menu.clear()
        recent = self.settings.value.recent_datasets
        for p in recent:
            act = QAction(p, menu)
            act.triggered.connect(lambda _c=False, p=p: self.open_dataset(p))
            menu.addAction(act)
        if not recent:
            menu.addAction("(none yet)").setEnabled(False)
