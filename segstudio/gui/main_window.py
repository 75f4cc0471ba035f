"""The main window composes the canvas, the sample browser, the class panel, the actions and the status bar.

It does not compute: loading lives in ``SessionController``, rendering in ``overlay``, input handling in the
canvas. Settings persist through ``core.settings`` (typed JSON) and window geometry through ``QSettings``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QToolBar,
    QWidget,
)

from segstudio import __version__
from segstudio.core.errors import SegstudioError
from segstudio.core.logsetup import log_file
from segstudio.core.paths import config_dir, sample_dataset_dir
from segstudio.core.settings import AppSettings, load_settings, save_settings
from segstudio.datasets.base import Dataset
from segstudio.datasets.registry import AmbiguousFormatError
from segstudio.gui.about import AboutDialog
from segstudio.gui.actions import ACTIONS, build_actions
from segstudio.gui.browser import SampleBrowser
from segstudio.gui.canvas import ImageCanvas
from segstudio.gui.controller import LoadedSample, SessionController
from segstudio.gui.errors import show_error
from segstudio.gui.overlay import render_mask_rgba
from segstudio.gui.panels.class_panel import ClassPanel, class_pixel_counts
from segstudio.gui.qimage import to_display_uint8

log = logging.getLogger(__name__)

GT_LAYER = "gt"


class StatusWidgets(NamedTuple):
    position: QLabel
    intensity: QLabel
    label: QLabel
    zoom: QLabel
    dataset: QLabel


class Docks(NamedTuple):
    browser: QDockWidget
    classes: QDockWidget


def window_settings() -> QSettings:
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, *, settings: AppSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("segstudio")
        self.resize(1280, 820)
        self.settings = settings if settings is not None else load_settings()

        self.session = SessionController(self)
        self.canvas = ImageCanvas(self)
        self.setCentralWidget(self.canvas)
        self.browser = SampleBrowser(self)
        self.class_panel = ClassPanel(self)
        self.docks = Docks(self._dock("Samples", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
                           self._dock("Classes", self.class_panel, Qt.DockWidgetArea.RightDockWidgetArea))
        self.actions_ = build_actions(self)
        self._build_menus_and_toolbar()
        self.status = self._build_status_bar()
        self._hidden_classes: set[int] = set()

        self.actions_["toggle_overlay"].setChecked(True)
        self.class_panel.set_opacity(self.settings.overlay.opacity)
        self.canvas.set_layer(GT_LAYER, None, z=1.0)
        self.canvas.set_layer_opacity(GT_LAYER, self.settings.overlay.opacity)

        self.session.sig_dataset_opened.connect(self._on_session_dataset_opened)
        self.session.sig_sample_loaded.connect(self._on_session_sample_loaded)
        self.browser.selectionModel().currentRowChanged.connect(self._on_browser_row_changed)
        self.canvas.sig_cursor_moved.connect(self._on_canvas_cursor_moved)
        self.canvas.sig_zoom_changed.connect(lambda s: self.status.zoom.setText(f"{s * 100:.0f} %"))
        self.class_panel.sig_opacity_changed.connect(self._on_class_panel_opacity_changed)
        self.class_panel.sig_visibility_changed.connect(self._on_class_panel_visibility_changed)
        self.class_panel.sig_overlay_toggled.connect(self.actions_["toggle_overlay"].setChecked)
        self._restore_geometry()

    # construction -----------------------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus_and_toolbar(self) -> None:
        menus: dict[str, QMenu] = {}
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        for spec in ACTIONS:
            menu = menus.get(spec.menu)
            if menu is None:
                menu = menus[spec.menu] = self.menuBar().addMenu(spec.menu)
                if spec.menu == "&View":
                    menu.addAction(self.docks.browser.toggleViewAction())
                    menu.addAction(self.docks.classes.toggleViewAction())
                    menu.addSeparator()
            if spec.name == "quit":
                menu.addSeparator()
            menu.addAction(self.actions_[spec.name])
            if spec.toolbar:
                toolbar.addAction(self.actions_[spec.name])
        self._recent_menu = QMenu("Open &Recent", self)
        menus["&File"].insertMenu(self.actions_["open_sample"], self._recent_menu)
        self._recent_menu.aboutToShow.connect(self._fill_recent_menu)

    def _build_status_bar(self) -> StatusWidgets:
        w = StatusWidgets(QLabel(), QLabel(), QLabel(), QLabel(), QLabel())
        for name, lbl in zip(StatusWidgets._fields, w, strict=True):
            lbl.setObjectName(f"status_{name}")
        w.position.setMinimumWidth(110)
        w.intensity.setMinimumWidth(120)
        w.label.setMinimumWidth(140)
        sb = self.statusBar()
        sb.addWidget(w.position)
        sb.addWidget(w.intensity)
        sb.addWidget(w.label, 1)
        sb.addPermanentWidget(w.dataset)
        sb.addPermanentWidget(w.zoom)
        return w

    # opening ----------------------------------------------------------------------------------------------------
    def open_dataset(self, path: str | Path, *, format_name: str | None = None) -> Dataset | None:
        """Open ``path``; ask for the format when detection is ambiguous; errors become a message box."""
        try:
            ds = self.session.open(path, format_name=format_name)
        except AmbiguousFormatError as exc:
            names = [n for n, _ in exc.candidates]
            choice, ok = QInputDialog.getItem(
                self, "Choose the dataset format",
                f"More than one format fits\n{path}\nOpen it as:", names, 0, False,
            )
            return self.open_dataset(path, format_name=choice) if ok else None
        except SegstudioError as exc:
            show_error("Cannot open dataset", str(exc))
            return None
        self.settings = self.settings.with_recent(str(Path(path).resolve()))
        self._save_settings()
        problems = ds.all_problems()
        if problems:
            self.statusBar().showMessage(f"{len(problems)} problem(s) found; flagged samples are marked", 8000)
        return ds

    def open_sample_dataset(self) -> None:
        self.open_dataset(sample_dataset_dir())

    def open_folder_dialog(self) -> None:
        start = str(Path(self.settings.last_dataset).parent) if self.settings.last_dataset else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if path:
            self.open_dataset(path)

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open annotation file", str(Path.home()), "Annotations (*.json);;All files (*)"
        )
        if path:
            self.open_dataset(path)

    def _fill_recent_menu(self) -> None:
        self._recent_menu.clear()
        for p in self.settings.recent_datasets:
            act = QAction(p, self._recent_menu)
            act.triggered.connect(lambda _c=False, p=p: self.open_dataset(p))
            self._recent_menu.addAction(act)
        if not self.settings.recent_datasets:
            none = self._recent_menu.addAction("(none yet)")
            none.setEnabled(False)

    # navigation and view ----------------------------------------------------------------------------------------
    def go_next(self) -> None:
        self.session.next()

    def go_previous(self) -> None:
        self.session.previous()

    def zoom_fit(self) -> None:
        self.canvas.fit()

    def zoom_1to1(self) -> None:
        self.canvas.zoom_1to1()

    def zoom_in(self) -> None:
        self.canvas.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.canvas.zoom_by(0.8)

    def set_overlay_visible(self, visible: bool) -> None:
        self.canvas.set_layer_visible(GT_LAYER, visible)
        if self.class_panel.show_overlay.isChecked() != visible:
            self.class_panel.show_overlay.setChecked(visible)

    def show_about(self) -> None:
        AboutDialog(self).exec()

    def open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file().parent)))

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_session_dataset_opened(self, ds: Dataset) -> None:
        self.browser.model_.set_dataset(ds)
        self._hidden_classes = set()
        self.class_panel.set_schema(ds.schema)
        kind = "multi-label" if ds.schema.multilabel else "semantic"
        self.status.dataset.setText(f"{ds.format_name} · {len(ds)} images · {len(ds.schema)} classes ({kind})")
        self.setWindowTitle(f"{ds.root.name} — segstudio")

    def _on_session_sample_loaded(self, cur: LoadedSample) -> None:
        ds = self.session.dataset
        assert ds is not None
        self.canvas.set_image(to_display_uint8(cur.image))
        self._render_gt()
        self.class_panel.set_pixel_counts(class_pixel_counts(cur.gt, ds.schema) if cur.gt is not None else None)
        if self.browser.currentIndex().row() != cur.row:
            self.browser.select_row(cur.row)
        self.setWindowTitle(f"{cur.sample.name} ({cur.row + 1}/{len(ds)}) — {ds.root.name} — segstudio")
        if cur.error:
            self.statusBar().showMessage(cur.error.splitlines()[0], 10000)

    def _render_gt(self) -> None:
        cur, ds = self.session.current, self.session.dataset
        if cur is None or ds is None or cur.gt is None:
            self.canvas.set_layer(GT_LAYER, None)
            return
        visible = set(ds.schema.ids) - self._hidden_classes
        self.canvas.set_layer(GT_LAYER, render_mask_rgba(cur.gt, ds.schema, visible))

    def _on_browser_row_changed(self, current, _previous) -> None:  # noqa: ANN001
        if current.isValid():
            self.session.go_to(current.row())

    def _on_canvas_cursor_moved(self, x: int, y: int) -> None:
        cur = self.session.current
        if cur is None or x < 0:
            self.status.position.setText("")
            self.status.intensity.setText("")
            self.status.label.setText("")
            return
        self.status.position.setText(f"x {x}, y {y}")
        self.status.intensity.setText(f"value {cur.intensity_at(x, y)}")
        cls = self.session.class_at(x, y)
        self.status.label.setText(f"class: {cls}" if cls else "")

    def _on_class_panel_opacity_changed(self, value: float) -> None:
        self.canvas.set_layer_opacity(GT_LAYER, value)
        self.settings = replace(self.settings, overlay=replace(self.settings.overlay, opacity=value))

    def _on_class_panel_visibility_changed(self, class_id: int, visible: bool) -> None:
        if visible:
            self._hidden_classes.discard(class_id)
        else:
            self._hidden_classes.add(class_id)
        self._render_gt()

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
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        qs = window_settings()
        qs.setValue("geometry", self.saveGeometry())
        qs.setValue("state", self.saveState())
        qs.sync()
        self._save_settings()
        super().closeEvent(event)


__all__ = ["MainWindow", "__version__"]
