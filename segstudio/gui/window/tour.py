"""Help → Getting Started Tour: five steps on the real window (open, compare, correct, retrain, export).

Each step is a bubble (a child widget of the window, so the rest of the window keeps taking clicks and keys)
beside the widget it is about, which is outlined. Anchors are found by action name (its tool-bar button), by
object name, or passed in a mapping; one that is missing or hidden puts the bubble in the window's middle.
Back / Next / Skip; "don't show at start" is kept in ``AppSettings.show_tour``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.core.settings import AppSettings, save_settings

log = logging.getLogger(__name__)

Anchor = QWidget | QAction | str
ACCENT = QColor("#8fb8e8")
BUBBLE_BG = QColor("#262a33")  # the stylesheet's widget background, so the labels blend in
ARROW = 12


@dataclass(frozen=True)
class TourStep:
    key: str
    title: str
    text: str
    anchor: str  # an action name (its tool-bar button) or a widget's objectName


STEPS: tuple[TourStep, ...] = (
    TourStep("open", "1. Open a dataset",
             "Open a dataset folder (Ctrl+O) in whatever format it has — the format is detected — or drop the "
             "folder onto the window. File → Open Predictions Folder shows a model's masks beside the GT.",
             "open_folder"),
    TourStep("compare", "2. Compare", "The sample list sorts by Dice: the images where GT and prediction disagree "
             "most come first. The Layers panel shows GT, prediction and the error map; Q walks the review queue.",
             "sampleBrowser"),
    TourStep("correct", "3. Correct", "Paint the selected class with the brush (B), or use polygon, lasso and "
             "fill; right button erases, Ctrl+Z undoes. Corrections save as new versions by themselves; A / R / F "
             "accept, reject or flag the image.", "tool_brush"),
    TourStep("retrain", "4. Retrain", "The Training panel retrains the model on the GT and your corrections in "
             "the background, then compares the new model with the current one before you promote it.",
             "retrainButton"),
    TourStep("export", "5. Export", "File → Export (Ctrl+E) writes the dataset with its corrections in a format "
             "another tool trains on; Write Back replaces the dataset's own files, keeping a backup.",
             "export"),
)


class _Highlight(QWidget):
    """An outline around the step's widget; mouse events go through it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("tourHighlight")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(ACCENT, 3))
        p.drawRoundedRect(self.rect().adjusted(2, 2, -2, -2), 6, 6)


class TourBubble(QFrame):
    """The step's text and buttons, drawn as a rounded box with an arrow to the widget."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("tourBubble")
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.arrow_side = ""  # "left", "right", "top", "bottom" or "" (no arrow)
        self.arrow_at = 0  # along that side, in pixels
        self.setFixedWidth(360)
        self.counter = QLabel(self)
        self.counter.setObjectName("tourCounter")
        self.title = QLabel(self)
        self.title.setObjectName("tourTitle")
        f = QFont(self.title.font())
        f.setBold(True)
        f.setPointSizeF(f.pointSizeF() * 1.2)
        self.title.setFont(f)
        self.text = QLabel(self)
        self.text.setObjectName("tourText")
        self.text.setWordWrap(True)
        self.dont_show = QCheckBox("Don't show this tour at start", self)
        self.dont_show.setObjectName("tourDontShow")
        self.back = QPushButton("Back", self)
        self.back.setObjectName("tourBack")
        self.next = QPushButton("Next", self)
        self.next.setObjectName("tourNext")
        self.next.setDefault(True)
        self.skip = QPushButton("Skip Tour", self)
        self.skip.setObjectName("tourSkip")
        for w in (self.counter, self.title, self.text, self.dont_show):
            w.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.dont_show.setAutoFillBackground(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16 + ARROW, 12 + ARROW, 16 + ARROW, 12 + ARROW)
        lay.addWidget(self.counter)
        lay.addWidget(self.title)
        lay.addWidget(self.text)
        lay.addWidget(self.dont_show)
        row = QHBoxLayout()
        row.addWidget(self.skip)
        row.addStretch(1)
        row.addWidget(self.back)
        row.addWidget(self.next)
        lay.addLayout(row)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = self.rect().adjusted(ARROW, ARROW, -ARROW, -ARROW)
        path = QPainterPath()
        path.addRoundedRect(box, 8, 8)
        a = self.arrow_at
        tri = {
            "left": [QPointF(box.left(), a - ARROW), QPointF(0, a), QPointF(box.left(), a + ARROW)],
            "right": [QPointF(box.right(), a - ARROW), QPointF(self.width(), a), QPointF(box.right(), a + ARROW)],
            "top": [QPointF(a - ARROW, box.top()), QPointF(a, 0), QPointF(a + ARROW, box.top())],
            "bottom": [QPointF(a - ARROW, box.bottom()), QPointF(a, self.height()), QPointF(a + ARROW, box.bottom())],
        }.get(self.arrow_side)
        if tri:
            arrow = QPainterPath()
            arrow.addPolygon(QPolygonF(tri))
            path = path.united(arrow)
        p.fillPath(path, BUBBLE_BG)
        p.setPen(QPen(ACCENT, 2))
        p.drawPath(path)


class Tour(QObject):
    """``Tour(window).start()``. ``anchors`` (step key → widget, action or object name) replace the defaults.
    ``sig_finished(completed)``: True after the last step's Finish, False when skipped."""

    sig_finished = Signal(bool)
    sig_step_changed = Signal(int)

    def __init__(self, window: QWidget, *, anchors: Mapping[str, Anchor] | None = None,
                 steps: tuple[TourStep, ...] = STEPS, settings_path: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.steps = steps
        self.anchors: dict[str, Anchor] = {s.key: s.anchor for s in steps}
        self.anchors.update(anchors or {})
        self.settings_path = settings_path
        self.index = -1
        self.bubble = TourBubble(window)
        self.highlight = _Highlight(window)
        self.bubble.hide()
        self.highlight.hide()
        self.bubble.back.clicked.connect(self.back)
        self.bubble.next.clicked.connect(self.next)
        self.bubble.skip.clicked.connect(self.skip)
        settings = getattr(window, "settings", None)
        if isinstance(settings, AppSettings):
            self.bubble.dont_show.setChecked(not settings.show_tour)

    @property
    def active(self) -> bool:
        return self.index >= 0

    def start(self) -> None:
        self.window.installEventFilter(self)
        self.go_to(0)

    def next(self) -> None:
        if self.index >= len(self.steps) - 1:
            self._finish(True)
        else:
            self.go_to(self.index + 1)

    def back(self) -> None:
        if self.index > 0:
            self.go_to(self.index - 1)

    def skip(self) -> None:
        self._finish(False)

    def go_to(self, i: int) -> None:
        self.index = max(0, min(i, len(self.steps) - 1))
        step = self.steps[self.index]
        b = self.bubble
        b.counter.setText(f"Getting started · step {self.index + 1} of {len(self.steps)}")
        b.title.setText(step.title)
        b.text.setText(step.text)
        b.back.setEnabled(self.index > 0)
        b.next.setText("Finish" if self.index == len(self.steps) - 1 else "Next")
        self._place()
        QTimer.singleShot(0, self._place_if_active)  # a dock just raised lays out on the next turn
        b.show()
        b.raise_()
        b.next.setFocus()
        self.sig_step_changed.emit(self.index)

    # anchors ----------------------------------------------------------------------------------------------------
    def anchor_widget(self, key: str) -> QWidget | None:
        """The widget the step ``key`` points at, when it is on screen."""
        a = self.anchors.get(key)
        w: QWidget | None = None
        if isinstance(a, str):
            actions = getattr(self.window, "actions_", {})
            a = actions.get(a, a) if isinstance(actions, Mapping) else a
        if isinstance(a, QAction):
            w = self._widget_for_action(a)
        elif isinstance(a, str):
            w = self.window.findChild(QWidget, a)
        elif isinstance(a, QWidget):
            w = a
        if w is not None and not w.isVisible():
            dock = _dock_of(w)
            if dock is not None and dock.toggleViewAction().isChecked():
                dock.raise_()  # tabbed behind another dock: bring it forward
        return w if w is not None and w.isVisible() else None

    def _widget_for_action(self, action: QAction) -> QWidget | None:
        for obj in action.associatedObjects():
            if isinstance(obj, QToolBar) and obj.isVisible():
                w = obj.widgetForAction(action)
                if w is not None:
                    return w
        menu_bar = getattr(self.window, "menuBar", None)
        return menu_bar() if callable(menu_bar) else None

    def _place_if_active(self) -> None:
        if self.active:
            self._place()

    def _place(self) -> None:
        step = self.steps[self.index]
        b, win = self.bubble, self.window
        b.adjustSize()
        size = b.sizeHint()
        b.resize(b.width(), size.height())
        target = self.anchor_widget(step.key)
        r = QRect(target.mapTo(win, QPoint(0, 0)), target.size()) if target is not None else QRect()
        if target is None or not win.rect().contains(r.center()):
            self.highlight.hide()
            b.arrow_side = ""
            b.move((win.width() - b.width()) // 2, (win.height() - b.height()) // 2)
            b.update()
            return
        self.highlight.setGeometry(r.adjusted(-4, -4, 4, 4))
        self.highlight.show()
        self.highlight.raise_()
        W, H, w, h = win.width(), win.height(), b.width(), b.height()  # noqa: N806
        cy = min(max(r.center().y() - h // 2, 0), max(0, H - h))
        cx = min(max(r.center().x() - w // 2, 0), max(0, W - w))
        if r.right() + w <= W:
            side, pos = "left", QPoint(r.right() + 2, cy)
        elif r.left() - w >= 0:
            side, pos = "right", QPoint(r.left() - w - 2, cy)
        elif r.bottom() + h <= H:
            side, pos = "top", QPoint(cx, r.bottom() + 2)
        else:
            side, pos = "bottom", QPoint(cx, max(0, r.top() - h - 2))
        b.move(min(max(pos.x(), 0), max(0, W - w)), min(max(pos.y(), 0), max(0, H - h)))
        b.arrow_side = side
        if side in ("left", "right"):
            b.arrow_at = min(max(r.center().y() - pos.y(), 2 * ARROW + 8), h - 2 * ARROW - 8)
        else:
            b.arrow_at = min(max(r.center().x() - pos.x(), 2 * ARROW + 8), w - 2 * ARROW - 8)
        b.update()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.window and self.active and event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            self._place()
        return False

    # end --------------------------------------------------------------------------------------------------------
    def _finish(self, completed: bool) -> None:
        self.index = -1
        self.window.removeEventFilter(self)
        self.bubble.hide()
        self.highlight.hide()
        self._store_show_at_start(not self.bubble.dont_show.isChecked())
        self.sig_finished.emit(completed)

    def _store_show_at_start(self, show: bool) -> None:
        settings: Any = getattr(self.window, "settings", None)
        if not isinstance(settings, AppSettings) or settings.show_tour == show:
            return
        self.window.settings = replace(settings, show_tour=show)  # type: ignore[attr-defined]
        try:
            save_settings(self.window.settings, self.settings_path)  # type: ignore[attr-defined]
        except (SegstudioError, OSError) as exc:  # a full disk must not stop the window
            log.warning("cannot save settings: %s", exc)


def _dock_of(w: QWidget) -> QDockWidget | None:
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QDockWidget):
            return p
        p = p.parentWidget()
    return None
