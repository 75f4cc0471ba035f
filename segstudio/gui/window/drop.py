"""Drag and drop onto the main window: a dataset folder, an annotation file, a workspace or a predictions folder,
at the start screen or mid-session.

``DropController`` filters the window's drag events (an event filter: the window forwards nothing) and takes two
openers (``open_dataset``, ``open_predictions``); it
decides what a drop is with :func:`classify_drop` and asks with :func:`ask_dataset_or_predictions` when a folder
could be either (a module function, so tests answer it without a modal dialog, as ``workspace_dialogs`` does).
While a drag hovers, an overlay says what a drop would do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.datasets.predictions import PredictionFolder
from segstudio.datasets.registry import detect

log = logging.getLogger(__name__)


class DropAs(Enum):
    DATASET = "dataset"
    PREDICTIONS = "predictions"
    ASK = "ask"  # either fits: the user says which
    CANCEL = "cancel"


def dropped_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders in a drag's data (web URLs are not opened)."""
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


def prediction_matches(folder: Path, dataset: Dataset | None) -> int:
    """How many of ``dataset``'s samples have a mask named after them in ``folder`` (0 without a dataset)."""
    if dataset is None or not folder.is_dir():
        return 0
    try:
        root = Path(dataset.root).resolve()
        if folder.resolve() in (root, *root.parents):
            return 0  # the dataset itself (or above it) is never its own predictions
        return len(PredictionFolder(folder, dataset))
    except (SegstudioError, OSError) as exc:
        log.info("%s is not a predictions folder: %s", folder, exc)
        return 0


def classify_drop(path: Path, dataset: Dataset | None) -> DropAs:
    """What a drop of ``path`` means: a file or a folder no prediction of the open dataset is named in opens as a
    dataset; a folder of masks named like the open dataset's samples is its predictions, unless a dataset
    format recognises it too (a folder of PNGs is also an image folder): then the user is asked."""
    if not path.is_dir() or prediction_matches(path, dataset) == 0:
        return DropAs.DATASET
    return DropAs.ASK if detect(path) else DropAs.PREDICTIONS


def ask_dataset_or_predictions(parent: QWidget | None, folder: Path, *, dataset_name: str, matches: int) -> DropAs:
    """The dropped ``folder`` could be a dataset or predictions for the open one: ask which."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Open the dropped folder as…")
    box.setText(f"“{folder.name}” holds masks named like {matches} image(s) of {dataset_name}.")
    box.setInformativeText("Open it as a dataset of its own, or show its masks as the prediction layer of the "
                           f"dataset that is open?\n\n{folder}")
    as_dataset = box.addButton("Open as dataset", QMessageBox.ButtonRole.AcceptRole)
    as_preds = box.addButton("Use as predictions", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(as_preds)
    box.exec()
    clicked = box.clickedButton()
    return DropAs.DATASET if clicked is as_dataset else DropAs.PREDICTIONS if clicked is as_preds else DropAs.CANCEL


class DropOverlay(QWidget):
    """A translucent panel over the window while something is dragged over it; says what a drop would do."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._host = parent  # the overlay covers it, following its size
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.label = QLabel(self)
        self.label.setObjectName("dropOverlayText")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = QLabel(self)
        self.hint.setObjectName("dropOverlayHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(48, 48, 48, 48)
        lay.addStretch(1)
        lay.addWidget(self.label)
        lay.addWidget(self.hint)
        lay.addStretch(1)
        self.hide()
        parent.installEventFilter(self)

    def show_text(self, text: str, hint: str = "") -> None:
        self.label.setText(text)
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        self.setGeometry(self._host.rect())
        self.raise_()
        self.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self._host and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self._host.rect())
        return False


class DropController(QObject):
    """Turns drops on ``window`` into opening a dataset or a predictions folder."""

    def __init__(self, window: QWidget, *, dataset: Callable[[], Dataset | None],
                 open_dataset: Callable[[Path], object], open_predictions: Callable[[Path], bool]) -> None:
        super().__init__(window)
        self._window = window
        self._dataset = dataset
        self._open_dataset = open_dataset
        self._open_predictions = open_predictions
        self.overlay = DropOverlay(window)
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self._window:
            kind = event.type()
            if kind == QEvent.Type.DragEnter:
                self.drag_entered(event)  # type: ignore[arg-type]
                return True
            if kind == QEvent.Type.DragMove:
                mime = event.mimeData()  # type: ignore[attr-defined]
                event.acceptProposedAction() if mime.hasUrls() else event.ignore()  # type: ignore[attr-defined]
                return True
            if kind == QEvent.Type.DragLeave:
                self.drag_left()
                return True
            if kind == QEvent.Type.Drop:
                self.dropped(event)  # type: ignore[arg-type]
                return True
        return super().eventFilter(watched, event)

    def drag_entered(self, event: QDragEnterEvent | QDragMoveEvent) -> None:
        paths = dropped_paths(event.mimeData())
        if len(paths) != 1:
            event.ignore()
            return
        event.acceptProposedAction()
        self.overlay.show_text(*self._describe(paths[0]))

    def drag_left(self) -> None:
        self.overlay.hide()

    def dropped(self, event: QDropEvent) -> None:
        self.overlay.hide()
        paths = dropped_paths(event.mimeData())
        if len(paths) != 1:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(paths[0])

    def open_path(self, path: Path) -> None:
        """Open a dropped path as what it is (asking when a folder could be either)."""
        ds = self._dataset()
        kind = classify_drop(path, ds)
        if kind is DropAs.ASK:
            assert ds is not None
            kind = ask_dataset_or_predictions(self._window, path, dataset_name=Path(ds.root).name,
                                              matches=prediction_matches(path, ds))
        if kind is DropAs.PREDICTIONS:
            self._open_predictions(path)
        elif kind is DropAs.DATASET:
            self._open_dataset(path)

    def _describe(self, path: Path) -> tuple[str, str]:
        """(headline, hint) for the overlay; cheap on purpose (it runs on every drag-enter): no sniffing."""
        text = f"Drop to open “{path.name}”"
        if self._dataset() is not None and path.is_dir():
            return text, ("A folder of masks named like the open dataset's images can become its prediction "
                          "layer instead: you will be asked.")
        return text, "A dataset folder, an annotation file (COCO, labelme…) or a workspace."
