"""Mask editing core (ring 1): label masks, painting tools, mask operations, patch undo, overlay rendering.

Typical use by the canvas::

    mask = LabelMask(array, schema)                       # semantic uint8/uint16 or multi-label uint64
    renderer = OverlayRenderer(schema)                     # RGBA overlay, by region
    mask.events.region_changed.connect(on_region_changed)  # redraw renderer.dirty_box(bbox) only
    tool = create_tool("brush", mask, ToolContext(class_id=1, size=30))
    tool.press(PointerEvent(x, y)); tool.move(...); tool.release(...)   # one undo step
    mask.undo(); mask.redo()

See docs/editing.md.
"""

from segstudio.masks.flood import FloodFiller, FloodRegion
from segstudio.masks.geometry import BBox, polygon_footprint, rectangle_footprint, segment_footprint
from segstudio.masks.guard import NO_GUARD, EditGuard
from segstudio.masks.history import DEFAULT_HISTORY_BUDGET, History, Patch, Step
from segstudio.masks.label import LabelMask, LabelMaskEvents
from segstudio.masks.ops import (
    copy_prediction,
    dilate,
    erode,
    fill_holes,
    keep_largest,
    remove_islands,
    replace_class,
)
from segstudio.masks.render import OverlayRenderer, OverlayStyle
from segstudio.masks.tools import (
    TOOLS,
    BrushTool,
    Buttons,
    EraserTool,
    FillTool,
    LassoTool,
    Modifiers,
    PointerEvent,
    PolygonTool,
    RectangleTool,
    Tool,
    ToolContext,
    create_tool,
)

__all__ = [
    "BBox", "BrushTool", "Buttons", "DEFAULT_HISTORY_BUDGET", "EditGuard", "EraserTool", "FillTool",
    "FloodFiller", "FloodRegion", "History", "LabelMask", "LabelMaskEvents", "LassoTool", "Modifiers", "NO_GUARD",
    "OverlayRenderer", "OverlayStyle", "Patch", "Step", "PointerEvent", "PolygonTool", "RectangleTool", "TOOLS", "Tool",
    "ToolContext", "copy_prediction", "create_tool", "dilate", "erode", "fill_holes", "keep_largest",
    "polygon_footprint", "rectangle_footprint", "remove_islands", "replace_class", "segment_footprint",
]
