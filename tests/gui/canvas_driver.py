"""Drive the real canvas with synthetic mouse events at image coordinates."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segstudio.gui.screen.canvas import ImageCanvas


def view_pos(canvas: ImageCanvas, x: float, y: float) -> QPointF:
    """Viewport position of image point (x, y) (sub-pixel exact)."""
    return canvas.viewportTransform().map(QPointF(x, y))


def _send(canvas: ImageCanvas, kind: QMouseEvent.Type, pos: QPointF, button: Qt.MouseButton,
          buttons: Qt.MouseButton) -> None:
    vp = canvas.viewport()
    ev = QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def drag(canvas: ImageCanvas, points: Sequence[tuple[float, float]], *,
         button: Qt.MouseButton = Qt.MouseButton.LeftButton) -> None:
    """Press at the first image point, move through the others with the button held, release at the last."""
    first = view_pos(canvas, *points[0])
    _send(canvas, QMouseEvent.Type.MouseButtonPress, first, button, button)
    for p in points[1:]:
        _send(canvas, QMouseEvent.Type.MouseMove, view_pos(canvas, *p), Qt.MouseButton.NoButton, button)
    _send(canvas, QMouseEvent.Type.MouseButtonRelease, view_pos(canvas, *points[-1]), button,
          Qt.MouseButton.NoButton)


def hover(canvas: ImageCanvas, x: float, y: float) -> None:
    _send(canvas, QMouseEvent.Type.MouseMove, view_pos(canvas, x + 0.5, y + 0.5), Qt.MouseButton.NoButton,
          Qt.MouseButton.NoButton)
