"""A scene item that draws a numpy array (gray, RGB or RGBA uint8) and repaints only what changed.

The item wraps the array's memory in a QImage (no copy) and paints just the exposed rectangle, so a brush stroke
that rewrites a 40x40 region of a 2048² overlay costs a 40x40 repaint, not a full-image pixmap conversion.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from segstudio.gui.common.qimage import array_to_qimage


class ArrayLayerItem(QGraphicsItem):
    def __init__(self, *, z: float = 0.0, smooth: bool = False) -> None:
        super().__init__()
        self.setZValue(z)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._array: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._smooth = smooth

    # content ----------------------------------------------------------------------------------------------------
    def set_array(self, array: np.ndarray | None) -> None:
        """Show ``array`` (kept by reference: later in-place writes show after :meth:`refresh`)."""
        self.prepareGeometryChange()
        if array is None:
            self._array, self._qimage = None, None
        else:
            self._array = np.ascontiguousarray(array)
            self._qimage = array_to_qimage(self._array)
        self.update()

    @property
    def array(self) -> np.ndarray | None:
        """The buffer being shown; write into it, then call :meth:`refresh` with the region."""
        return self._array

    def refresh(self, *, x: int, y: int, w: int, h: int) -> None:
        """Repaint the image-pixel rectangle (x, y, w, h) after its buffer region changed."""
        self.update(QRectF(x, y, w, h))

    def write_region(self, region: np.ndarray, *, x: int, y: int) -> None:
        """Copy ``region`` into the buffer at (x, y) and repaint just that rectangle."""
        if self._array is None:
            return
        h, w = region.shape[:2]
        self._array[y : y + h, x : x + w] = region
        self.refresh(x=x, y=y, w=w, h=h)

    # QGraphicsItem ----------------------------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802
        if self._array is None:
            return QRectF()
        h, w = self._array.shape[:2]
        return QRectF(0, 0, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._qimage is None:
            return
        r = option.exposedRect.intersected(self.boundingRect())  # type: ignore[attr-defined]
        if r.isEmpty():
            return
        # whole pixels only: a fractional source rect makes Qt resample and blur the edges of the dirty region
        src = r.toAlignedRect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
        painter.drawImage(QRectF(src), self._qimage, QRectF(src))


def pixel_grid_lines(rect: QRectF) -> tuple[list[float], list[float]]:
    """x and y positions of pixel boundaries inside ``rect`` (scene units = image pixels)."""
    x0, x1 = int(np.floor(rect.left())), int(np.ceil(rect.right()))
    y0, y1 = int(np.floor(rect.top())), int(np.ceil(rect.bottom()))
    return [float(x) for x in range(x0, x1 + 1)], [float(y) for y in range(y0, y1 + 1)]


__all__ = ["ArrayLayerItem", "Qt", "pixel_grid_lines"]
