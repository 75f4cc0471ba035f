"""The main window composes the review screen: canvas (or split view), sample browser, classes, layers, review
panel, tool bar and status bar. It holds no domain state: the dataset and current sample live in
``SessionController``, the workspace and reviews in ``ReviewController``, the mask being edited in
``EditorController``. Handlers here translate between widgets and those controllers.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.core.logsetup import log_file
from segstudio.core.paths import config_dir, sample_dataset_dir
from segstudio.core.settings import AppSettings, load_settings, save_settings
from segstudio.datasets.base import Dataset
from segstudio.datasets.registry import OPENED_SUBFOLDER, AmbiguousFormatError, format_descriptions
from segstudio.gui import mask_ops, workspace_dialogs
from segstudio.gui.about import AboutDialog
from segstudio.gui.actions import build_actions
from segstudio.gui.browser import SampleBrowser
from segstudio.gui.canvas import ImageCanvas
from segstudio.gui.controller import LoadedSample, OpenRequest, SessionController
from segstudio.gui.drop import DropController
from segstudio.gui.editor import ERROR_LAYER, GT_LAYER, PRED_LAYER, EditorController
from segstudio.gui.errors import show_error
from segstudio.gui.export_view import ExportView
from segstudio.gui.loop_view import LoopView
from segstudio.gui.panels.class_panel import ClassPanel
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.panels.training_panel import TrainingPanel
from segstudio.gui.predictions_view import PredictionsView
from segstudio.gui.preferences import (
    apply_compute,
    apply_settings,
    apply_shortcuts,
    apply_workspace_location,
    effective_schema,
)
from segstudio.gui.preferences_dialog import PreferencesDialog
from segstudio.gui.review import ReviewController
from segstudio.gui.shortcuts import ShortcutsDialog
from segstudio.gui.split_view import SplitView
from segstudio.gui.start_screen import StartScreen
from segstudio.gui.tour import Tour
from segstudio.gui.training import TrainingController
from segstudio.gui.view import ViewController
from segstudio.gui.window_chrome import (
    build_class_keys,
    build_docks,
    build_menus_and_toolbars,
    build_status_bar,
)
from segstudio.workspace import MaskVersion, ReviewState, ReviewStatus
from segstudio.workspace.lock import WorkspaceLockedError

log = logging.getLogger(__name__)

AUTOSAVE_MS = 10_000

#: Actions that write to the workspace: disabled while it is open read-only.
#: Export only reads, so it stays; write-back and restore keep and read their backups in the workspace.
WORKSPACE_WRITE_ACTIONS = ("save", "train_start", "train_retrain", "predict_current", "predict_all",
                           "predict_selected", "accept_pseudo_labels", "writeback", "restore_backup")
EDIT_TOOLS = ("brush", "eraser", "polygon", "lasso", "fill", "rectangle", "accept-lasso")


def window_settings() -> QSettings:
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, *, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("segstudio")
        self.resize(1400, 880)  # shrunk to the screen by create_main_window when the screen is smaller
        self.settings = settings if settings is not None else load_settings()

        self.session = SessionController(self)
        self.review = ReviewController(self)
        self.review.reviewer = self.settings.reviewer
        self.canvas = ImageCanvas(self)
        self.split = SplitView(self.canvas, self)
        # the central pages: the start screen while nothing is open (or on File → Start Screen), else the review
        self.start_screen = StartScreen(self)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.start_screen)
        self.pages.addWidget(self.split)
        self.setCentralWidget(self.pages)
        self.editor = EditorController(self.canvas, self)
        self.editor.author = self.settings.reviewer
        self.browser = SampleBrowser(self)
        self.class_panel = ClassPanel(self)
        self.layers_panel = LayersPanel(self)
        self.review_panel = ReviewPanel(self)
        self.review_panel.set_reviewer(self.settings.reviewer)
        self.training = TrainingController(self)
        self.training_panel = TrainingPanel(self.training, self)
        self.docks = build_docks(self, browser=self.browser, classes=self.class_panel, layers=self.layers_panel,
                                 review=self.review_panel, training=self.training_panel)
        self.view = ViewController(session=self.session, canvas=self.canvas, split=self.split,
                                   layers=self.layers_panel, editor=self.editor, actions={}, parent=self)
        self.predictions_view = PredictionsView(self)  # the Model menu's handlers: made before the actions
        self.loop = LoopView(self)  # review queue and pseudo-labels (Navigate / Model menus)
        self.export_view = ExportView(review=self.review, session=self.session, status_bar=self.statusBar(),
                                      save=self.save_current, open_dataset=self.open_dataset, parent=self)
        self.actions_ = build_actions(self)
        self.view.bind_actions(self.actions_)
        self.bars = build_menus_and_toolbars(self, self.actions_, self.docks)
        self.brush_size = self.bars.brush_size
        self._recent_menu = self.bars.recent_menu
        self._recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.status = build_status_bar(self.statusBar())
        self._class_actions = build_class_keys(self, self.class_panel)

        self._autosave_failed = False
        self.autosave = QTimer(self)
        self.autosave.setInterval(max(1, self.settings.autosave_s) * 1000 if self.settings.autosave_s else AUTOSAVE_MS)
        self.autosave.timeout.connect(self._on_autosave_timeout)
        if self.settings.autosave_s != 0:
            self.autosave.start()
        # preferences the window applies at start (the dialog re-applies them when they change)
        apply_shortcuts(self.actions_, self.settings.shortcuts)
        apply_compute(self.training_panel, self.settings.compute)
        apply_workspace_location(self.settings)
        self._tour: Tour | None = None

        # GT and the error map by default: agreement shows the GT colours, disagreement is painted over them.
        # The prediction itself is one key (V) or one split view away.
        for name, on in (("toggle_gt", True), ("toggle_pred", False), ("toggle_error", True)):
            self.actions_[name].setChecked(on)
            self.layers_panel.set_layer_visible(
                {"toggle_gt": GT_LAYER, "toggle_pred": PRED_LAYER, "toggle_error": ERROR_LAYER}[name], on)
        self.layers_panel.rows[GT_LAYER].opacity.setValue(round(self.settings.overlay.opacity * 100))
        self.actions_["view_single"].setChecked(True)
        self.set_tool("brush")
        self.actions_["tool_brush"].setChecked(True)
        self.drops = DropController(self, dataset=lambda: self.session.dataset, open_dataset=self.open_dataset,
                                    open_predictions=self.open_predictions)
        self._layout_before_start: QByteArray | None = None
        self._wire()
        self._restore_geometry()
        self.show_start_screen()

    def _wire(self) -> None:
        self.session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        self.session.sig_sample_loaded.connect(self._on_session_sample_loaded)
        self.browser.sig_sample_activated.connect(self._on_browser_sample_activated)
        self.canvas.sig_cursor_moved.connect(self._on_canvas_cursor_moved)
        self.canvas.sig_zoom_changed.connect(lambda s: self.status.zoom.setText(f"{s * 100:.0f} %"))
        self.canvas.sig_space_tapped.connect(self.go_next)
        self.class_panel.sig_visibility_changed.connect(self._on_class_panel_visibility_changed)
        self.class_panel.sig_lock_changed.connect(lambda _c, _l: self._sync_tool_context())
        self.class_panel.sig_class_selected.connect(lambda _c: self._sync_tool_context())
        self.layers_panel.sig_layer_opacity_changed.connect(self._on_layers_opacity_changed)
        self.review_panel.sig_status_requested.connect(self.set_review_status)
        self.review_panel.sig_reviewer_edited.connect(self._on_review_panel_reviewer_edited)
        self.review_panel.sig_revert_requested.connect(self._on_review_panel_revert_requested)
        self.review.sig_review_changed.connect(self._on_review_changed)
        self.review.sig_scored.connect(self._on_review_scored)
        self.editor.sig_dirty_changed.connect(self._on_editor_dirty_changed)
        self.editor.sig_history_changed.connect(self._on_editor_history_changed)
        self.editor.sig_saved.connect(self._on_editor_saved)
        self.editor.sig_refused.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.editor.sig_journal_changed.connect(lambda _ok: self._on_editor_dirty_changed(self.editor.dirty))
        self.brush_size.valueChanged.connect(lambda _v: self._sync_tool_context())
        self.training_panel.sig_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.training.sig_run_started.connect(lambda _run: self.show_training_panel())
        self.start_screen.sig_open_requested.connect(self.open_dataset)
        self.start_screen.sig_open_folder_requested.connect(self.open_folder_dialog)
        self.start_screen.sig_open_file_requested.connect(self.open_file_dialog)
        self.start_screen.sig_open_sample_requested.connect(self.open_sample_dataset)
        self.start_screen.sig_back_requested.connect(self.show_review_page)

    # opening ----------------------------------------------------------------------------------------------------
    def open_dataset(self, path: str | Path, *, format_name: str | None = None,
                     predictions: str | Path | None = None) -> Dataset | None:
        """Open ``path`` (a dataset, or a workspace, which opens its dataset); ask for the format when detection is
        ambiguous; errors become a message box."""
        if not self.training_panel.stop_for_close(action="open another dataset"):
            return None
        req = OpenRequest.resolve(path, format_name=format_name, predictions=predictions)
        path, format_name, predictions = req.path, req.format_name, req.predictions
        self.predictions_view.inference.stop_and_wait(60)  # its workspace is about to close
        self.export_view.stop_and_wait(60)
        self.save_current()
        try:
            ds = self.session.load(path, format_name=format_name)
            # the colours the user chose (palette for datasets without colours, overrides) before any panel shows it
            ds.schema = effective_schema(ds.schema, self.settings, str(Path(ds.root).resolve()))
        except AmbiguousFormatError as exc:
            choice = self._choose_format(path, [n for n, _ in exc.candidates])
            return self.open_dataset(path, format_name=choice, predictions=predictions) if choice else None
        except SegstudioError as exc:
            show_error("Cannot open dataset", str(exc))
            return None
        if not self._open_workspace(ds, predictions=predictions):
            return None
        self.predictions_view.dataset_opening(explicit_folder=self.review.predictions is not None)
        self.settings = self.settings.with_recent(str(Path(path).resolve()))
        self._save_settings()
        self._offer_recovery()
        self.session.set_dataset(ds, extra=self.prepare_sample, side=self.review.prediction_mask)
        problems = ds.all_problems()
        if problems:
            self.statusBar().showMessage(f"{len(problems)} problem(s) found; flagged samples are marked", 8000)
        elif ds.options.get(OPENED_SUBFOLDER):
            self.statusBar().showMessage(f"Opened the data folder {ds.root} (nothing to open beside it)", 8000)
        return ds

    def _open_workspace(self, ds: Dataset, *, predictions: str | Path | None, read_only: bool = False) -> bool:
        """Attach the dataset's workspace; asks before opening one another segstudio holds (read-only or not at
        all) and tells when a damaged one was rebuilt. False: the dataset is not opened (the session is as it
        was)."""
        try:
            self.review.open(ds, predictions=predictions, read_only=read_only)
        except WorkspaceLockedError as exc:
            if not workspace_dialogs.ask_open_read_only(self, exc):
                return False
            return self._open_workspace(ds, predictions=predictions, read_only=True)
        except SegstudioError as exc:
            if predictions is None:
                show_error("Cannot open the workspace", str(exc))
                return False
            show_error("Cannot open the workspace or predictions", str(exc))
            return self._open_workspace(ds, predictions=None, read_only=read_only)
        ws = self.review.workspace
        if ws is not None and ws.rebuild_report is not None:
            workspace_dialogs.tell_rebuilt(self, ws.rebuild_report)
        self._show_workspace_state()
        return True

    def _show_workspace_state(self) -> None:
        """A read-only workspace says so in the status bar (and the title, see ``_update_title``); the actions
        that would write to it (save, train, predict, pseudo-labels) are disabled rather than failing later."""
        ws = self.review.workspace
        for name in WORKSPACE_WRITE_ACTIONS:
            self.actions_[name].setEnabled(not self.review.read_only)
        if ws is not None and ws.read_only:
            self.status.workspace.setText("read-only")
            self.status.workspace.setToolTip(f"Nothing is saved: {ws.read_only_reason}")
            self.statusBar().showMessage(f"Workspace opened read-only ({ws.read_only_reason}): nothing you do is "
                                         "saved.", 15000)
        else:
            self.status.workspace.setText("")
            self.status.workspace.setToolTip("")
        self.setWindowTitle(self._title())

    def _choose_format(self, path: str | Path, names: list[str]) -> str | None:
        """Ask which format to open an ambiguous path as; each choice shows the format's description."""
        desc = format_descriptions()
        labels = [f"{n} — {desc.get(n, '')}" for n in names]
        choice, ok = QInputDialog.getItem(self, "Choose the dataset format",
                                          f"More than one format fits\n{path}\nOpen it as:", labels, 0, False)
        return names[labels.index(choice)] if ok and choice in labels else None

    def open_predictions(self, folder: str | Path) -> bool:
        ds = self.session.dataset
        if ds is None:
            return False
        # the workspace is reopened, and a run writes its record and reads corrections through it
        if not self.training_panel.stop_for_close(action="open a predictions folder"):
            return False
        self.predictions_view.inference.stop_and_wait(60)
        self.export_view.stop_and_wait(60)
        self.save_current()
        try:
            self.review.open(ds, predictions=folder, read_only=self.review.read_only)
        except SegstudioError as exc:
            show_error("Cannot open the predictions folder", str(exc))
            return False
        self._show_workspace_state()
        self.predictions_view.dataset_opening(explicit_folder=True)
        cur = self.session.current
        self.session.set_dataset(ds, extra=self.prepare_sample, side=self.review.prediction_mask)
        if cur is not None:
            self.session.go_to_id(cur.sample.id)
        return True

    def _offer_recovery(self) -> None:
        pending = self.review.pending_recoveries()  # none when read-only: the journals are the holder's
        if not pending:
            return
        names = "\n".join(f"  {p.sample_id} ({p.patches} stroke(s))" for p in pending[:12])
        more = f"\n  … and {len(pending) - 12} more" if len(pending) > 12 else ""
        answer = QMessageBox.question(
            self, "Restore unsaved work?",
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

    def show_start_screen(self) -> None:
        """The start screen as the central page, its recent list read afresh; with a dataset open it leads back."""
        ds = self.session.dataset
        self.start_screen.set_back_target(ds.root.name if ds is not None else None)
        self.start_screen.set_recent(self.settings.recent_datasets)
        if ds is not None and self._layout_before_start is None:
            # the docks describe the open dataset: out of the way on the start screen, back as they were after it
            # (saveState keeps which tab of a tabified group was in front). Not at startup: hiding them there
            # changes the window's minimum size before the restored geometry applies.
            self._layout_before_start = self.saveState()
            for d in self.docks:
                d.hide()
        self.pages.setCurrentWidget(self.start_screen)

    def show_review_page(self) -> None:
        if self.session.dataset is not None:
            self._restore_docks()
            self.pages.setCurrentWidget(self.split)

    def _restore_docks(self) -> None:
        if self._layout_before_start is not None:
            self.restoreState(self._layout_before_start)
            self._layout_before_start = None

    # drag and drop (gui.drop decides what a drop is) ----------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        self.drops.drag_entered(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, _event) -> None:  # noqa: ANN001, N802
        self.drops.drag_left()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.drops.dropped(event)

    def open_sample_dataset(self) -> None:
        self.open_dataset(sample_dataset_dir())

    def open_folder_dialog(self) -> None:
        start = str(Path(self.settings.last_dataset).parent) if self.settings.last_dataset else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if path:
            self.open_dataset(path)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open annotation file", str(Path.home()),
                                              "Annotations (*.json);;All files (*)")
        if path:
            self.open_dataset(path)

    def open_predictions_dialog(self) -> None:
        ds = self.session.dataset
        path = QFileDialog.getExistingDirectory(self, "Open predictions folder",
                                                str(ds.root) if ds is not None else str(Path.home()))
        if path:
            self.open_predictions(path)

    def _fill_recent_menu(self) -> None:
        self._recent_menu.clear()
        for p in self.settings.recent_datasets:
            act = QAction(p, self._recent_menu)
            act.triggered.connect(lambda _c=False, p=p: self.open_dataset(p))
            self._recent_menu.addAction(act)
        if not self.settings.recent_datasets:
            self._recent_menu.addAction("(none yet)").setEnabled(False)

    # navigation -------------------------------------------------------------------------------------------------
    def go_to_sample(self, sample_id: str) -> None:
        cur = self.session.current
        if cur is not None and cur.sample.id == sample_id:
            return
        self.save_current()
        if self.editor.dirty and not self.review.read_only:
            # The save failed: leaving would drop the edits (or, at the next visit, their journal). Stay.
            self.statusBar().showMessage("Stayed on this image: its edits are not saved yet (see the message). "
                                         "Save again with Ctrl+S once the problem is fixed.", 15000)
            return
        self.session.go_to_id(sample_id)

    def go_next(self) -> None:
        cur = self.session.current
        if cur is not None:
            nxt = self.browser.next_id(cur.sample.id)
            if nxt is not None:
                self.go_to_sample(nxt)

    def go_previous(self) -> None:
        cur = self.session.current
        if cur is not None:
            prev = self.browser.previous_id(cur.sample.id)
            if prev is not None:
                self.go_to_sample(prev)

    def go_next_unreviewed(self) -> None:
        cur = self.session.current
        reviews = self.review.reviews()
        ids = self.browser.visible_ids()
        start = ids.index(cur.sample.id) + 1 if cur is not None and cur.sample.id in ids else 0
        for sid in ids[start:] + ids[:start]:
            st = reviews.get(sid)
            if st is None or st.status == ReviewStatus.UNREVIEWED:
                self.go_to_sample(sid)
                return
        self.statusBar().showMessage("Every sample is reviewed.", 5000)

    # saving and reviewing ---------------------------------------------------------------------------------------
    def save_current(self, *, quiet: bool = False) -> MaskVersion | None:
        """Autosave on leaving a sample: the mask (when edited) and a changed comment. A failure is a message
        box (``quiet``: the status bar)."""
        cur = self.session.current
        rec = None
        try:
            rec = self.editor.save()
            if cur is not None and not self.review.read_only:
                comment = self.review_panel.comment_text()
                state = self.review.review(cur.sample.id)
                if comment != state.comment:
                    self.review.set_status(cur.sample.id, state.status, comment=comment)
        except (SegstudioError, OSError) as exc:
            where = ("Your edits are still in the recovery journal." if self.editor.journal_ok else
                     "Your edits could NOT be written to the recovery journal either: they exist only in this "
                     "window. Free some space, then save again (Ctrl+S) before closing.")
            if quiet:
                self.statusBar().showMessage(f"Could not save: {getattr(exc, 'message', exc)} {where}", 15000)
            else:
                show_error("Could not save", f"{exc}\n\n{where}")
            self._on_editor_dirty_changed(self.editor.dirty)
        return rec

    def save_now(self) -> None:
        if self.save_current() is None and not self.editor.dirty:
            self.statusBar().showMessage("Nothing to save.", 3000)

    def set_review_status(self, status: str) -> None:
        cur = self.session.current
        if cur is None:
            return
        if self.review.read_only:
            ws = self.review.workspace
            reason = ws.read_only_reason if ws is not None else ""
            self.statusBar().showMessage(f"Not recorded: this workspace is open read-only ({reason}).", 8000)
            return
        self.save_current()
        try:
            self.review.set_status(cur.sample.id, status, comment=self.review_panel.comment_text())
        except SegstudioError as exc:
            show_error("Could not record the review decision", str(exc))

    # editing ----------------------------------------------------------------------------------------------------
    def set_tool(self, name: str) -> None:
        editing = name in EDIT_TOOLS
        self.canvas.set_edit_mode(editing)
        if editing:
            self.editor.set_tool(name)
        self._sync_tool_context()

    def _sync_tool_context(self) -> None:
        cid = self.class_panel.selected_class()
        ctx = self.editor.context.with_(size=float(self.brush_size.value()),
                                        brush="square" if self.actions_["brush_shape"].isChecked() else "round",
                                        locked=self.class_panel.locked_ids())
        if cid is not None:
            ctx = ctx.with_(class_id=cid)
        self.editor.set_context(ctx)
        brushy = self.canvas.edit_mode and self.editor.tool_name in ("brush", "eraser")
        self.canvas.set_brush_cursor(ctx.size if brushy else 0, ctx.brush)

    def change_brush_size(self, step: int) -> None:
        v = self.brush_size.value()
        factor = 1.2 if step > 0 else 1 / 1.2
        self.brush_size.setValue(max(1, round(v * factor) if round(v * factor) != v else v + step))

    def set_square_brush(self, _on: bool) -> None:
        self._sync_tool_context()

    def finish_polygon(self) -> None:
        self.editor.finish_polygon()

    def cancel_gesture(self) -> None:
        self.editor.cancel_gesture()

    def undo(self) -> None:
        self.editor.undo()

    def redo(self) -> None:
        self.editor.redo()

    def accept_prediction(self) -> None:
        if self.editor.target is None or self.editor.target.prediction is None:
            self.statusBar().showMessage("This sample has no prediction to accept.", 4000)
            return
        self.editor.accept_prediction()

    def run_mask_op(self, name: str) -> None:
        try:
            mask_ops.run(self, name)
        except SegstudioError as exc:
            show_error("Mask operation failed", str(exc))

    # training ---------------------------------------------------------------------------------------------------
    def start_training(self) -> None:
        self.show_training_panel()
        self.training_panel.start_training()

    def start_retrain(self) -> None:
        self.save_current()  # the round trains on the corrections as saved
        self.show_training_panel()
        self.training_panel.start_retrain()

    def show_training_panel(self) -> None:
        self.docks.training.show()
        self.docks.training.raise_()

    # help -------------------------------------------------------------------------------------------------------
    def show_about(self) -> None:
        AboutDialog(self).exec()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self).exec()

    def show_preferences(self) -> PreferencesDialog:
        """Edit → Preferences…: one dialog over the typed settings; applied when accepted (non-blocking)."""
        ds = self.session.dataset
        dlg = PreferencesDialog(self.settings, schema=ds.schema if ds is not None else None,
                                dataset_root=str(Path(ds.root).resolve()) if ds is not None else None,
                                actions=self.actions_, parent=self)
        dlg.sig_applied.connect(self._on_preferences_applied)
        dlg.open()
        return dlg

    def _on_preferences_applied(self, new: AppSettings) -> None:
        old = self.settings
        apply_settings(self, old, new)
        self._save_settings()
        ds = self.session.dataset
        if ds is not None and old.colours != new.colours:
            ds.schema = effective_schema(ds.schema, new, str(Path(ds.root).resolve()))
            self.class_panel.set_schema(ds.schema)
            self.layers_panel.set_schema(ds.schema)
            self.session.reload_current()  # overlays drawn again in the new colours

    def show_tour(self) -> Tour:
        """Help → Getting Started Tour: five non-modal steps over the window."""
        if self._tour is not None and self._tour.active:
            self._tour.skip()
        self._tour = Tour(self)
        self._tour.start()
        return self._tour

    def open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file().parent)))

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_session_dataset_opened(self, ds: Dataset) -> None:
        self._restore_docks()
        self.pages.setCurrentWidget(self.split)
        self.browser.set_dataset(ds)
        self.browser.model_.set_reviews(self.review.reviews())
        self.browser.model_.set_scores_many(self.review.cached_scores())
        self.class_panel.set_schema(ds.schema)
        default = 1 if (not ds.schema.multilabel and ds.schema.has_id(1)) else ds.schema.ids[0]
        self.class_panel.select_class(default)
        self.layers_panel.set_schema(ds.schema)
        self.editor.set_workspace(self.review.workspace)
        self.training_panel.set_context(ds, self.review.workspace)
        self.update_dataset_status()
        has_preds = self.review.predictions is not None
        self.browser.set_score_columns_visible(has_preds)
        if self.review.predictions is not None:
            self.browser.model_.set_predictions([s.id for s in ds.samples
                                                 if self.review.predictions.path_for(s) is not None])
        self.layers_panel.set_layer_available(PRED_LAYER, self.review.predictions is not None)
        self.layers_panel.set_layer_available(ERROR_LAYER, self.review.predictions is not None)
        self._update_summary()
        cached = self.review.cached_scores()
        missing = [s.id for s in ds.samples if s.id not in cached]
        if self.review.predictions is not None and missing:
            self.review.start_scoring([sid for sid in missing if self.review.predictions.path_for(sid) is not None])

    def update_dataset_status(self) -> None:
        """The status bar's dataset line: format, size, classes and how many images have a prediction."""
        ds = self.session.dataset
        if ds is None:
            return
        kind = "multi-label" if ds.schema.multilabel else "semantic"
        preds = f" · {len(self.review.predictions)} predictions" if self.review.predictions is not None else ""
        self.status.dataset.setText(f"{ds.format_name} · {len(ds)} images · {len(ds.schema)} classes ({kind}){preds}")

    def _on_session_sample_loaded(self, cur: LoadedSample) -> None:
        ds = self.session.dataset
        assert ds is not None
        if cur.extra is not None:
            target, problem = cur.extra
        else:
            target, problem = self.review.target_for(cur.sample, cur.image, cur.gt)
        self.view.sample_shown(cur)
        self.editor.load(target)
        self.view.apply_layer_visibility()
        self.view.refresh_secondary()
        self._sync_tool_context()
        self._update_title()
        msg = cur.error or problem
        if msg:
            # the whole message on one line: what is wrong, the file, the fix
            self.statusBar().showMessage(" · ".join(line.strip() for line in msg.splitlines() if line.strip()), 15000)
        # The canvas paints first; the panels and the neighbours' prefetch follow in the next event-loop turn.
        QTimer.singleShot(0, lambda sid=cur.sample.id: self._after_sample_shown(sid))

    def _after_sample_shown(self, sample_id: str) -> None:
        cur = self.session.current
        if cur is None or cur.sample.id != sample_id:
            return  # the user has moved on already
        self.browser.select_sample(sample_id)
        self.browser.model_.refresh_problems()
        self.session.prefetch([self.browser.next_id(sample_id), self.browser.previous_id(sample_id)])
        self._show_review(sample_id)

    def prepare_sample(self, sample_id: str, image, gt, prediction=None):  # noqa: ANN001, ANN202 - in a worker
        """Everything a sample needs before it is shown, done off the GUI thread: latest correction, overlays
        drawn in the current style (the prediction was read beside the image by the prefetcher)."""
        ds = self.review.dataset
        if ds is None or sample_id not in ds:
            return None
        return self.review.target_for(ds.get(sample_id), image, gt, style=self.editor.overlay_style,
                                      error_class=self.editor.error_class, prediction=prediction)

    def _show_review(self, sample_id: str) -> None:
        self.review_panel.set_state(self.review.review(sample_id), self.review.history(sample_id))
        ws = self.review.workspace
        versions = ws.versions.versions(sample_id) if ws is not None else []
        current = self.editor.target.base_version if self.editor.target is not None else 0
        self.review_panel.set_versions(versions, current=current)
        st = self.review.review(sample_id).status
        self.status.review.setText(st.value)
        self.loop.update_queue_info()

    def _update_summary(self) -> None:
        ds = self.session.dataset
        if ds is not None:
            self.review_panel.set_summary(self.review.summary(), len(ds))

    def _update_title(self) -> None:
        self.setWindowTitle(self._title())

    def _title(self) -> str:
        cur, ds = self.session.current, self.session.dataset
        ro = " [read-only]" if self.review.read_only else ""
        # Qt draws "[*]" as the platform's unsaved mark (an asterisk; the close button's dot on macOS)
        self.setWindowModified(ds is not None and self.editor.dirty)
        if ds is None:
            return f"segstudio{ro}"
        where = f"{cur.sample.name} ({ds.index_of(cur.sample.id) + 1}/{len(ds)}) — " if cur is not None else ""
        return f"{where}{ds.root.name} ({ds.format_name}){ro}[*] — segstudio"

    def _on_browser_sample_activated(self, sample_id: str) -> None:
        self.go_to_sample(sample_id)

    def _on_canvas_cursor_moved(self, x: int, y: int) -> None:
        cur = self.session.current
        if cur is None or x < 0:
            for lbl in (self.status.position, self.status.intensity, self.status.label):
                lbl.setText("")
            return
        self.status.position.setText(f"x {x}, y {y}")
        self.status.intensity.setText(f"value {cur.intensity_at(x, y)}")
        mask = self.editor.mask.array if self.editor.mask is not None else cur.gt
        cls = self.session.class_at(x, y, mask=mask)
        self.status.label.setText(f"class: {cls}" if cls else "")

    def _on_class_panel_visibility_changed(self, _class_id: int, _visible: bool) -> None:
        ds = self.session.dataset
        if ds is None:
            return
        hidden = frozenset(set(ds.schema.ids) - self.class_panel.visible_ids())
        self.editor.set_overlay_style(hidden=hidden)
        self.view.refresh_secondary()

    def _on_layers_opacity_changed(self, name: str, value: float) -> None:
        if name == GT_LAYER:
            self.settings = replace(self.settings, overlay=replace(self.settings.overlay, opacity=value))

    def _on_review_panel_reviewer_edited(self, name: str) -> None:
        self.settings = replace(self.settings, reviewer=name)
        self.review.reviewer = name
        self.editor.author = name
        self._save_settings()

    def _on_review_panel_revert_requested(self, version: int) -> None:
        cur, ws = self.session.current, self.review.workspace
        if cur is None or ws is None:
            return
        if version == 0:
            if cur.gt is None:
                return
            self.editor.replace_mask(cur.gt)
        else:
            self.editor.replace_mask(ws.versions.load(ws.versions.get(cur.sample.id, version)))
        self.statusBar().showMessage(f"Reverted to v{version} (undo with Ctrl+Z); it saves as a new version.", 6000)

    def _on_review_changed(self, sample_id: str, state: ReviewState) -> None:
        self.browser.model_.set_review(sample_id, state)
        cur = self.session.current
        if cur is not None and cur.sample.id == sample_id:
            self._show_review(sample_id)
        self._update_summary()

    def _on_review_scored(self, sample_id: str, comparison) -> None:  # noqa: ANN001
        if comparison is None:
            self.browser.model_.set_scores(sample_id, None, None)
        else:
            self.browser.model_.set_scores(sample_id, comparison.mean_dice, comparison.mean_iou)

    def _on_editor_dirty_changed(self, dirty: bool) -> None:
        # the truth about where unsaved edits are: in the recovery journal, or (after a failed append) nowhere
        # The label is short (the status bar is narrow); the tooltip says the whole of it.
        if not dirty:
            text, tip = "", ""
        elif self.editor.journal_ok:
            text, tip = "unsaved (journaled)", "Unsaved changes, kept in the recovery journal until they are saved."
        else:
            text, tip = ("UNSAVED, not journaled", "Unsaved changes that are NOT in the recovery journal (it could "
                         "not be written): they exist only in this window. Free disk space and save now (Ctrl+S).")
        self.status.saved.setText(text)
        self.status.saved.setToolTip(tip)
        self._update_title()

    def _on_editor_history_changed(self) -> None:
        m = self.editor.mask
        self.actions_["undo"].setEnabled(m is not None and m.can_undo)
        self.actions_["redo"].setEnabled(m is not None and m.can_redo)
        if m is not None:
            self.class_panel.set_pixel_counts(self.editor.class_pixel_counts())

    def _on_editor_saved(self, rec: MaskVersion) -> None:
        self.status.saved.setText(f"saved v{rec.version}")
        self.session.invalidate(rec.sample_id)  # a prefetched copy holds the old mask
        if self.review.review(rec.sample_id).status == ReviewStatus.UNREVIEWED:
            self.review.set_status(rec.sample_id, ReviewStatus.CORRECTED, comment=self.review_panel.comment_text())
        cur = self.session.current
        if cur is not None and cur.sample.id == rec.sample_id:
            self._show_review(rec.sample_id)
        if self.review.predictions is not None:
            self.review.start_scoring([rec.sample_id])

    def _on_autosave_timeout(self) -> None:
        if self.editor.dirty and not self.editor.gesture_active and not self.review.read_only:
            self.save_current(quiet=self._autosave_failed)
            # a full disk fails every autosave: the dialog once, then the status bar until a save works
            self._autosave_failed = self.editor.dirty

    # persistence ------------------------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        qs = window_settings()
        geo, state = qs.value("geometry"), qs.value("state")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def _save_settings(self) -> None:
        try:
            save_settings(self.settings)
        except (SegstudioError, OSError) as exc:  # a full disk must not stop the window (DiskFullError)
            log.warning("cannot save settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.training_panel.stop_for_close():
            event.ignore()
            return
        self.predictions_view.inference.stop_and_wait(60)
        self.export_view.stop_and_wait(60)
        self.save_current()
        if (self.editor.dirty and not self.review.read_only
                and not workspace_dialogs.confirm_close_unsaved(self, self.editor.journal_ok)):
            event.ignore()
            return
        self.editor.close_journal()
        self.session.close()
        self.start_screen.shutdown()
        self.browser.model_.thumbnails.shutdown()  # no thumbnail is written to the cache after the window closed
        self.review.close()
        self._restore_docks()  # the layout saved is the review page's, not the start screen's
        qs = window_settings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
        qs.sync()
        self._save_settings()
        super().closeEvent(event)
