"""Training elsewhere, from the app: Train → Export Run Bundle… writes the Training panel's settings and the open
dataset as a run bundle (``workspace.bundles``: a config, a dataset reference, a torchrun launch script and a SLURM
template) to train on this computer's GPUs or a cluster's nodes; Train → Import Run Folder… brings the finished run
back into the workspace's run history (``workspace.run_import``), where Use This Model promotes it like any run.

The import copies the run in the background (progress and Stop in the status bar): the engine checks that its
checkpoint loads and fits the open dataset's classes, then the copy is renamed into ``runs/`` and recorded on the GUI
thread. The window composes; this controller holds the behaviour and receives its collaborators.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QFileDialog, QStatusBar, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.datasets.registry import OPENED_SUBFOLDER
from segstudio.gui.common.errors import show_error
from segstudio.gui.common.status_job import job_widgets
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.gui.loop.bundle_dialog import BundleDialog, BundleFacts
from segstudio.gui.loop.training import TrainingController
from segstudio.gui.loop.training_panel import TrainingPanel, loss_text
from segstudio.workspace import RunRecord
from segstudio.workspace.bundles import Bundle, DatasetRef, LaunchSpec, write_bundle
from segstudio.workspace.run_import import ImportProgress, RunImport, inspect_run_folder

log = logging.getLogger(__name__)

#: workspace state keys: the folder the last bundle went into, the folder the last run was imported from
BUNDLE_DIR_KEY, IMPORT_DIR_KEY = "bundle_dir", "run_import_dir"
_GENERIC = {"data", "dataset", "datasets", "images", "train", "raw"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _dataset_name(root: Path) -> str:
    return root.parent.name if root.name.lower() in _GENERIC and root.parent.name else root.name


class BundleController(QObject):
    """``ask(dialog) -> bool`` shows the export dialog (tests replace it); ``sig_imported(RunRecord)`` after an
    import is recorded."""

    sig_imported = Signal(object)

    def __init__(self, *, training: TrainingController, panel: TrainingPanel, status_bar: QStatusBar,
                 show_message: Callable[[str, int], None], show_panel: Callable[[], None] = lambda: None,
                 dialog_parent: QWidget | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.training, self.panel = training, panel
        self._show_message, self._show_panel = show_message, show_panel
        self._dialog_parent = dialog_parent
        self.ask: Callable[[BundleDialog], bool] = lambda dlg: dlg.exec() == QDialog.DialogCode.Accepted
        self.dialog: BundleDialog | None = None
        self._dialog_config: Any = None
        self.worker: GeneratorWorker | None = None
        self._import: RunImport | None = None
        self._percent = -1
        self.progress, self.stop_button = job_widgets(
            status_bar, name="runImport", fmt="importing %p%",
            stop_tip="Stop the import (nothing is kept)", on_stop=self.stop)

    # export -------------------------------------------------------------------------------------------------------
    def _facts(self, config: Any) -> BundleFacts:
        ds, ws = self.training.dataset, self.training.workspace
        assert ds is not None and ws is not None
        steps = f", {config.max_steps_per_epoch} steps each" if config.max_steps_per_epoch else ""
        cfg = (f"{config.model.architecture} / {config.model.encoder}, {config.epochs} epoch(s){steps}, "
               f"{config.data.image_size} px, batch {config.data.batch_size} per process, loss {loss_text(config)}, "
               f"augmentation {config.augment.preset} — from the Training panel")
        root = Path(ds.root).resolve()
        data = (f"{root} ({ds.format_name}, {len(ds.samples)} images). The machines that train must see it at "
                "this path, or set DATASET to where they do.")
        corr = (f"trained too, read from the workspace {ws.folder.resolve()}: the machines that train must see it "
                "there, or set WORKSPACE (empty leaves them out)"
                if self.panel.corrections.isChecked() else
                "not used (\"Train on my corrections too\" is off in the Training panel): the dataset's GT")
        note = ""
        if config.device != "auto":
            note = (f"The config trains on \"{config.device}\" (the Training panel's device). Choose Automatic there "
                    "to let each process take its node's GPU.")
        return BundleFacts(config=cfg, dataset=data, corrections=corr, device_note=note, dataset_path=str(root))

    def _gpu_count(self) -> int:
        """The CUDA devices the Training panel's device list found (it detects in the background: asked here if
        it has not yet, and the dialog is told when they arrive)."""
        return sum(1 for i in range(self.panel.device.count())
                   if str(self.panel.device.itemData(i) or "").startswith("cuda:"))

    def make_dialog(self) -> BundleDialog | None:
        """The export dialog filled from the Training panel and the open dataset (None, and said why, when there is
        nothing to export)."""
        ds, ws = self.training.dataset, self.training.workspace
        if ds is None or ws is None:
            self._show_message("Open a dataset first: the bundle trains on it.", 6000)
            return None
        try:
            config = self.panel.current_config()
        except SegstudioError as exc:
            show_error("Cannot export a run bundle", str(exc))
            return None
        name = _UNSAFE.sub("-", f"{_dataset_name(Path(ds.root))}-{config.name or config.model.architecture}")
        base = Path(str(ws.state.get(BUNDLE_DIR_KEY, "") or Path.home()))
        folder = base / name
        for k in range(2, 1000):
            if not folder.exists():
                break
            folder = base / f"{name}-{k}"
        dlg = BundleDialog(folder=folder, name=name, facts=self._facts(config), gpus=self._gpu_count(),
                           parent=self._dialog_parent)
        if not self.panel.device.detection_started:  # the list detects once: ask it now
            # a bound slot: Qt drops the connection when the dialog goes before the detection ends
            self.panel.device.detect().sig_progress.connect(dlg.on_devices_detected)
        self.dialog, self._dialog_config = dlg, config
        return dlg

    def export_dialog(self) -> Bundle | None:
        """Train → Export Run Bundle…: ask where and how, then :meth:`export`."""
        dlg = self.make_dialog()
        if dlg is None:
            return None
        try:
            if not self.ask(dlg):
                return None
            return self.export(dlg.folder(), launch=dlg.launch_spec(), name=dlg.name(), config=self._dialog_config)
        finally:
            self.dialog, self._dialog_config = None, None
            dlg.deleteLater()

    def export(self, folder: Path, *, launch: LaunchSpec, name: str = "", config: Any = None) -> Bundle | None:
        """Write the bundle of ``config`` (default: the Training panel's) for the open dataset into ``folder``."""
        ds, ws = self.training.dataset, self.training.workspace
        if ds is None or ws is None:
            self._show_message("Open a dataset first: the bundle trains on it.", 6000)
            return None
        try:
            cfg = config if config is not None else self.panel.current_config()
            ref = DatasetRef(path=Path(ds.root).resolve(), format=ds.format_name,
                             format_options={k: v for k, v in ds.options.items() if k != OPENED_SUBFOLDER},
                             samples=len(ds.samples), classes=tuple(c.name for c in ds.schema.classes),
                             workspace=ws.folder.resolve() if self.panel.corrections.isChecked() else None)
            bundle = write_bundle(folder, config=cfg.to_dict(), dataset=ref, launch=launch, name=name)
        except SegstudioError as exc:
            show_error("Cannot export the run bundle", str(exc))
            return None
        if not ws.read_only:
            ws.state.set(BUNDLE_DIR_KEY, str(bundle.folder.parent))
        log.info("run bundle %s written to %s", bundle.name, bundle.folder)
        self._show_message(f"Run bundle written to {bundle.folder}: run its launch_torchrun.sh there (or sbatch "
                           "segstudio.sbatch on a cluster), then Train → Import Run Folder… brings the run back.", 15000)
        return bundle

    # import -------------------------------------------------------------------------------------------------------
    @property
    def importing(self) -> bool:
        return self.worker is not None and self.worker.running

    def import_dialog(self) -> bool:
        """Train → Import Run Folder…: choose a finished run folder (or a bundle's folder), then :meth:`import_folder`."""
        ws = self.training.workspace
        if ws is None:
            self._show_message("Open a dataset first: its workspace keeps the run history.", 6000)
            return False
        start = str(ws.state.get(IMPORT_DIR_KEY, "") or ws.state.get(BUNDLE_DIR_KEY, "") or Path.home())
        path = QFileDialog.getExistingDirectory(self._dialog_parent, "Import a finished run folder (or a run bundle)",
                                                start)
        return bool(path) and self.import_folder(Path(path))

    def import_folder(self, folder: Path) -> bool:
        """Import the finished run in ``folder`` in the background; False (and said why) when it cannot start."""
        title = "Cannot import the run"
        ws, ds = self.training.workspace, self.training.dataset
        if ws is None:
            self._show_message("Open a dataset first: its workspace keeps the run history.", 6000)
            return False
        if self.importing:
            self._show_message("A run is being imported already: wait for it, or stop it.", 6000)
            return False
        if ws.read_only:
            show_error(title, f"This workspace is open read-only ({ws.read_only_reason}): importing a run writes "
                       "into it.")
            return False
        try:
            summary = inspect_run_folder(folder)
            ws.runs.check_writable()
            job = RunImport(ws.runs, summary)
        except SegstudioError as exc:
            show_error(title, str(exc))
            return False
        ws.state.set(IMPORT_DIR_KEY, str(summary.folder.parent))
        schema = ds.schema if ds is not None else None
        self._import = job

        def start(token: Any) -> Iterator[Any]:
            from segstudio.engine.run_check import check_run_for_import

            check_run_for_import(summary, schema=schema)
            yield from job.copy(cancelled=lambda: bool(token.cancelled))

        worker = GeneratorWorker(start, name="run-import", parent=self)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_finished.connect(self._on_worker_finished)
        worker.sig_cancelled.connect(self._on_worker_cancelled)
        worker.sig_errored.connect(self._on_worker_errored)
        self.worker = worker
        self._percent = -1
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self._set_busy(True)
        self._show_message(f"Importing the run {summary.name} from {summary.folder}…", 0)
        worker.start()
        return True

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return self.worker.stop_and_wait(timeout_s) if self.worker is not None else True

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.stop_button.setVisible(busy)

    def _on_worker_progress(self, ev: object) -> None:
        if isinstance(ev, ImportProgress) and ev.total:
            percent = int(100 * ev.done / ev.total)
            if percent != self._percent:
                self._percent = percent
                self.progress.setValue(percent)

    def _on_worker_finished(self, _last: object) -> None:
        self._set_busy(False)
        job, self._import = self._import, None
        if job is None:
            return
        try:
            record = job.commit()
        except SegstudioError as exc:
            self._show_message("", 1)
            show_error("Cannot import the run", str(exc))
            return
        self._show_imported(record)

    def _show_imported(self, record: RunRecord) -> None:
        self.panel.refresh_runs()
        self._show_panel()
        self.panel.tabs.setCurrentWidget(self.panel.history)
        self.panel.history.select_run(record.id)
        best = f", {record.best_metric_name} {record.best_metric:.3f}" if record.best_metric is not None else ""
        self._show_message(f"Run {record.name} added to the run history ({record.status.value}{best}); Use This "
                           "Model makes it the model.", 15000)
        self.sig_imported.emit(record)

    def _on_worker_cancelled(self, _last: object) -> None:
        self._set_busy(False)
        if self._import is not None:
            self._import.discard()
        self._import = None
        self._show_message("Import stopped: nothing was kept.", 8000)

    def _on_worker_errored(self, message: str, details: str) -> None:
        self._set_busy(False)
        if self._import is not None:
            self._import.discard()
        self._import = None
        self._show_message("", 1)
        show_error("Cannot import the run", message, details)
