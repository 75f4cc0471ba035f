"""The start screen: the central page while no dataset is open (and on File → Start Screen). It lists the recent
datasets and workspaces with their review progress and offers Open Folder…, Open File…, Open Sample.

The widget only asks for things (``sig_*_requested``); the main window opens them. Review progress is read from
each workspace read-only (no lock taken, nothing written) on a pool thread, so a slow or remote disk never blocks
the window: the list shows at once and each entry's progress line fills in when it is known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.workspace import ReviewStatus, Workspace, workspace_dir_for, workspace_settings_at

log = logging.getLogger(__name__)

PATH_ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True)
class RecentInfo:
    """What the start screen says about one recent path. ``counts``: review decisions per status (only the samples
    that have one); ``None`` when the dataset has no workspace yet."""

    path: str
    name: str
    kind: str  # "dataset" or "workspace"
    exists: bool
    counts: dict[ReviewStatus, int] | None = None
    corrected: int = 0  # samples with a saved correction
    note: str = ""

    def progress_text(self) -> str:
        if not self.exists:
            return "not found (moved or deleted?)"
        if self.note:
            return self.note
        if self.counts is None:
            return "not reviewed yet"
        done = {s: n for s, n in self.counts.items() if s != ReviewStatus.UNREVIEWED and n}
        if not done:
            return "not reviewed yet" + (f" · {self.corrected} corrected mask(s)" if self.corrected else "")
        parts = [f"{n} {s.value}" for s, n in done.items()]
        return f"{sum(done.values())} reviewed ({', '.join(parts)})" + (
            f" · {self.corrected} corrected mask(s)" if self.corrected else "")


def describe_recent(path: str) -> RecentInfo:
    """Read a recent entry's review progress without taking its workspace's lock (may take a while on a slow
    disk: call it off the GUI thread)."""
    p = Path(path)
    ws_settings = workspace_settings_at(p)
    kind = "workspace" if ws_settings is not None else "dataset"
    name = Path(ws_settings.dataset_root).name if ws_settings is not None else p.name
    if not p.exists():
        return RecentInfo(path, name, kind, exists=False)
    folder = (p.parent if p.is_file() else p) if ws_settings is not None else workspace_dir_for(p)
    if not (folder / "workspace.sqlite").is_file():
        return RecentInfo(path, name, kind, exists=True)
    try:
        ws = Workspace(folder, read_only=True)
    except SegstudioError as exc:
        log.info("cannot read the workspace of %s: %s", path, exc)
        return RecentInfo(path, name, kind, exists=True, note="workspace could not be read")
    try:
        counts = ws.reviews.summary()
        corrected = len(ws.versions.corrected_ids())
    except SegstudioError as exc:
        log.info("cannot read the reviews of %s: %s", path, exc)
        return RecentInfo(path, name, kind, exists=True, note="workspace could not be read")
    finally:
        ws.close()
    return RecentInfo(path, name, kind, exists=True, counts=counts, corrected=corrected)


class _InfoSignals(QObject):
    sig_described = Signal(int, object)  # generation, RecentInfo


class _DescribeTask(QRunnable):
    def __init__(self, generation: int, path: str, signals: _InfoSignals) -> None:
        super().__init__()
        self.generation, self.path, self.signals = generation, path, signals

    def run(self) -> None:
        try:
            info = describe_recent(self.path)
        except Exception as exc:  # noqa: BLE001 - one unreadable entry must not hide the others
            log.warning("cannot describe %s: %s", self.path, exc)
            info = RecentInfo(self.path, Path(self.path).name, "dataset", exists=Path(self.path).exists(),
                              note="could not be read")
        self.signals.sig_described.emit(self.generation, info)


class StartScreen(QWidget):
    """Recent datasets and workspaces, and the ways to open something."""

    sig_open_requested = Signal(str)  # a recent path was clicked
    sig_open_folder_requested = Signal()
    sig_open_file_requested = Signal()
    sig_open_sample_requested = Signal()
    sig_back_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("startScreen")
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._signals = _InfoSignals(self)
        self._signals.sig_described.connect(self._on_task_described)
        self.infos: dict[str, RecentInfo] = {}

        title = QLabel("segstudio")
        title.setObjectName("startTitle")
        subtitle = QLabel("Review and correct segmentation masks. Open a dataset to begin.")
        subtitle.setObjectName("startSubtitle")

        self.sample_button = QPushButton("Open the bundled sample")
        self.sample_button.setObjectName("startPrimary")
        self.sample_button.setToolTip("8 Montgomery chest X-rays with left/right lung masks")
        self.folder_button = QPushButton("Open Folder…")
        self.file_button = QPushButton("Open File…")
        self.file_button.setToolTip("A COCO / labelme JSON or another annotation file")
        self.back_button = QPushButton("Back")
        self.back_button.setObjectName("startBack")
        self.back_button.hide()
        self.sample_button.clicked.connect(self.sig_open_sample_requested)
        self.folder_button.clicked.connect(self.sig_open_folder_requested)
        self.file_button.clicked.connect(self.sig_open_file_requested)
        self.back_button.clicked.connect(self.sig_back_requested)
        buttons = QHBoxLayout()
        for b in (self.sample_button, self.folder_button, self.file_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.back_button)

        recent_title = QLabel("Recent datasets and workspaces")
        recent_title.setObjectName("startHeading")
        self.recent = QListWidget()
        self.recent.setObjectName("startRecent")
        self.recent.setWordWrap(True)
        self.recent.setUniformItemSizes(False)
        self.recent.itemClicked.connect(self._on_recent_item_clicked)
        self.recent.itemActivated.connect(self._on_recent_item_clicked)
        self.empty_label = QLabel("Nothing opened yet: the datasets you open are listed here with their review "
                                  "progress.")
        self.empty_label.setObjectName("startHint")
        self.empty_label.setWordWrap(True)

        hint = QLabel("Tip: drop a dataset folder, an annotation file or a predictions folder anywhere on this "
                      "window to open it.")
        hint.setObjectName("startHint")
        hint.setWordWrap(True)

        inner = QVBoxLayout()
        inner.setSpacing(10)
        inner.addWidget(title)
        inner.addWidget(subtitle)
        inner.addSpacing(8)
        inner.addLayout(buttons)
        inner.addSpacing(12)
        inner.addWidget(recent_title)
        inner.addWidget(self.recent, 1)
        inner.addWidget(self.empty_label)
        inner.addWidget(hint)
        column = QWidget()
        column.setObjectName("startColumn")
        column.setLayout(inner)
        column.setMaximumWidth(820)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(32, 32, 32, 32)
        outer.addStretch(1)
        outer.addWidget(column, 4)
        outer.addStretch(1)

    def set_back_target(self, name: str | None) -> None:
        """With a dataset open, a button leads back to it."""
        self.back_button.setVisible(bool(name))
        if name:
            self.back_button.setText(f"Back to {name}")

    def set_recent(self, paths: tuple[str, ...] | list[str]) -> None:
        """List ``paths`` now; each one's progress is read on a pool thread and filled in as it arrives."""
        self._generation += 1
        self.recent.clear()
        self.infos = {}
        for p in paths:
            item = QListWidgetItem(self._item_text(Path(p).name, p, "…"))
            item.setData(PATH_ROLE, p)
            item.setToolTip(p)
            self.recent.addItem(item)
            self._pool.start(_DescribeTask(self._generation, p, self._signals))
        self.recent.setVisible(bool(paths))
        self.empty_label.setVisible(not paths)

    def wait_for_progress(self, msecs: int = 5000) -> bool:
        """For tests and screenshots: wait until every entry's progress was read (the signals still need the
        event loop to arrive)."""
        return self._pool.waitForDone(msecs)

    @staticmethod
    def _item_text(name: str, path: str, progress: str) -> str:
        return f"{name}\n{progress}\n{path}"

    def _on_task_described(self, generation: int, info: RecentInfo) -> None:
        if generation != self._generation:
            return  # the list was refilled since
        self.infos[info.path] = info
        for row in range(self.recent.count()):
            item = self.recent.item(row)
            if item.data(PATH_ROLE) == info.path:
                label = f"{info.name}  ({info.kind})" if info.kind == "workspace" else info.name
                item.setText(self._item_text(label, info.path, info.progress_text()))
                if not info.exists:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)

    def _on_recent_item_clicked(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        if path and item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.sig_open_requested.emit(str(path))

    def shutdown(self) -> None:
        self._generation += 1
        self._pool.waitForDone(2000)
