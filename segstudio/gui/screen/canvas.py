"""The image canvas: a QGraphicsView with an image layer and named array layers (GT, prediction, error map).

It displays and translates input, nothing more (DESIGN rule 3): zoom (wheel, around the cursor), pan (left drag
in pan mode; middle drag or Space + drag always), right drag for window/level, a pixel grid at high zoom, a brush
outline cursor and a tool outline. In edit mode the left and right buttons become neutral ``PointerEvent``s
(``sig_pointer``); the editor controller decides what they do.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from segstudio.gui.screen.layers import ArrayLayerItem, pixel_grid_lines
from segstudio.masks.tools import Buttons, Modifiers, PointerEvent

ZOOM_STEP = 1.25
MIN_SCALE = 0.02
MAX_SCALE = 64.0
GRID_MIN_SCALE = 8.0  # the pixel grid appears from 8 screen pixels per image pixel


def _buttons(qt_buttons: Qt.MouseButton) -> Buttons:
    b = Buttons.NONE
    if qt_buttons & Qt.MouseButton.LeftButton:
        b |= Buttons.LEFT
    if qt_buttons & Qt.MouseButton.RightButton:
        b |= Buttons.RIGHT
    if qt_buttons & Qt.MouseButton.MiddleButton:
        b |= Buttons.MIDDLE
    return b


def _modifiers(qt_mods: Qt.KeyboardModifier) -> Modifiers:
    m = Modifiers.NONE
    if qt_mods & Qt.KeyboardModifier.ShiftModifier:
        m |= Modifiers.SHIFT
    if qt_mods & Qt.KeyboardModifier.ControlModifier:
        m |= Modifiers.CTRL
    if qt_mods & Qt.KeyboardModifier.AltModifier:
        m |= Modifiers.ALT
    if qt_mods & Qt.KeyboardModifier.MetaModifier:
        m |= Modifiers.META
    return m


#: the frame around the part of a label that the label-quality check points at
HIGHLIGHT_COLOUR = QColor(0, 229, 255)


class ImageCanvas(QGraphicsView):
    sig_cursor_moved = Signal(int, int)  # image pixel (x, y); (-1, -1) outside the image
    sig_zoom_changed = Signal(float)  # view scale, 1.0 = one image pixel per screen pixel
    sig_view_changed = Signal()  # scroll or zoom changed (split views follow)
    sig_pointer = Signal(str, object)  # "press" | "move" | "release" | "double", PointerEvent (edit mode)
    sig_window_level_dragged = Signal(float, float)  # dx, dy in screen pixels (right drag outside edit mode)
    sig_space_tapped = Signal()  # Space pressed and released without panning (edit mode): "next image"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setBackgroundBrush(QColor(30, 30, 30))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self.sig_view_changed.emit())
        self.verticalScrollBar().valueChanged.connect(lambda _v: self.sig_view_changed.emit())

        self._image_item = ArrayLayerItem(z=0.0)
        self._scene.addItem(self._image_item)
        self._layers: dict[str, ArrayLayerItem] = {}
        self._image_size: tuple[int, int] = (0, 0)  # (w, h)
        self._fit_on_resize = True
        self._edit_mode = False
        self._pressed: Buttons = Buttons.NONE
        self._space_down = False
        self._space_panned = False
        self._wl_last: QPointF | None = None
        self._pressure: float | None = None

        pen = QPen(QColor(255, 255, 255, 220))
        pen.setCosmetic(True)
        self._brush_round = QGraphicsEllipseItem()
        self._brush_square = QGraphicsRectItem()
        for item in (self._brush_round, self._brush_square):
            item.setPen(pen)
            item.setZValue(100)
            item.setVisible(False)
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresParentOpacity, True)
            self._scene.addItem(item)
        self._brush_size = 0.0
        self._brush_shape = "round"
        self._outline = QGraphicsPathItem()
        out_pen = QPen(QColor(255, 230, 0), 1.5, Qt.PenStyle.DashLine)
        out_pen.setCosmetic(True)
        self._outline.setPen(out_pen)
        self._outline.setZValue(101)
        self._scene.addItem(self._outline)
        # the part of the label to look at (label quality): a dark halo under a bright frame reads on any image
        self._highlight: list[QGraphicsRectItem] = []
        for colour, width in ((QColor(0, 0, 0, 200), 5.0), (HIGHLIGHT_COLOUR, 2.5)):
            hl_pen = QPen(colour, width)
            hl_pen.setCosmetic(True)
            hl_pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            item = QGraphicsRectItem()
            item.setPen(hl_pen)
            item.setZValue(90)
            item.setVisible(False)
            self._scene.addItem(item)
            self._highlight.append(item)

    # content ----------------------------------------------------------------------------------------------------
    def set_image(self, display: np.ndarray) -> None:
        """Show ``display`` (uint8 gray, RGB or RGBA). Keeps the view unless the image size changes."""
        self._image_item.set_array(display)
        h, w = display.shape[:2]
        if (w, h) != self._image_size:
            self._image_size = (w, h)
            self._scene.setSceneRect(QRectF(0, 0, w, h))
            self.fit()

    def display_array(self) -> np.ndarray | None:
        """The image as shown (uint8, after the window/level and filters)."""
        return self._image_item.array

    def set_highlight(self, box: tuple[int, int, int, int] | None, *, tip: str = "") -> None:
        """Frame the part of the image at ``box`` = ``(y0, y1, x0, x1)`` in image pixels (``None``: no frame), a few
        pixels outside it so that the frame does not hide the outline it points at; ``tip``: its tooltip."""
        for item in self._highlight:
            item.setVisible(box is not None)
            item.setToolTip(tip)
            if box is not None:
                y0, y1, x0, x1 = box
                pad = 4.0
                item.setRect(QRectF(x0 - pad, y0 - pad, (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad))

    def highlight(self) -> QRectF | None:
        """The framed rectangle in image pixels (padding included), ``None`` when nothing is framed."""
        item = self._highlight[-1]
        return item.rect() if item.isVisible() else None

    def layer(self, name: str, *, z: float = 1.0) -> ArrayLayerItem:
        """The array layer ``name`` (created on first use, above the image)."""
        item = self._layers.get(name)
        if item is None:
            item = ArrayLayerItem(z=z)
            self._scene.addItem(item)
            self._layers[name] = item
        return item

    def set_layer(self, name: str, rgba: np.ndarray | None, *, z: float = 1.0) -> None:
        """Replace layer ``name`` with an ``(H, W, 4)`` uint8 RGBA array (kept by reference; None clears it)."""
        self.layer(name, z=z).set_array(rgba)

    def update_layer_region(self, name: str, rgba: np.ndarray, *, x: int, y: int) -> None:
        """Repaint only the rectangle at (x, y) of layer ``name`` with ``rgba`` (dirty-rect update)."""
        self._layers[name].write_region(rgba, x=x, y=y)

    def set_layer_visible(self, name: str, visible: bool) -> None:
        self.layer(name).setVisible(visible)

    def layer_visible(self, name: str) -> bool:
        return name in self._layers and self._layers[name].isVisible()

    def set_layer_opacity(self, name: str, opacity: float) -> None:
        self.layer(name).setOpacity(max(0.0, min(1.0, opacity)))

    def layer_opacity(self, name: str) -> float:
        return self._layers[name].opacity() if name in self._layers else 0.0

    def image_size(self) -> tuple[int, int]:
        return self._image_size

    # edit mode, cursor and outlines -----------------------------------------------------------------------------
    def set_edit_mode(self, on: bool) -> None:
        """Edit mode: left/right buttons go to the tool; otherwise left drag pans."""
        self._edit_mode = on
        self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor)
        self._update_brush_cursor(None)

    @property
    def edit_mode(self) -> bool:
        return self._edit_mode

    def set_brush_cursor(self, size: float, shape: str = "round") -> None:
        """Outline of the brush footprint (image pixels) that follows the pointer; size 0 hides it."""
        self._brush_size = float(size)
        self._brush_shape = shape
        self._update_brush_cursor(None)

    def set_tool_outline(self, points: tuple[tuple[float, float], ...], *, closed: bool = False) -> None:
        """The polygon / lasso / rectangle being drawn, as a dashed path (empty hides it)."""
        path = QPainterPath()
        if points:
            path.moveTo(*points[0])
            for p in points[1:]:
                path.lineTo(*p)
            if closed:
                path.closeSubpath()
        self._outline.setPath(path)

    def _update_brush_cursor(self, scene_pos: QPointF | None) -> None:
        show = self._edit_mode and self._brush_size > 0 and scene_pos is not None
        round_, square = self._brush_round, self._brush_square
        if not show:
            round_.setVisible(False)
            square.setVisible(False)
            return
        assert scene_pos is not None
        r = self._brush_size / 2.0
        rect = QRectF(scene_pos.x() - r, scene_pos.y() - r, 2 * r, 2 * r)
        active, other = (round_, square) if self._brush_shape == "round" else (square, round_)
        active.setRect(rect)  # type: ignore[attr-defined]
        active.setVisible(True)
        other.setVisible(False)

    # view -------------------------------------------------------------------------------------------------------
    def scale_factor(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        if self._image_size == (0, 0):
            return
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_on_resize = True
        self.sig_zoom_changed.emit(self.scale_factor())
        self.sig_view_changed.emit()

    def zoom_1to1(self) -> None:
        self._set_scale(1.0)

    def zoom_by(self, factor: float) -> None:
        self._set_scale(self.scale_factor() * factor)

    def _set_scale(self, s: float) -> None:
        s = max(MIN_SCALE, min(MAX_SCALE, s))
        cur = self.scale_factor()
        if cur > 0 and not math.isclose(s, cur):
            self.scale(s / cur, s / cur)
        self._fit_on_resize = False
        self.sig_zoom_changed.emit(self.scale_factor())
        self.sig_view_changed.emit()

    def copy_view_from(self, other: ImageCanvas) -> None:
        """Take ``other``'s zoom and scroll position (synchronised split panes)."""
        if not math.isclose(other.scale_factor(), self.scale_factor()):
            self.setTransform(other.transform())
        self._fit_on_resize = other._fit_on_resize
        self.horizontalScrollBar().setValue(other.horizontalScrollBar().value())
        self.verticalScrollBar().setValue(other.verticalScrollBar().value())

    def image_pos(self, view_pos: QPointF) -> tuple[int, int]:
        """Image pixel under a viewport position, or (-1, -1) outside the image."""
        p = self.scene_pos(view_pos)
        x, y = math.floor(p.x()), math.floor(p.y())
        w, h = self._image_size
        return (x, y) if 0 <= x < w and 0 <= y < h else (-1, -1)

    def render_to_image(self) -> QImage:
        """What the viewport shows now, as an image (tests compare pixels with it)."""
        return self.viewport().grab().toImage()

    # painting ---------------------------------------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802
        if self.scale_factor() < GRID_MIN_SCALE or self._image_size == (0, 0):
            return
        w, h = self._image_size
        r = QRectF(rect).intersected(QRectF(0, 0, w, h))
        pen = QPen(QColor(128, 128, 128, 110))
        pen.setCosmetic(True)
        painter.setPen(pen)
        xs, ys = pixel_grid_lines(r)
        for x in xs:
            painter.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
        for y in ys:
            painter.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))

    # events -----------------------------------------------------------------------------------------------------
    def scene_pos(self, view_pos: QPointF) -> QPointF:
        """Sub-pixel scene (image) position of a viewport position (mapToScene rounds to whole view pixels)."""
        inverse, _ok = self.viewportTransform().inverted()
        return inverse.map(view_pos)

    def _pointer(self, event: QMouseEvent, buttons: Buttons) -> PointerEvent:
        p = self.scene_pos(event.position())
        return PointerEvent(x=float(p.x()), y=float(p.y()), buttons=buttons, modifiers=_modifiers(event.modifiers()),
                            pressure=self._pressure, clicks=1)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y()
        if delta == 0:
            return
        self.zoom_by(ZOOM_STEP ** (delta / 120.0))
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001
        super().resizeEvent(event)
        if self._fit_on_resize:
            self.fit()

    def _panning_gesture(self, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.MiddleButton or (
            self._space_down and event.button() == Qt.MouseButton.LeftButton
        )

    def _as_left(self, event: QMouseEvent, *, pressed: bool) -> QMouseEvent:
        return QMouseEvent(
            event.type(), event.position(), event.globalPosition(), Qt.MouseButton.LeftButton,
            Qt.MouseButton.LeftButton if pressed else Qt.MouseButton.NoButton, event.modifiers(),
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._panning_gesture(event):
            # Middle drag (or Space + drag) pans in every mode: replay it as a ScrollHandDrag left press.
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            super().mousePressEvent(self._as_left(event, pressed=True))
            self._pressed = Buttons.MIDDLE
            self._space_panned = True
            return
        if event.button() == Qt.MouseButton.RightButton and not self._edit_mode:
            self._wl_last = event.position()
            event.accept()
            return
        if self._edit_mode and event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._pressed = _buttons(event.button())
            self.sig_pointer.emit("press", self._pointer(event, self._pressed))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        scene = self.scene_pos(event.position())
        if self._wl_last is not None:
            d = event.position() - self._wl_last
            self._wl_last = event.position()
            self.sig_window_level_dragged.emit(float(d.x()), float(d.y()))
        elif self._pressed in (Buttons.LEFT, Buttons.RIGHT) and self._edit_mode:
            self.sig_pointer.emit("move", self._pointer(event, self._pressed))
        elif self._edit_mode and self._pressed == Buttons.NONE:
            self.sig_pointer.emit("move", self._pointer(event, Buttons.NONE))
        else:
            super().mouseMoveEvent(event)
        self._update_brush_cursor(scene if self._edit_mode else None)
        x, y = self.image_pos(event.position())
        self.sig_cursor_moved.emit(x, y)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pressed == Buttons.MIDDLE and (event.button() == Qt.MouseButton.MiddleButton or
                                                event.button() == Qt.MouseButton.LeftButton):
            super().mouseReleaseEvent(self._as_left(event, pressed=False))
            self._pressed = Buttons.NONE
            if self._edit_mode:
                self.setDragMode(QGraphicsView.DragMode.NoDrag)
            return
        if event.button() == Qt.MouseButton.RightButton and self._wl_last is not None:
            self._wl_last = None
            event.accept()
            return
        if self._edit_mode and self._pressed != Buttons.NONE:
            pressed, self._pressed = self._pressed, Buttons.NONE
            self.sig_pointer.emit("release", self._pointer(event, pressed))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._edit_mode and event.button() == Qt.MouseButton.LeftButton:
            ev = self._pointer(event, Buttons.LEFT)
            self.sig_pointer.emit("double", PointerEvent(ev.x, ev.y, ev.buttons, ev.modifiers, ev.pressure, 2))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        # Keep the pen's pressure for the next synthesized mouse event; Qt then delivers the mouse event.
        self._pressure = float(event.pressure()) if event.pressure() > 0 else None
        event.ignore()

    def leaveEvent(self, event) -> None:  # noqa: N802, ANN001
        super().leaveEvent(event)
        self._update_brush_cursor(None)
        self.sig_cursor_moved.emit(-1, -1)

    def event(self, event) -> bool:  # noqa: ANN001
        # In edit mode Space belongs to the canvas (hold = pan, tap = next), not to a window shortcut.
        if (event.type() == event.Type.ShortcutOverride and self._edit_mode
                and isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Space):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and self._edit_mode:
            if not event.isAutoRepeat():
                self._space_down = True
                self._space_panned = False
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and self._space_down:
            if not event.isAutoRepeat():
                self._space_down = False
                if not self._space_panned:
                    self.sig_space_tapped.emit()
            event.accept()
            return
        super().keyReleaseEvent(event)
