"""Painting tools as press → move → release state machines over neutral pointer events (DESIGN rule 3).

The canvas translates its mouse/tablet events into :class:`PointerEvent` (image pixel coordinates) and calls
``press``/``move``/``release``; tools never see Qt. Every method returns the box of pixels it changed (or None),
and the :class:`~segstudio.masks.label.LabelMask` also emits ``region_changed`` for each change.

Conventions every tool follows: the left button paints the selected class, the right button erases (semantic:
writes ``erase_value``; multi-label: clears the selected class's bit); the eraser tool inverts that. Locked classes
and "paint only inside class X" (:class:`ToolContext`) apply to every tool. In multi-label masks a tool touches
only the selected class's plane.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np

from segstudio.core.errors import UnknownKeyError
from segstudio.masks.flood import FILL_SCOPES, FillScope
from segstudio.masks.geometry import (
    BRUSH_SHAPES,
    BBox,
    BrushShape,
    polygon_footprint,
    rectangle_footprint,
    segment_footprint,
)
from segstudio.masks.guard import EditGuard
from segstudio.masks.label import LabelMask

log = logging.getLogger(__name__)

Point = tuple[float, float]


class Buttons(enum.IntFlag):
    NONE = 0
    LEFT = 1
    RIGHT = 2
    MIDDLE = 4


class Modifiers(enum.IntFlag):
    NONE = 0
    SHIFT = 1
    CTRL = 2
    ALT = 4
    META = 8


@dataclass(frozen=True)
class PointerEvent:
    """A pointer sample in image pixel coordinates (``x`` right, ``y`` down; pixel (i, j) spans
    ``[j, j+1) x [i, i+1)``). ``pressure`` in 0..1 from a tablet, None for a mouse; ``clicks`` 2 on a double click."""

    x: float
    y: float
    buttons: Buttons = Buttons.LEFT
    modifiers: Modifiers = Modifiers.NONE
    pressure: float | None = None
    clicks: int = 1

    @property
    def pos(self) -> Point:
        return (self.x, self.y)


@dataclass(frozen=True)
class ToolContext:
    """The tool settings the class/tool panels edit; tools read them at every event.

    ``class_id``: the selected class (semantic: the value painted; multi-label: the bit). ``size``: brush diameter
    in image pixels. ``brush``: "round" or "square". ``locked``: classes no tool may change. ``paint_inside``: only
    pixels of this class may change. ``erase_value``: what semantic erasing writes (background, or the ignore
    index). ``tolerance``: magic-wand intensity tolerance for the fill tool (None: plain label flood fill).
    ``fill_scope``: "value" (the clicked label value) or "plane" (multi-label: the selected plane's bit).
    ``use_pressure``: scale the brush by tablet pressure. ``close_distance``: a polygon click this close (image px)
    to the first vertex closes it.
    """

    class_id: int = 1
    size: float = 10.0
    brush: BrushShape = "round"
    locked: frozenset[int] = frozenset()
    paint_inside: int | None = None
    erase_value: int = 0
    tolerance: float | None = None
    fill_scope: FillScope = "value"
    connectivity: Literal[4, 8] = 4
    use_pressure: bool = False
    close_distance: float = 6.0

    def __post_init__(self) -> None:
        if self.brush not in BRUSH_SHAPES:
            raise ValueError(f"Unknown brush shape {self.brush!r}; valid: {', '.join(BRUSH_SHAPES)}")
        if self.fill_scope not in FILL_SCOPES:
            raise ValueError(f"Unknown fill scope {self.fill_scope!r}; valid: {', '.join(FILL_SCOPES)}")
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if not self.size > 0:
            raise ValueError(f"brush size must be positive, got {self.size}")
        if self.tolerance is not None and self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")

    @property
    def guard(self) -> EditGuard:
        return EditGuard(locked=frozenset(self.locked), paint_inside=self.paint_inside)

    def with_(self, **changes: object) -> ToolContext:
        return replace(self, **changes)  # type: ignore[arg-type]


class Tool:
    """Base of all tools: holds the mask, the settings and (for the magic wand) the image."""

    name: ClassVar[str] = ""
    #: the tool erases with the left button (and paints with the right one)
    erases: ClassVar[bool] = False

    def __init__(self, mask: LabelMask, context: ToolContext | None = None, *, image: np.ndarray | None = None):
        self.mask = mask
        self.context = context if context is not None else ToolContext()
        self.image = image
        self._erase = False

    @property
    def active(self) -> bool:
        """True between a press and the release that ends the gesture (polygon: until closed)."""
        return False

    def press(self, event: PointerEvent) -> BBox | None:
        return None

    def move(self, event: PointerEvent) -> BBox | None:
        return None

    def release(self, event: PointerEvent) -> BBox | None:
        return None

    def cancel(self) -> BBox | None:
        """Abort the gesture in progress (Escape); anything already painted by it is reverted."""
        return None

    def outline(self) -> tuple[Point, ...]:
        """Vertices of the shape being drawn (polygon, lasso, rectangle) for the canvas's rubber band."""
        return ()

    # helpers ----------------------------------------------------------------------------------------------
    def _erase_mode(self, event: PointerEvent) -> bool:
        return self.erases != bool(event.buttons & Buttons.RIGHT)

    def _paint_region(self, bbox: BBox, region: np.ndarray, *, erase: bool) -> BBox | None:
        ctx = self.context
        if erase and not self.mask.multilabel:
            class_id = -1  # the semantic eraser clears any (unlocked) class back to erase_value
        else:
            class_id = ctx.class_id
        return self.mask.paint(bbox, region, class_id=class_id, erase=erase, erase_value=ctx.erase_value,
                               guard=ctx.guard)


class BrushTool(Tool):
    """Freehand brush: each move stamps the brush swept from the previous sample, so fast strokes leave no gap.
    A press with Shift draws a straight line from the end of the previous stroke. One stroke = one undo step."""

    name = "brush"

    def __init__(self, mask: LabelMask, context: ToolContext | None = None, *, image: np.ndarray | None = None):
        super().__init__(mask, context, image=image)
        self._last: Point | None = None
        self._last_end: Point | None = None
        self._box: BBox | None = None

    @property
    def active(self) -> bool:
        return self._last is not None

    def _size(self, event: PointerEvent) -> float:
        s = self.context.size
        if self.context.use_pressure and event.pressure is not None:
            s *= min(max(event.pressure, 0.05), 1.0)
        return max(s, 1.0)

    def _stamp(self, p0: Point, p1: Point, event: PointerEvent) -> BBox | None:
        bbox, fp = segment_footprint(p0, p1, size=self._size(event), brush=self.context.brush,
                                     shape=self.mask.shape)
        if bbox.is_empty:
            return None
        changed = self._paint_region(bbox, fp, erase=self._erase)
        if changed is not None:
            self._box = changed.union(self._box)
        return changed

    def press(self, event: PointerEvent) -> BBox | None:
        if self.active:
            self.release(event)
        self._erase = self._erase_mode(event)
        self._box = None
        self.mask.begin_stroke()
        start = self._last_end if (event.modifiers & Modifiers.SHIFT and self._last_end is not None) else event.pos
        self._last = event.pos
        return self._stamp(start, event.pos, event)

    def move(self, event: PointerEvent) -> BBox | None:
        if self._last is None:
            return None  # hover: nothing to paint
        p0, self._last = self._last, event.pos
        return self._stamp(p0, event.pos, event)

    def release(self, event: PointerEvent) -> BBox | None:
        if self._last is None:
            return None
        if event.pos != self._last:
            self._stamp(self._last, event.pos, event)
        self._last = None
        self._last_end = event.pos
        self.mask.end_stroke()
        return self._box

    def cancel(self) -> BBox | None:
        if self._last is None:
            return None
        self._last = None
        return self.mask.cancel_stroke()


class EraserTool(BrushTool):
    """The brush with buttons swapped: left erases, right paints."""

    name = "eraser"
    erases = True


class _ShapeTool(Tool):
    """Shared by the tools that collect a shape and fill it once, at the end (one undo step)."""

    def __init__(self, mask: LabelMask, context: ToolContext | None = None, *, image: np.ndarray | None = None):
        super().__init__(mask, context, image=image)
        self._points: list[Point] = []
        self._hover: Point | None = None

    @property
    def active(self) -> bool:
        return bool(self._points)

    def cancel(self) -> BBox | None:
        self._points = []
        self._hover = None
        return None

    def _fill_polygon(self, points: list[Point]) -> BBox | None:
        self._points = []
        self._hover = None
        if not points:
            return None
        bbox, fp = polygon_footprint(points, shape=self.mask.shape)
        if bbox.is_empty:
            return None
        return self._paint_region(bbox, fp, erase=self._erase)


class PolygonTool(_ShapeTool):
    """Click vertices; a double click, a click near the first vertex, or :meth:`finish` (Enter) fills it."""

    name = "polygon"

    def press(self, event: PointerEvent) -> BBox | None:
        if not self._points:
            self._erase = self._erase_mode(event)
            self._points = [event.pos]
            return None
        first = self._points[0]
        near_first = math.dist(first, event.pos) <= self.context.close_distance and len(self._points) >= 3
        if near_first:
            return self.finish()
        if event.pos != self._points[-1]:
            self._points.append(event.pos)
        if event.clicks >= 2:
            return self.finish()
        return None

    def move(self, event: PointerEvent) -> BBox | None:
        self._hover = event.pos
        return None

    def finish(self) -> BBox | None:
        """Close and fill the polygon drawn so far (fewer than 3 vertices fill the line they make)."""
        return self._fill_polygon(list(self._points))

    def remove_last_vertex(self) -> None:
        """Backspace: drop the last vertex (the polygon is abandoned when none is left)."""
        if self._points:
            self._points.pop()

    def outline(self) -> tuple[Point, ...]:
        pts = list(self._points)
        if pts and self._hover is not None:
            pts.append(self._hover)
        return tuple(pts)


class LassoTool(_ShapeTool):
    """Freehand polygon: press, drag along the outline, release to fill."""

    name = "lasso"

    def press(self, event: PointerEvent) -> BBox | None:
        self._erase = self._erase_mode(event)
        self._points = [event.pos]
        return None

    def move(self, event: PointerEvent) -> BBox | None:
        # samples closer than half a pixel add vertices without changing the raster
        if self._points and math.dist(self._points[-1], event.pos) >= 0.5:
            self._points.append(event.pos)
        return None

    def release(self, event: PointerEvent) -> BBox | None:
        if not self._points:
            return None
        self.move(event)
        return self._fill_polygon(self._points)

    def outline(self) -> tuple[Point, ...]:
        return tuple(self._points)


class RectangleTool(_ShapeTool):
    """Press one corner, drag, release at the opposite corner to fill the rectangle."""

    name = "rectangle"

    def press(self, event: PointerEvent) -> BBox | None:
        self._erase = self._erase_mode(event)
        self._points = [event.pos, event.pos]
        return None

    def move(self, event: PointerEvent) -> BBox | None:
        if self._points:
            self._points[1] = event.pos
        return None

    def release(self, event: PointerEvent) -> BBox | None:
        if not self._points:
            return None
        p0 = self._points[0]
        self._points = []
        bbox, fp = rectangle_footprint(p0, event.pos, shape=self.mask.shape)
        if bbox.is_empty:
            return None
        return self._paint_region(bbox, fp, erase=self._erase)

    def outline(self) -> tuple[Point, ...]:
        if not self._points:
            return ()
        (xa, ya), (xb, yb) = self._points
        return ((xa, ya), (xb, ya), (xb, yb), (xa, yb))


class FillTool(Tool):
    """Flood fill on press: the contiguous region of the clicked label (with ``context.tolerance`` and an image:
    also within that intensity range of the clicked pixel — the magic wand)."""

    name = "fill"

    def press(self, event: PointerEvent) -> BBox | None:
        ctx = self.context
        x, y = int(math.floor(event.x)), int(math.floor(event.y))
        use_image = self.image if ctx.tolerance is not None else None
        self._erase = self._erase_mode(event)
        class_id = -1 if (self._erase and not self.mask.multilabel) else ctx.class_id
        return self.mask.flood_fill(
            x, y, class_id=class_id, erase=self._erase, erase_value=ctx.erase_value, guard=ctx.guard,
            scope=ctx.fill_scope, connectivity=ctx.connectivity, image=use_image, tolerance=ctx.tolerance,
        )


TOOLS: dict[str, type[Tool]] = {
    t.name: t for t in (BrushTool, EraserTool, PolygonTool, LassoTool, RectangleTool, FillTool)
}


def create_tool(
    name: str, mask: LabelMask, context: ToolContext | None = None, *, image: np.ndarray | None = None
) -> Tool:
    """The tool registered as ``name`` (see :data:`TOOLS`); an unknown name lists the valid ones."""
    try:
        cls = TOOLS[name]
    except KeyError:
        raise UnknownKeyError("tool", name, tuple(TOOLS)) from None
    return cls(mask, context, image=image)
