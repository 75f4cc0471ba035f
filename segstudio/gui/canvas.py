"""The image canvas: a QGraphicsView with an image layer and mask overlay layers.

It only displays and translates input: zoom (wheel, around the cursor), pan (drag in pan mode, Space+drag or
middle-drag always), fit and 1:1, and the image pixel under the cursor as ``sig_cursor_moved``. It holds no domain
state beyond what it shows.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from segstudio.gui.qimage import array_to_qimage

ZOOM_STEP = 1.25
MIN_SCALE = 0.02
MAX_SCALE = 64.0


class ImageCanvas(QGraphicsView):
    sig_cursor_moved = Signal(int, int)  # image pixel (x, y); (-1, -1) outside the image
    sig_zoom_changed = Signal(float)  # view scale, 1.0 = one image pixel per screen pixel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setBackgroundBrush(QColor(30, 30, 30))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)

        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._image_item.setZValue(0)
        self._scene.addItem(self._image_item)
        self._layers: dict[str, QGraphicsPixmapItem] = {}
        self._image_size: tuple[int, int] = (0, 0)  # (w, h)
        self._space_down = False
        self._fit_on_resize = True

    # content ----------------------------------------------------------------------------------------------------
    def set_image(self, display: np.ndarray) -> None:
        """Show ``display`` (uint8 gray, RGB or RGBA). Keeps the view unless the image size changes."""
        qimg = array_to_qimage(display)
        self._image_item.setPixmap(QPixmap.fromImage(qimg))
        size = (qimg.width(), qimg.height())
        if size != self._image_size:
            self._image_size = size
            self._scene.setSceneRect(QRectF(0, 0, size[0], size[1]))
            self.fit()

    def set_layer(self, name: str, rgba: np.ndarray | None, *, z: float = 1.0) -> None:
        """Create or replace the overlay layer ``name`` from an ``(H, W, 4)`` uint8 RGBA array (None clears it)."""
        item = self._layers.get(name)
        if item is None:
            item = QGraphicsPixmapItem()
            item.setTransformationMode(Qt.TransformationMode.FastTransformation)
            item.setZValue(z)
            self._scene.addItem(item)
            self._layers[name] = item
        item.setPixmap(QPixmap() if rgba is None else QPixmap.fromImage(array_to_qimage(rgba)))

    def update_layer_region(self, name: str, rgba: np.ndarray, *, x: int, y: int) -> None:
        """Repaint only the rectangle at (x, y) of layer ``name`` with ``rgba`` (dirty-rect update)."""
        item = self._layers[name]
        pm = item.pixmap()
        painter = QPainter(pm)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(QPointF(x, y), array_to_qimage(rgba))
        painter.end()
        item.setPixmap(pm)

    def set_layer_visible(self, name: str, visible: bool) -> None:
        if name in self._layers:
            self._layers[name].setVisible(visible)

    def set_layer_opacity(self, name: str, opacity: float) -> None:
        if name in self._layers:
            self._layers[name].setOpacity(max(0.0, min(1.0, opacity)))

    def layer_opacity(self, name: str) -> float:
        return self._layers[name].opacity() if name in self._layers else 0.0

    def image_size(self) -> tuple[int, int]:
        return self._image_size

    # view -------------------------------------------------------------------------------------------------------
    def scale_factor(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        if self._image_size == (0, 0):
            return
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_on_resize = True
        self.sig_zoom_changed.emit(self.scale_factor())

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

    def image_pos(self, view_pos: QPointF) -> tuple[int, int]:
        """Image pixel under a viewport position, or (-1, -1) outside the image."""
        p = self.mapToScene(view_pos.toPoint())
        x, y = math.floor(p.x()), math.floor(p.y())
        w, h = self._image_size
        return (x, y) if 0 <= x < w and 0 <= y < h else (-1, -1)

    # events -----------------------------------------------------------------------------------------------------
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

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        super().mouseMoveEvent(event)
        x, y = self.image_pos(event.position())
        self.sig_cursor_moved.emit(x, y)

    def leaveEvent(self, event) -> None:  # noqa: N802, ANN001
        super().leaveEvent(event)
        self.sig_cursor_moved.emit(-1, -1)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton:
            # Middle-drag pans in every mode: replay it as a left press for ScrollHandDrag.
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            fake = QMouseEvent(
                event.type(), event.position(), event.globalPosition(), Qt.MouseButton.LeftButton,
                Qt.MouseButton.LeftButton, event.modifiers(),
            )
            super().mousePressEvent(fake)
            return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton:
            fake = QMouseEvent(
                event.type(), event.position(), event.globalPosition(), Qt.MouseButton.LeftButton,
                Qt.MouseButton.NoButton, event.modifiers(),
            )
            super().mouseReleaseEvent(fake)
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            event.accept()
            return
        super().keyReleaseEvent(event)

    def render_to_image(self) -> QImage:
        """What the viewport shows now, as an image (tests compare pixels with it)."""
        return self.viewport().grab().toImage()
