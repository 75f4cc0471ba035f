"""The main window's chrome, built from the actions table: docks, menus, tool bars, the status bar and the
number keys. Each builder returns what it made (typed NamedTuples); the window keeps them."""

from __future__ import annotations

from typing import NamedTuple

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QSpinBox, QToolBar, QWidget

from segstudio.gui.actions import ACTIONS
from segstudio.gui.panels.class_panel import ClassPanel


class Docks(NamedTuple):
    browser: QDockWidget
    classes: QDockWidget
    layers: QDockWidget
    review: QDockWidget
    training: QDockWidget
    tool_options: QDockWidget


class Bars(NamedTuple):
    main: QToolBar
    tools: QToolBar
    recent_menu: QMenu
    brush_size: QSpinBox


def add_dock(window: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock_{title.lower()}")
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock


def build_docks(window: QMainWindow, *, browser: QWidget, classes: QWidget, layers: QWidget,
                review: QWidget, training: QWidget, tool_options: QWidget) -> Docks:
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    docks = Docks(add_dock(window, "Samples", browser, left), add_dock(window, "Classes", classes, right),
                  add_dock(window, "Layers", layers, right), add_dock(window, "Review", review, right),
                  add_dock(window, "Training", training, right), add_dock(window, "Tool Options", tool_options, right))
    docks.tool_options.setObjectName("dock_tool_options")
    window.tabifyDockWidget(docks.layers, docks.review)
    window.tabifyDockWidget(docks.review, docks.training)
    window.tabifyDockWidget(docks.training, docks.tool_options)
    docks.review.raise_()
    window.resizeDocks([docks.browser, docks.classes], [400, 330], Qt.Orientation.Horizontal)
    window.resizeDocks([docks.classes, docks.review], [170, 600], Qt.Orientation.Vertical)
    return docks


def build_brush_size() -> QSpinBox:
    """The brush size box (image pixels) the Tools tool bar shows."""
    size = QSpinBox()
    size.setRange(1, 500)
    size.setValue(20)
    size.setSuffix(" px")
    size.setToolTip("Brush size in image pixels ([ and ])")
    return size


def build_menus_and_toolbars(window: QMainWindow, actions: dict[str, QAction], docks: Docks, *,
                             brush_size: QSpinBox) -> Bars:
    """Menus and tool bars in the order of ``ACTIONS``; View also toggles the docks."""
    menus: dict[str, QMenu] = {}
    bars: dict[str, QToolBar] = {}
    for key, title in (("main", "Main"), ("tools", "Tools")):
        bar = QToolBar(title, window)
        bar.setObjectName(f"{key}Toolbar")
        bar.setMovable(False)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea if key == "main" else Qt.ToolBarArea.LeftToolBarArea, bar)
        bars[key] = bar
    for spec in ACTIONS:
        menu = menus.get(spec.menu)
        if menu is None:
            menu = menus[spec.menu] = window.menuBar().addMenu(spec.menu)
            if spec.menu == "&View":
                for d in docks:
                    menu.addAction(d.toggleViewAction())
        if spec.separator_before:
            menu.addSeparator()
        menu.addAction(actions[spec.name])
        if spec.toolbar:
            bars[spec.toolbar].addAction(actions[spec.name])
    recent = QMenu("Open &Recent", window)
    menus["&File"].insertMenu(actions["open_sample"], recent)
    bars["tools"].addSeparator()
    bars["tools"].addWidget(brush_size)
    return Bars(bars["main"], bars["tools"], recent, brush_size)


def build_class_keys(window: QWidget, class_panel: ClassPanel) -> list[QAction]:
    """Keys 0-9 select the painting class (see ``ClassPanel.select_by_key``)."""
    acts = []
    for d in range(10):
        act = QAction(f"Select class {d}", window)
        act.setShortcut(QKeySequence(str(d)))
        act.triggered.connect(lambda _c=False, d=d: class_panel.select_by_key(d))
        window.addAction(act)
        acts.append(act)
    return acts
