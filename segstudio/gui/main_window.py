"""The main window composes the review screen: canvas (or split view), sample browser, classes, layers, review
panel, tool bar and status bar. It holds no domain state and no behaviour: the dataset and current sample live in
``SessionController``, the workspace and reviews in ``ReviewController``, the mask being edited in
``EditorController``; each menu's behaviour lives in a controller that receives its collaborators, and the
actions table's entries are bound here to those controllers' callables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QStackedWidget, QWidget

from segstudio.core.paths import config_dir
from segstudio.core.settings import AppSettings, load_settings
from segstudio.gui.actions import ACTIONS, build_actions
from segstudio.gui.export.export_view import ExportView
from segstudio.gui.loop.bundles import BundleController
from segstudio.gui.loop.metrics_dashboard import MetricsController
from segstudio.gui.loop.predictions_view import PredictionsController
from segstudio.gui.loop.quality import QualityController
from segstudio.gui.loop.report_view import ReportController
from segstudio.gui.loop.review_loop import LoopController
from segstudio.gui.loop.sweeps import SweepController
from segstudio.gui.loop.training import TrainingController
from segstudio.gui.loop.training_panel import TrainingPanel
from segstudio.gui.panels.class_panel import ClassPanel
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.panels.tool_options import ToolOptionsPanel
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import ERROR_LAYER, GT_LAYER, PRED_LAYER, EditorController
from segstudio.gui.screen.navigation import NavigationController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.review_screen import ReviewScreenController
from segstudio.gui.screen.sam_tool import SamToolController
from segstudio.gui.screen.session import SessionController
from segstudio.gui.screen.split_view import SplitView
from segstudio.gui.screen.status import StatusController, build_status_bar
from segstudio.gui.screen.tools import ToolController
from segstudio.gui.screen.view import ViewController
from segstudio.gui.window import workspace_dialogs
from segstudio.gui.window.chrome import (
    build_brush_size,
    build_class_keys,
    build_docks,
    build_menus_and_toolbars,
)
from segstudio.gui.window.drop import DropController
from segstudio.gui.window.help_menu import HelpController
from segstudio.gui.window.opening import OpenController
from segstudio.gui.window.pages import PageController
from segstudio.gui.window.preferences import SettingsStore
from segstudio.gui.window.preferences_controller import PreferencesController
from segstudio.gui.window.start_screen import StartScreen

log = logging.getLogger(__name__)


def window_settings() -> QSettings:
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, *, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("segstudio")
        self.resize(1400, 880)  # shrunk to the screen by create_main_window when the screen is smaller
        self.settings_store = SettingsStore(settings if settings is not None else load_settings())

        # models and widgets --------------------------------------------------------------------------------------
        self.session = SessionController(self)
        self.review = ReviewController(self)
        self.canvas = ImageCanvas(self)
        self.split = SplitView(self.canvas, self)
        # the central pages: the start screen while nothing is open (or on File → Start Screen), else the review
        self.start_screen = StartScreen(self)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.start_screen)
        self.pages.addWidget(self.split)
        self.setCentralWidget(self.pages)
        self.editor = EditorController(self.canvas, self)
        self.browser = SampleBrowser(self)
        self.class_panel = ClassPanel(self)
        self.layers_panel = LayersPanel(self)
        self.review_panel = ReviewPanel(self)
        self.training = TrainingController(self)
        self.training_panel = TrainingPanel(self.training, self)
        self.tool_options = ToolOptionsPanel(self)
        self.docks = build_docks(self, browser=self.browser, classes=self.class_panel, layers=self.layers_panel,
                                 review=self.review_panel, training=self.training_panel, tool_options=self.tool_options)
        self.brush_size = build_brush_size()

        # controllers, each given what it works with ----------------------------------------------------------------
        self.view = ViewController(session=self.session, canvas=self.canvas, split=self.split,
                                   layers=self.layers_panel, editor=self.editor, actions={}, parent=self)
        # made before the status line: its progress bar and Stop button sit left of the status labels
        self.predictions_view = PredictionsController(
            session=self.session, review=self.review, training=self.training, browser=self.browser,
            editor=self.editor, canvas=self.canvas, layers=self.layers_panel, view=self.view,
            status_bar=self.statusBar(), parent=self)
        self.editor.predict_here_hook = self.predictions_view.inference.predict_here
        self.status = build_status_bar(self.statusBar())
        self.status_controller = StatusController(window=self, labels=self.status, session=self.session,
                                                  review=self.review, editor=self.editor, canvas=self.canvas,
                                                  parent=self)
        show_message = self.status_controller.show_message
        self.tools = ToolController(editor=self.editor, canvas=self.canvas, class_panel=self.class_panel,
                                    brush_size=self.brush_size, show_message=show_message, dialog_parent=self,
                                    options=self.tool_options, parent=self)
        self.sam = SamToolController(editor=self.editor, canvas=self.canvas, settings=self.settings_store,
                                     show_message=show_message, dialog_parent=self, options=self.tool_options,
                                     parent=self)
        self.tools.sig_tool_changed.connect(self.sam.on_tool_changed)
        self.navigation = NavigationController(
            session=self.session, review=self.review, editor=self.editor, browser=self.browser,
            review_panel=self.review_panel, status=self.status_controller,
            autosave_s=self.settings_store.value.autosave_s, parent=self)
        self.pages_controller = PageController(window=self, pages=self.pages, start_screen=self.start_screen,
                                               review_page=self.split, docks=self.docks, session=self.session,
                                               settings=self.settings_store, parent=self)
        self.review_screen = ReviewScreenController(
            session=self.session, review=self.review, editor=self.editor, view=self.view, tools=self.tools,
            status=self.status_controller, browser=self.browser, class_panel=self.class_panel,
            layers_panel=self.layers_panel, review_panel=self.review_panel, parent=self)
        self.loop = LoopController(
            session=self.session, review=self.review, navigation=self.navigation, browser=self.browser,
            review_panel=self.review_panel, training=self.training, training_panel=self.training_panel,
            training_dock=self.docks.training, refresh_predictions=self.predictions_view.refresh_predictions,
            show_message=show_message, parent=self)
        self.quality = QualityController(
            session=self.session, review=self.review, navigation=self.navigation, browser=self.browser,
            review_panel=self.review_panel, canvas=self.canvas, loop=self.loop, status_bar=self.statusBar(),
            show_message=show_message, recipe=lambda: self.training_panel.recipe.currentData() or None, parent=self)
        self.reports = ReportController(review=self.review, training=self.training,
                                        training_panel=self.training_panel, status_bar=self.statusBar(),
                                        show_message=show_message, parent=self)
        self.sweeps = SweepController(training=self.training, panel=self.training_panel, show_message=show_message,
                                      show_panel=self.loop.show_training_panel, dialog_parent=self, parent=self)
        self.bundles = BundleController(training=self.training, panel=self.training_panel, status_bar=self.statusBar(),
                                        show_message=show_message, show_panel=self.loop.show_training_panel,
                                        dialog_parent=self, parent=self)
        self.metrics = MetricsController(review=self.review, navigation=self.navigation, show_message=show_message,
                                         parent=self)
        self.export_view = ExportView(review=self.review, session=self.session, status_bar=self.statusBar(),
                                      save=self.navigation.save_current,
                                      open_dataset=lambda path: self.opening.open_dataset(path), parent=self)
        self.opening = OpenController(
            dialog_parent=self, session=self.session, review=self.review, settings=self.settings_store,
            navigation=self.navigation, status=self.status_controller, predictions=self.predictions_view,
            training_panel=self.training_panel, export_jobs=self.export_view,
            prepare_sample=self.review_screen.prepare_sample, parent=self)
        self.preferences = PreferencesController(
            settings=self.settings_store, dialog_parent=self, session=self.session, review=self.review,
            editor=self.editor, navigation=self.navigation, view=self.view, class_panel=self.class_panel,
            layers_panel=self.layers_panel, review_panel=self.review_panel, training_panel=self.training_panel,
            parent=self)
        self.help = HelpController(window=self, parent=self)
        self.drops = DropController(self, dataset=lambda: self.session.dataset,
                                    open_dataset=self.opening.open_dataset,
                                    open_predictions=self.opening.open_predictions)
        # the window's public openers and steps (scripts, tests): the controllers' own callables
        self.open_dataset = self.opening.open_dataset
        self.go_next, self.go_previous = self.navigation.go_next, self.navigation.go_previous
        self.save_now = self.navigation.save_now

        # actions, menus and tool bars ----------------------------------------------------------------------------
        self.actions_ = build_actions(self, self._action_handlers())
        for controller in (self.view, self.predictions_view, self.status_controller, self.review_screen):
            controller.bind_actions(self.actions_)
        self.bars = build_menus_and_toolbars(self, self.actions_, self.docks, brush_size=self.brush_size)
        # the sample list's right-click menu: what applies to the selected rows
        self.browser.set_context_actions([self.actions_[n] for n in (
            "predict_selected", "accept_pseudo_labels", "bulk_flag", "bulk_reject")])
        self.bars.recent_menu.aboutToShow.connect(lambda: self.opening.fill_recent_menu(self.bars.recent_menu))
        self._class_actions = build_class_keys(self, self.class_panel)
        self.preferences.apply_at_start(self.actions_)
        self._wire()
        self._set_initial_view()
        self._restore_geometry()
        self.pages_controller.show_start_screen()

    @property
    def settings(self) -> AppSettings:
        return self.settings_store.value

    @settings.setter
    def settings(self, value: AppSettings) -> None:  # the tour stores "show at start" here
        self.settings_store.value = value

    def _action_handlers(self) -> dict[str, Callable[..., object]]:
        """Action name → the callable of the controller that owns it (the table itself names no handlers)."""
        opening, nav, tools, view, ed = self.opening, self.navigation, self.tools, self.view, self.editor
        pv, loop, export, help_ = self.predictions_view, self.loop, self.export_view, self.help
        handlers: dict[str, Callable[..., object]] = {
            "open_folder": opening.open_folder_dialog, "open_file": opening.open_file_dialog,
            "open_predictions": opening.open_predictions_dialog, "open_sample": opening.open_sample_dataset,
            "start_screen": self.pages_controller.show_start_screen, "save": nav.save_now,
            "export": export.show_export_dialog, "writeback": export.start_writeback,
            "restore_backup": export.show_restore_dialog, "quit": self.close,
            "undo": ed.undo, "redo": ed.redo, "accept_prediction": tools.accept_prediction,
            "preferences": self.preferences.show_preferences,
            "brush_smaller": tools.change_brush_size, "brush_larger": tools.change_brush_size,
            "brush_shape": tools.set_square_brush, "finish_shape": ed.finish_polygon, "cancel_shape": ed.cancel_gesture,
            "prev": nav.go_previous, "next": nav.go_next, "next_unreviewed": nav.go_next_unreviewed,
            "next_in_queue": loop.go_next_in_queue,
            "quality_rank": self.quality.rank_labels, "quality_rank_folds": self.quality.rank_labels_out_of_fold,
            "bulk_flag": self.quality.flag_selected,
            "bulk_reject": self.quality.reject_selected,
            "fit": view.zoom_fit, "zoom_1to1": view.zoom_1to1, "zoom_in": view.zoom_in, "zoom_out": view.zoom_out,
            "toggle_gt": view.set_gt_visible, "toggle_pred": view.set_pred_visible,
            "toggle_error": view.set_error_visible, "toggle_uncertainty": pv.set_uncertainty_visible,
            "contour_mode": view.set_contour_mode, "invert": view.set_invert, "view.reset_display": view.reset_display,
            "train_start": loop.start_training, "train_stop": self.training_panel.stop_training,
            "train_retrain": loop.start_retrain, "train_panel": loop.show_training_panel,
            "train_report": self.reports.report_on_runs,
            "train_sweep": self.sweeps.run_sweep_dialog, "train_add_sweep": self.sweeps.add_folder_dialog,
            "train_export_bundle": self.bundles.export_dialog, "train_import_run": self.bundles.import_dialog,
            "metrics_dashboard": self.metrics.show_dashboard,
            "load_promptable_model": self.sam.choose_model,
            "predict_current": pv.predict_current, "predict_all": pv.predict_all,
            "predict_selected": pv.predict_selected, "accept_pseudo_labels": loop.accept_selected_predictions,
            "predict_stop": pv.stop,
            "shortcuts": help_.show_shortcuts, "tour": help_.show_tour, "about": help_.show_about,
            "open_logs": help_.open_log_folder,
        }
        # the families: one callable each, the table's ``arg`` says which member
        families = {"tool": tools.set_tool, "view": view.set_view_mode}
        for spec in ACTIONS:
            if spec.group in families:
                handlers[spec.name] = families[spec.group]
            elif spec.name.startswith("review_"):
                handlers[spec.name] = nav.set_review_status
            elif spec.menu == "&Edit" and spec.arg is not None:
                handlers[spec.name] = tools.run_mask_op
        return handlers

    def _wire(self) -> None:
        self.session.sig_dataset_opened.connect(lambda ds: self.tool_options.set_schema(ds.schema))
        # what an assisted tool proposes, and how to take it, stays in the status bar until it is decided
        self.editor.sig_proposal_changed.connect(
            lambda text: self.status_controller.show_message(text, 0 if text else 1))
        self.canvas.sig_space_tapped.connect(self.navigation.go_next)
        self.review_screen.sig_review_shown.connect(lambda _sid: self.loop.update_queue_info())
        self.predictions_view.sig_predictions_changed.connect(self.status_controller.update_dataset_status)
        # new predictions fill the "next to review" queue: its line in the Review panel follows at once
        self.predictions_view.sig_predictions_changed.connect(self.loop.update_queue_info)
        self.start_screen.sig_open_requested.connect(self.opening.open_dataset)
        self.start_screen.sig_open_folder_requested.connect(self.opening.open_folder_dialog)
        self.start_screen.sig_open_file_requested.connect(self.opening.open_file_dialog)
        self.start_screen.sig_open_sample_requested.connect(self.opening.open_sample_dataset)

    def _set_initial_view(self) -> None:
        # GT and the error map by default: agreement shows the GT colours, disagreement is painted over them.
        # The prediction itself is one key (V) or one split view away.
        for name, layer, on in (("toggle_gt", GT_LAYER, True), ("toggle_pred", PRED_LAYER, False),
                                ("toggle_error", ERROR_LAYER, True)):
            self.actions_[name].setChecked(on)
            self.layers_panel.set_layer_visible(layer, on)
        self.actions_["view_single"].setChecked(True)
        self.tools.set_tool("brush")
        self.actions_["tool_brush"].setChecked(True)

    # persistence ------------------------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        qs = window_settings()
        geo, state = qs.value("geometry"), qs.value("state")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.training_panel.stop_for_close():
            event.ignore()
            return
        self.predictions_view.inference.stop_and_wait(60)
        self.sam.stop_and_wait(60)
        self.export_view.stop_and_wait(60)
        self.quality.stop_and_wait(60)
        self.reports.stop_and_wait(60)
        self.metrics.stop_and_wait(60)
        self.bundles.stop_and_wait(60)
        self.navigation.save_current()
        if (self.editor.dirty and not self.review.read_only
                and not workspace_dialogs.confirm_close_unsaved(self, self.editor.journal_ok)):
            event.ignore()
            return
        self.editor.close_journal()
        self.session.close()
        self.start_screen.shutdown()
        self.browser.model_.thumbnails.shutdown()  # no thumbnail is written to the cache after the window closed
        self.review.close()
        self.pages_controller.restore_docks()  # the layout saved is the review page's, not the start screen's
        qs = window_settings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
        qs.sync()
        self.settings_store.save()
        super().closeEvent(event)
