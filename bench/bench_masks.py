"""Mask editing speed and memory (issue 4; budgets from DESIGN §5).

Scenes are synthetic but shaped like the real cases: a 2048² hand X-ray with 29 overlapping bone classes in a
uint64 multi-label mask, and an 8192² semantic uint8 mask with a few large regions.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from bench.common import Figure, median, percentile
from segstudio.core.types import ClassSchema
from segstudio.masks import (
    FillTool,
    LabelMask,
    OverlayRenderer,
    PointerEvent,
    PolygonTool,
    ToolContext,
    create_tool,
)
from segstudio.masks.geometry import BBox

PREFIX = "masks"

ML_CLASSES = 29


def _ml_scene(size: int = 2048, seed: int = 0) -> LabelMask:
    """29 overlapping elongated 'bones' in a uint64 bitmask."""
    rng = np.random.default_rng(seed)
    schema = ClassSchema.from_names([f"bone{i}" for i in range(ML_CLASSES)], multilabel=True)
    arr = np.zeros((size, size), np.uint64)
    for c in range(ML_CLASSES):
        plane = np.zeros((size, size), np.uint8)
        cx, cy = rng.integers(size // 8, size * 7 // 8, 2)
        axes = (int(rng.integers(size // 20, size // 6)), int(rng.integers(size // 40, size // 14)))
        cv2.ellipse(plane, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        arr |= plane.astype(np.uint64) << np.uint64(c)
    return LabelMask(arr, schema, copy=False)


def _semantic_scene(size: int = 8192) -> LabelMask:
    schema = ClassSchema.from_names(["background", "organ", "lesion", "other"])
    arr = np.zeros((size, size), np.uint8)
    s = size / 8192
    cv2.rectangle(arr, (int(300 * s), int(300 * s)), (int(2500 * s), int(7800 * s)), 3, -1)
    cv2.circle(arr, (int(5200 * s), int(4000 * s)), int(900 * s), 2, -1)
    return LabelMask(arr, schema, copy=False)


def _wavy_path(n: int, *, size: int, step: float, seed: int = 1) -> list[tuple[float, float]]:
    """A stroke of ``n`` samples ``step`` px apart that meanders across the image without retracing itself."""
    rng = np.random.default_rng(seed)
    x, y = size * 0.1, size * 0.5
    heading = 0.0
    out = []
    for i in range(n):
        heading += float(rng.normal(0, 0.08)) + 0.02 * math.sin(i / 40)
        x = min(max(x + step * math.cos(heading), 20.0), size - 20.0)
        y = min(max(y + step * math.sin(heading), 20.0), size - 20.0)
        if x in (20.0, size - 20.0) or y in (20.0, size - 20.0):
            heading += math.pi / 2
        out.append((x + 0.37, y + 0.61))
    return out


def _brush_moves(mask: LabelMask, *, class_id: int, n: int = 1500) -> list[float]:
    """Per-move wall time (ms): tool.move plus the RGBA refresh of the box it changed."""
    renderer = OverlayRenderer(mask.schema)
    rgba = renderer.render(mask.array)
    pending: list[BBox] = []
    mask.events.region_changed.connect(pending.append)  # what the canvas does: collect, redraw those boxes
    tool = create_tool("brush", mask, ToolContext(class_id=class_id, size=30))
    path = _wavy_path(n + 1, size=mask.shape[0], step=4.0)
    times = []
    tool.press(PointerEvent(*path[0]))
    pending.clear()
    for p in path[1:]:
        t0 = time.perf_counter()
        tool.move(PointerEvent(*p))
        for box in pending:
            renderer.render_into(mask.array, rgba, renderer.dirty_box(box, mask.shape))
        pending.clear()
        times.append((time.perf_counter() - t0) * 1000.0)
    tool.release(PointerEvent(*path[-1]))
    mask.events.region_changed.disconnect(pending.append)
    return times


def bench_brush_move() -> list[Figure]:
    ml = _brush_moves(_ml_scene(), class_id=7)
    sem = _brush_moves(_semantic_scene(), class_id=1)
    return [
        Figure("masks.brush_move_2048_ml29.median_ms", median(ml), "ms", 4.0, "lower"),
        Figure("masks.brush_move_2048_ml29.p99_ms", percentile(ml, 99), "ms", 16.0, "lower"),
        Figure("masks.brush_move_8192.median_ms", median(sem), "ms", 4.0, "lower"),
        Figure("masks.brush_move_8192.p99_ms", percentile(sem, 99), "ms", 16.0, "lower"),
    ]


def _big_polygon(size: int, *, area_fraction: float, n: int = 96, seed: int = 2) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    r = math.sqrt(area_fraction * size * size / math.pi)
    c = size / 2
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        rr = r * float(rng.uniform(0.97, 1.03))
        pts.append((c + rr * math.cos(a) + 0.3, c + rr * math.sin(a) + 0.7))
    return pts


def _changed_fraction(mask: LabelMask) -> float:
    """Share of the image the last undo step changed."""
    step = mask.history._undo[-1]  # noqa: SLF001 - a benchmark may look inside
    return sum(p.count for p in step.patches) / (mask.shape[0] * mask.shape[1])


def bench_polygon_fill() -> list[Figure]:
    mask = _semantic_scene()
    pts = _big_polygon(mask.shape[0], area_fraction=0.40)
    tool = PolygonTool(mask, ToolContext(class_id=1))

    def fill() -> None:  # untimed warm-up that also checks the scene: ~40% of the image changes
        for p in pts:
            tool.press(PointerEvent(*p))
        assert tool.finish() is not None
        assert 0.35 < _changed_fraction(mask) < 0.45, _changed_fraction(mask)
        mask.undo()

    def timed_fill() -> float:
        for p in pts:
            tool.press(PointerEvent(*p))
        t0 = time.perf_counter()
        tool.finish()
        dt = (time.perf_counter() - t0) * 1000.0
        mask.undo()
        return dt

    fill()
    times = [timed_fill() for _ in range(5)]
    return [Figure("masks.polygon_fill_8192_ms", median(times), "ms", 150.0, "lower")]


def bench_flood_fill() -> list[Figure]:
    mask = _semantic_scene()
    size = mask.shape[0]
    # a closed organ outline, filled by one click inside: ~40% of the image is the background it encloses
    # (the outline holds 56% of the image, of which the scene's other classes take the rest)
    arr = np.array(mask.array)
    pts = np.array(_big_polygon(size, area_fraction=0.56), np.float64)
    cv2.polylines(arr, [np.rint(pts).astype(np.int32).reshape(-1, 1, 2)], True, 1, thickness=9)
    mask.set_array(arr, copy=False)
    tool = FillTool(mask, ToolContext(class_id=1))
    seed = PointerEvent(size / 2 + 3.5, size / 2 + 0.5)

    def fill() -> None:
        assert tool.press(seed) is not None
        tool.release(seed)

    times = []
    for i in range(6):
        t0 = time.perf_counter()
        fill()
        dt = (time.perf_counter() - t0) * 1000.0
        if i == 0:  # untimed warm-up (the flood buffer); checks the scene: ~40% of the image changes
            assert 0.35 < _changed_fraction(mask) < 0.45, _changed_fraction(mask)
        else:
            times.append(dt)
        mask.undo()
    return [Figure("masks.flood_fill_8192_ms", median(times), "ms", 150.0, "lower")]


def bench_undo() -> list[Figure]:
    mask = _ml_scene()
    tool = create_tool("brush", mask, ToolContext(class_id=3, size=30))
    path = _wavy_path(1000, size=mask.shape[0], step=4.0, seed=5)
    tool.press(PointerEvent(*path[0]))
    for p in path[1:-1]:
        tool.move(PointerEvent(*p))
    tool.release(PointerEvent(*path[-1]))
    mask.undo()  # warm-up pair, untimed
    mask.redo()
    undo_only, redo_only = [], []
    for _ in range(9):
        t0 = time.perf_counter()
        mask.undo()
        t1 = time.perf_counter()
        mask.redo()
        t2 = time.perf_counter()
        undo_only.append((t1 - t0) * 1000.0)
        redo_only.append((t2 - t1) * 1000.0)
    return [Figure("masks.undo_1000_event_stroke_ms", max(median(undo_only), median(redo_only)), "ms", 50.0,
                   "lower")]


def _history_mb(mask: LabelMask, *, class_ids: list[int], seed: int) -> float:
    rng = np.random.default_rng(seed)
    size = mask.shape[0]
    i = 0
    while mask.history.undo_count < 1000:  # a stroke over pixels already in its class records no step
        i += 1
        ctx = ToolContext(class_id=class_ids[i % len(class_ids)], size=30)
        tool = create_tool("brush", mask, ctx)
        x, y = rng.uniform(40, size - 40, 2)
        a = float(rng.uniform(0, 2 * math.pi))
        tool.press(PointerEvent(x, y))
        for k in range(1, 11):  # a short stroke: 10 moves, 5 px apart
            tool.move(PointerEvent(x + 5 * k * math.cos(a), y + 5 * k * math.sin(a)))
        tool.release(PointerEvent(x + 50 * math.cos(a), y + 50 * math.sin(a)))
    assert mask.history.undo_count == 1000, mask.history.undo_count
    return mask.history.nbytes / 2**20


def bench_history() -> list[Figure]:
    ml = _history_mb(_ml_scene(), class_ids=[3, 7, 11], seed=3)
    # semantic strokes over mixed classes store per-pixel deltas: the heavier case
    sem = _history_mb(_semantic_scene(2048), class_ids=[1, 2], seed=4)
    return [Figure("masks.history_1000_strokes_mb", max(ml, sem), "MB", 64.0, "lower")]
