"""Train → Export Run Bundle…: where the bundle goes and how it is launched — processes (GPUs) per node, nodes, and
what the SLURM template asks for — with what it will train (the Training panel's settings, the open dataset, the
corrections) and the torchrun command it runs, updated as the numbers change.

The folder is checked as it is typed (``workspace.bundles.check_bundle_folder``): a folder holding a bundle, a run or
other files is said under it and Export stays off. The dialog only asks; ``gui.loop.bundles`` writes.
"""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.workspace.bundles import (
    CONFIG_NAME,
    DEFAULT_OUT,
    LaunchSpec,
    check_bundle_folder,
    torchrun_command,
)


@dataclass(frozen=True, kw_only=True)
class BundleFacts:
    """What the bundle will hold, in words for the dialog."""

    config: str
    dataset: str
    corrections: str
    device_note: str = ""
    #: the dataset's path as the command shows it
    dataset_path: str = "$DATASET"


class BundleDialog(QDialog):
    """``folder()``, ``name()`` and ``launch_spec()`` are the answers once accepted."""

    def __init__(self, *, folder: Path, name: str, facts: BundleFacts, gpus: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("bundleDialog")
        self.setWindowTitle("Export Run Bundle")
        self.setMinimumWidth(640)
        intro = QLabel("Write the Training panel's settings and the open dataset as a folder that trains with "
                       "<b>torchrun</b> — on this computer with all its GPUs, or on several nodes of a cluster "
                       "(a SLURM template is included). Bring the finished run back with "
                       "<b>Train → Import Run Folder…</b>", self)
        intro.setWordWrap(True)
        self.folder_edit = QLineEdit(str(folder), self)
        self.folder_edit.setObjectName("bundleFolder")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse_clicked)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        self._dataset_path = facts.dataset_path
        self.problem = QLabel(self)
        self.problem.setObjectName("bundleProblem")
        self.problem.setWordWrap(True)
        self.problem_icon = QLabel(self)
        self.problem_icon.setPixmap(qta.icon("fa5s.exclamation-triangle", color="#e8a33d").pixmap(16, 16))
        prow = QHBoxLayout()
        prow.addWidget(self.problem_icon, 0, Qt.AlignmentFlag.AlignTop)
        prow.addWidget(self.problem, 1)
        self.name_edit = QLineEdit(name, self)
        self.name_edit.setObjectName("bundleName")
        self.nproc = self._spin(1, 1024, max(1, gpus), "Training processes on each node: one per GPU (on a CPU node, "
                                "one, using all its cores)")
        self.nnodes = self._spin(1, 10_000, 1, "Machines taking part; more than one needs the dataset and the run "
                                 "folder on a file system they share")
        self.gpus = self._spin(0, 1024, max(1, gpus) if gpus else 1, "What the SLURM job asks for "
                               "(--gpus-per-node); 0 for a CPU cluster")
        self.cpus = self._spin(1, 4096, min(64, 8 * max(1, gpus)), "What the SLURM job asks for (--cpus-per-task: "
                               "the one task of a node), shared out among its processes")
        self.time_limit = QLineEdit("04:00:00", self)
        self.time_limit.setMaximumWidth(self.fontMetrics().horizontalAdvance("0-00:00:00") + 24)
        self.time_limit.setToolTip("The SLURM job's --time: HH:MM:SS, D-HH:MM:SS or minutes")
        self._gpus_follow = True
        self._nproc_edited, self._setting = False, False
        self.gpus.valueChanged.connect(self._on_gpus_edited)
        self.nproc.valueChanged.connect(self._on_nproc_changed)
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("", prow)
        self._form, self._problem_row = form, form.rowCount() - 1
        form.addRow("Name", self.name_edit)
        form.addRow("Launch", self._inline(
            self.nproc, "process(es) per node, one per GPU,  on", self.nnodes, "node(s)"))
        form.addRow("SLURM job", self._inline(
            "GPUs per node", self.gpus, "  CPUs per node", self.cpus, "  time limit", self.time_limit))
        # read-only text boxes, not wrapped labels: long paths wrap inside them and the dialog keeps a sane height
        self.summary = QTextBrowser(self)
        self.summary.setObjectName("bundleSummary")
        rows = [("Config", facts.config), ("Dataset", facts.dataset), ("Corrections", facts.corrections)]
        if facts.device_note:
            rows.append(("Device", facts.device_note))
        self.summary.setHtml("".join(f"<p style='margin:0 0 3px 0'><b>{k}</b>: {html.escape(v)}</p>" for k, v in rows))
        self.summary.setFixedHeight(self.fontMetrics().lineSpacing() * 8)
        self.command = QPlainTextEdit(self)
        self.command.setObjectName("bundleCommand")
        self.command.setReadOnly(True)
        self.command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.command.setFixedHeight(self.command.fontMetrics().lineSpacing() * 4)
        form.addRow("Trains", self.summary)
        form.addRow("Runs", self.command)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("bundleExportButton")
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.buttons)
        for edit in (self.folder_edit, self.time_limit):
            edit.textChanged.connect(self._refresh)
        self.nnodes.valueChanged.connect(self._refresh)
        self._refresh()

    def _inline(self, *parts: str | QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        for part in parts:
            row.addWidget(QLabel(part, self) if isinstance(part, str) else part)
        row.addStretch(1)
        return row

    def _spin(self, lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        s = QSpinBox(self)
        s.setRange(lo, hi)
        s.setValue(value)
        s.setToolTip(tip)
        s.valueChanged.connect(self._refresh)
        return s

    # answers ------------------------------------------------------------------------------------------------------
    def folder(self) -> Path:
        return Path(self.folder_edit.text().strip()).expanduser()

    def name(self) -> str:
        return self.name_edit.text().strip() or self.folder().name

    def launch_spec(self) -> LaunchSpec:
        return LaunchSpec(nproc_per_node=self.nproc.value(), nnodes=self.nnodes.value(),
                          gpus_per_node=self.gpus.value(), cpus_per_node=self.cpus.value(),
                          time_limit=self.time_limit.text().strip())

    def set_gpu_count(self, n: int) -> None:
        """The GPUs this computer has, once detected: the default of processes per node (unless edited)."""
        if n > 0 and not self._nproc_edited:
            self._setting = True
            self.nproc.setValue(n)
            self._setting = False

    def on_devices_detected(self, options: tuple[object, ...]) -> None:
        """The Training panel's device list was detected (its DeviceOption items): one process per CUDA device."""
        self.set_gpu_count(sum(1 for o in options if str(getattr(o, "key", "")).startswith("cuda:")))

    # behaviour ----------------------------------------------------------------------------------------------------
    def _on_nproc_changed(self, value: int) -> None:
        self._nproc_edited = self._nproc_edited or not self._setting
        if self._gpus_follow and self.gpus.value() > 0:
            self.gpus.blockSignals(True)
            self.gpus.setValue(value)
            self.gpus.blockSignals(False)
            self.cpus.setValue(min(4096, max(self.cpus.value(), 8 * value)))
        self._refresh()

    def _on_gpus_edited(self, _value: int) -> None:
        self._gpus_follow = False

    def _on_browse_clicked(self) -> None:
        start = self.folder()
        start = start.parent if not start.is_dir() else start
        chosen = QFileDialog.getExistingDirectory(self, "Folder of the run bundle", str(start))
        if not chosen:
            return
        p = Path(chosen)
        # an empty folder is the bundle's; a folder with things in it gets the bundle as a new folder inside
        try:
            empty = not any(p.iterdir())
        except OSError:
            empty = False
        self.folder_edit.setText(str(p if empty else p / (self.folder().name or "segstudio-bundle")))

    def problem_text(self) -> str:
        """Why Export is off ("" when it is on)."""
        return "" if self.export_button.isEnabled() else self.problem.text()

    def _refresh(self) -> None:
        problem = ""
        if not self.folder_edit.text().strip():
            problem = "Choose the folder the bundle goes into."
        else:
            try:
                check_bundle_folder(self.folder())
                self.launch_spec().check()
            except SegstudioError as exc:
                problem = exc.message + (f" {exc.fix}" if exc.fix else "")
        self.problem.setText(problem)
        self._form.setRowVisible(self._problem_row, bool(problem))
        self.export_button.setEnabled(not problem)
        out = f"{self.folder() / DEFAULT_OUT}"
        cmd = torchrun_command(nproc_per_node=self.nproc.value(), nnodes=self.nnodes.value(),
                               rdzv_endpoint="HEAD_NODE:29500", dataset=self._dataset_path,
                               out=out)
        cmd[cmd.index("--config") + 1] = str(self.folder() / CONFIG_NAME)
        where = "on this computer" if self.nnodes.value() == 1 else f"on each of {self.nnodes.value()} nodes"
        self.command.setPlainText(f"{where}:\n" + " ".join(shlex.quote(c) for c in cmd))
