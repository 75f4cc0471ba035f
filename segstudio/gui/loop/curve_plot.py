"""A small line plot painted with QPainter: live training curves without matplotlib in the GUI.

Series are frozen values; the widget keeps only the latest list and repaints. NaN points break a line (a missing
validation score is a gap, not a drop to zero); long series are thinned to about two points per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


@dataclass(frozen=True)
class Series:
    """One line: ``xs`` and ``ys`` of equal length (floats, NaN allowed in ``ys``); ``colour`` is RGB 0..255."""

    name: str
    colour: tuple[int, int, int]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    dashed: bool = False
    #: draw a dot on every point (epoch-level series have few points; a lone point is otherwise invisible)
    markers: bool = False


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000 or (0 < a < 0.01):
        return f"{v:.2g}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


class CurvePlot(QWidget):
    """``set_series`` replaces what is drawn. ``y_range`` fixes the vertical axis (e.g. 0..1 for Dice);
    otherwise it follows the data. ``empty_text`` is written across the plot while it has no finite point."""

    EMPTY_TEXT = "no data yet"

    MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 44, 10, 20, 22

    def __init__(self, title: str, *, x_label: str = "", y_range: tuple[float, float] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title, self.x_label, self.y_range = title, x_label, y_range
        self._series: tuple[Series, ...] = ()
        self.empty_text = self.EMPTY_TEXT
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 170)

    def series(self) -> tuple[Series, ...]:
        return self._series

    def set_series(self, series: Sequence[Series]) -> None:
        self._series = tuple(series)
        self.update()

    def clear(self) -> None:
        self.set_series(())

    def _bounds(self) -> tuple[float, float, float, float]:
        xs = [x for s in self._series for x in s.xs if math.isfinite(x)]
        ys = [y for s in self._series for y in s.ys if math.isfinite(y)]
        x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if x1 - x0 < 1e-12:
            x0, x1 = x0 - 0.5, x1 + 0.5
        y0, y1 = self.y_range if self.y_range is not None else _nice_range(min(ys, default=math.nan),
                                                                            max(ys, default=math.nan))
        return x0, x1, y0, y1

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        fg = pal.color(QPalette.ColorRole.Text)
        x0, x1, y0, y1 = self._bounds()
        ticks = [_fmt(y0 + (y1 - y0) * i / 4) for i in range(5)]
        # the left margin fits the widest tick label: "0.0185" must not be cut to ".0185"
        left = max(self.MARGIN_L, max(p.fontMetrics().horizontalAdvance(t) for t in ticks) + 8)
        plot = QRectF(left, self.MARGIN_T, max(1, self.width() - left - self.MARGIN_R),
                      max(1, self.height() - self.MARGIN_T - self.MARGIN_B))
        p.setPen(fg)
        p.drawText(QRectF(0, 2, self.width(), self.MARGIN_T - 2), Qt.AlignmentFlag.AlignHCenter, self.title)
        grid = QColor(fg)
        grid.setAlpha(50)
        for i in range(5):
            y = plot.bottom() - plot.height() * i / 4
            p.setPen(grid)
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.setPen(fg)
            p.drawText(QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       ticks[i])
        p.setPen(fg)
        p.drawRect(plot)
        bottom = QRectF(plot.left(), plot.bottom() + 2, plot.width(), self.MARGIN_B - 2)
        if self._series:
            p.drawText(bottom, Qt.AlignmentFlag.AlignLeft, _fmt(x0))
            p.drawText(bottom, Qt.AlignmentFlag.AlignRight, _fmt(x1))
        p.drawText(bottom, Qt.AlignmentFlag.AlignHCenter, self.x_label)
        if not any(math.isfinite(y) for s in self._series for y in s.ys):
            p.drawText(plot.adjusted(8, 4, -8, -4), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.empty_text)
            p.end()
            return

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                           plot.bottom() - (min(max(y, y0), y1) - y0) / (y1 - y0) * plot.height())

        p.setClipRect(plot.adjusted(-3, -3, 3, 3))
        stride_cap = max(1, int(plot.width() * 2))
        for s in self._series:
            pen = QPen(QColor(*s.colour), 1.6)
            if s.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            stride = max(1, len(s.xs) // stride_cap)
            path, open_ = QPainterPath(), False
            pts = list(zip(s.xs[::stride], s.ys[::stride], strict=True))
            if stride > 1 and s.xs:
                pts.append((s.xs[-1], s.ys[-1]))  # the newest point is always drawn
            for x, y in pts:
                if not (math.isfinite(x) and math.isfinite(y)):
                    open_ = False
                    continue
                q = to_px(x, y)
                if open_:
                    path.lineTo(q)
                else:
                    path.moveTo(q)
                    open_ = True
            p.drawPath(path)
            if s.markers:
                p.setBrush(QColor(*s.colour))
                for x, y in pts:
                    if math.isfinite(x) and math.isfinite(y):
                        p.drawEllipse(to_px(x, y), 2.5, 2.5)
                p.setBrush(Qt.BrushStyle.NoBrush)
        p.setClipping(False)
        # legend, top right inside the plot: the series with something drawn (a run without a hold-out has no
        # validation loss to name)
        fm = p.fontMetrics()
        ly = plot.top() + 4
        for s in self._series:
            if not any(math.isfinite(y) for y in s.ys):
                continue
            w = fm.horizontalAdvance(s.name)
            lx = plot.right() - w - 26
            p.setPen(QPen(QColor(*s.colour), 2, Qt.PenStyle.DashLine if s.dashed else Qt.PenStyle.SolidLine))
            p.drawLine(QPointF(lx, ly + fm.ascent() / 2 + 1), QPointF(lx + 16, ly + fm.ascent() / 2 + 1))
            p.setPen(fg)
            p.drawText(QPointF(lx + 20, ly + fm.ascent()), s.name)
            ly += fm.height()
        p.end()
