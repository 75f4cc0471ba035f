"""What the window says about itself: its title (sample, dataset, read-only, the unsaved mark) and the status
bar's lines (dataset, saved / journaled state, review status, cursor readout, zoom, a read-only workspace), plus
the enabled state of the actions that would write to the workspace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow, QStatusBar

from segstudio.datasets.formats.medical import sample_header
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import EditorController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import SessionController
from segstudio.workspace import MaskVersion

#: Actions that write to the workspace: disabled while it is open read-only.
#: Export only reads, so it stays; write-back and restore keep and read their backups in the workspace.
WORKSPACE_WRITE_ACTIONS = ("save", "train_start", "train_retrain", "predict_current", "predict_all",
                           "predict_selected", "accept_pseudo_labels", "writeback", "restore_backup")



class StatusWidgets(NamedTuple):
    position: QLabel
    intensity: QLabel
    label: QLabel
    review: QLabel
    saved: QLabel
    dataset: QLabel
    zoom: QLabel
    workspace: QLabel  # "read-only" and why, when the workspace cannot be written


def build_status_bar(bar: QStatusBar) -> StatusWidgets:
    w = StatusWidgets(*(QLabel() for _ in StatusWidgets._fields))
    for name, lbl in zip(StatusWidgets._fields, w, strict=True):
        lbl.setObjectName(f"status_{name}")
    w.position.setMinimumWidth(110)
    w.intensity.setMinimumWidth(120)
    w.label.setMinimumWidth(160)
    for lbl in (w.position, w.intensity):
        bar.addWidget(lbl)
    bar.addWidget(w.label, 1)
    for lbl in (w.workspace, w.review, w.saved, w.dataset, w.zoom):
        bar.addPermanentWidget(lbl)
    return w


class StatusController(QObject):
    def __init__(self, *, window: QMainWindow, labels: StatusWidgets, session: SessionController,
                 review: ReviewController, editor: EditorController, canvas: ImageCanvas,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window, self.labels = window, labels
        self.session, self.review, self.editor = session, review, editor
        self.actions: Mapping[str, QAction] = {}
        canvas.sig_cursor_moved.connect(self._on_canvas_cursor_moved)
        canvas.sig_zoom_changed.connect(lambda s: labels.zoom.setText(f"{s * 100:.0f} %"))
        editor.sig_dirty_changed.connect(lambda _d: self.show_saved_state())
        editor.sig_journal_changed.connect(lambda _ok: self.show_saved_state())
        editor.sig_saved.connect(self._on_editor_saved)
        editor.sig_refused.connect(lambda text: self.show_message(text, 8000))

    def bind_actions(self, actions: Mapping[str, QAction]) -> None:
        self.actions = actions

    def show_message(self, text: str, msecs: int = 8000) -> None:
        self.window.statusBar().showMessage(text, msecs)

    def update_title(self) -> None:
        cur, ds = self.session.current, self.session.dataset
        ro = " [read-only]" if self.review.read_only else ""
        # Qt draws "[*]" as the platform's unsaved mark (an asterisk; the close button's dot on macOS)
        self.window.setWindowModified(ds is not None and self.editor.dirty)
        if ds is None:
            self.window.setWindowTitle(f"segstudio{ro}")
            return
        where = f"{cur.sample.name} ({ds.index_of(cur.sample.id) + 1}/{len(ds)}) — " if cur is not None else ""
        self.window.setWindowTitle(f"{where}{ds.root.name} ({ds.format_name}){ro}[*] — segstudio")

    def update_dataset_status(self) -> None:
        """The dataset line: format, size, classes and how many images have a prediction."""
        ds = self.session.dataset
        if ds is None:
            return
        kind = "multi-label" if ds.schema.multilabel else "semantic"
        preds = f" · {len(self.review.predictions)} predictions" if self.review.predictions is not None else ""
        self.labels.dataset.setText(f"{ds.format_name} · {len(ds)} images · {len(ds.schema)} classes ({kind}){preds}")

    def show_workspace_state(self) -> None:
        """A read-only workspace says so in the status bar (and the title); the actions that would write to it
        (save, train, predict, pseudo-labels) are disabled rather than failing later."""
        ws = self.review.workspace
        for name in WORKSPACE_WRITE_ACTIONS:
            if name in self.actions:
                self.actions[name].setEnabled(not self.review.read_only)
        if ws is not None and ws.read_only:
            self.labels.workspace.setText("read-only")
            self.labels.workspace.setToolTip(f"Nothing is saved: {ws.read_only_reason}")
            self.show_message(f"Workspace opened read-only ({ws.read_only_reason}): nothing you do is saved.", 15000)
        else:
            self.labels.workspace.setText("")
            self.labels.workspace.setToolTip("")
        self.update_title()

    def show_saved_state(self) -> None:
        """The truth about where unsaved edits are: in the recovery journal, or (after a failed append) nowhere.
        The label is short (the status bar is narrow); the tooltip says the whole of it."""
        if not self.editor.dirty:
            text, tip = "", ""
        elif self.editor.journal_ok:
            text, tip = "unsaved (journaled)", "Unsaved changes, kept in the recovery journal until they are saved."
        else:
            text, tip = ("UNSAVED, not journaled", "Unsaved changes that are NOT in the recovery journal (it could "
                         "not be written): they exist only in this window. Free disk space and save now (Ctrl+S).")
        self.labels.saved.setText(text)
        self.labels.saved.setToolTip(tip)
        self.update_title()

    def show_review_status(self, status: str) -> None:
        self.labels.review.setText(status)

    def _on_editor_saved(self, rec: MaskVersion) -> None:
        self.labels.saved.setText(f"saved v{rec.version}")

    def _on_canvas_cursor_moved(self, x: int, y: int) -> None:
        cur = self.session.current
        if cur is None or x < 0:
            for lbl in (self.labels.position, self.labels.intensity, self.labels.label):
                lbl.setText("")
            return
        ds = self.session.dataset
        spacing = ds.pixel_spacing(cur.sample) if ds is not None else None
        # with a known pixel size, the position in mm from the image's top-left corner too
        mm = f" ({x * spacing[1]:.1f}, {y * spacing[0]:.1f} mm)" if spacing is not None else ""
        self.labels.position.setText(f"x {x}, y {y}{mm}")
        value = f"value {cur.intensity_at(x, y)}"
        header = sample_header(ds, cur.sample) if ds is not None and cur.image.ndim == 2 else None
        if header is not None and header.rescale.units:  # a CT: the modality value (Hounsfield units) too
            value += f" · {header.rescale.apply(float(cur.image[y, x])):.0f} {header.rescale.units}"
        self.labels.intensity.setText(value)
        mask = self.editor.mask.array if self.editor.mask is not None else cur.gt
        cls = self.session.class_at(x, y, mask=mask)
        self.labels.label.setText(f"class: {cls}" if cls else "")
