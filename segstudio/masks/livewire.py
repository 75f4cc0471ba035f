"""Live-wire (intelligent scissors) for the assisted tools: click anchors around an object and the path between them
follows the image's edges (ring 1, OpenCV/numpy; the conventions of :mod:`segstudio.masks.assist`: points are
``(x, y)``, the image is compared as it is displayed, ``window`` its window/level)."""

from __future__ import annotations

import cv2
import numpy as np

from segstudio.masks.assist import Point, Window, check_point, check_radius, to_display
from segstudio.masks.geometry import BBox


class LiveWire:
    """Intelligent scissors (OpenCV's ``IntelligentScissorsMB``) over one image: click anchors, the path follows
    the strongest edges between them.

    ``set_anchor(p)`` commits the path from the current anchor to ``p`` and makes ``p`` the new anchor (the first
    call only starts); ``path_to(p)`` is the live preview from the current anchor; ``close()`` joins the last anchor
    back to the first and returns the polygon; ``polygon_mask(polygon, shape)`` rasterises it.

    The edge features of images up to ``max_side`` px on each side are computed once, here (~50 ms at 0.5 MP);
    larger images get them per anchor on a ``max_side``-square window around it, and a target outside that window
    is reached by the path to the window's nearest point and a straight line on. ``canny`` = (low, high)
    thresholds of the Canny edge feature (display units), ``gradient_max`` caps the gradient magnitude (display
    units) so that weak edges still count.
    """

    def __init__(
        self,
        image: np.ndarray,
        *,
        window: Window | None = None,
        canny: tuple[float, float] = (32.0, 100.0),
        gradient_max: float = 200.0,
        max_side: int = 1024,
    ) -> None:
        self._disp = to_display(image, window=window)
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64 px, got {max_side}")
        lo, hi = canny
        if not (0 <= lo <= hi):
            raise ValueError(f"canny thresholds need 0 <= low <= high, got {canny!r}")
        check_radius(gradient_max, "gradient_max")
        self._canny = (float(lo), float(hi))
        self._gradient_max = float(gradient_max)
        self._max_side = int(max_side)
        self.shape: tuple[int, int] = (int(self._disp.shape[0]), int(self._disp.shape[1]))
        self._whole = self.shape[0] <= max_side and self.shape[1] <= max_side
        self._tool: cv2.segmentation.IntelligentScissorsMB | None = None
        self._origin = (0, 0)  # (x, y) of the tool's window in the image
        self._anchors: list[tuple[int, int]] = []
        self._segments: list[np.ndarray] = []
        if self._whole:
            self._tool = self._make_tool(BBox.full(self.shape))

    def _make_tool(self, win: BBox) -> cv2.segmentation.IntelligentScissorsMB:
        tool = cv2.segmentation.IntelligentScissorsMB()
        tool.setEdgeFeatureCannyParameters(*self._canny)
        tool.setGradientMagnitudeMaxLimit(self._gradient_max)
        tool.applyImage(np.ascontiguousarray(self._disp[win.slices]))
        self._origin = (win.x0, win.y0)
        return tool

    @property
    def anchors(self) -> list[tuple[int, int]]:
        """The anchors clicked so far, ``(x, y)``."""
        return list(self._anchors)

    @property
    def path(self) -> np.ndarray:
        """The committed path, ``int32 (N, 2)`` ``(x, y)`` from the first anchor to the current one."""
        if not self._anchors:
            return np.zeros((0, 2), np.int32)
        return np.concatenate([np.array([self._anchors[0]], np.int32), *self._segments])

    def set_anchor(self, point: Point) -> np.ndarray:
        """Commit the path to ``point`` (``(x, y)`` in image pixels) and build the map from it; returns the
        committed segment (``int32 (N, 2)``, without the previous anchor; empty for the first anchor)."""
        x, y = check_point(point, self.shape)
        segment = np.zeros((0, 2), np.int32)
        if self._anchors:
            segment = self.path_to((x, y))[1:]
            self._segments.append(segment)
        self._anchors.append((x, y))
        self._build_map((x, y))
        return segment

    def undo_anchor(self) -> None:
        """Drop the last anchor and its segment; the previous anchor becomes current again."""
        if not self._anchors:
            return
        self._anchors.pop()
        if self._segments:
            self._segments.pop()
        if self._anchors:
            self._build_map(self._anchors[-1])

    def _build_map(self, anchor: tuple[int, int]) -> None:
        if not self._whole:
            half = self._max_side // 2
            win = BBox(anchor[1] - half, anchor[0] - half, anchor[1] + half, anchor[0] + half).clip(self.shape)
            self._tool = self._make_tool(win)
        assert self._tool is not None
        self._tool.buildMap((anchor[0] - self._origin[0], anchor[1] - self._origin[1]))

    def path_to(self, point: Point) -> np.ndarray:
        """The edge-following path from the current anchor to ``point``: ``int32 (N, 2)`` ``(x, y)``, first row the
        anchor, last row ``point``. Cheap (a lookup in the map built by :meth:`set_anchor`)."""
        if not self._anchors or self._tool is None:
            raise ValueError("set_anchor() first: the path starts at the current anchor")
        x, y = check_point(point, self.shape)
        ox, oy = self._origin
        h, w = self._tool_shape()
        tx, ty = min(max(x - ox, 0), w - 1), min(max(y - oy, 0), h - 1)
        contour = self._tool.getContour((int(tx), int(ty)))
        path = np.asarray(contour, np.int32).reshape(-1, 2) + np.array([ox, oy], np.int32)
        anchor = np.array(self._anchors[-1], np.int32)
        if len(path) == 0:
            path = anchor[None]
        if not np.array_equal(path[0], anchor):
            path = path[::-1]
        if (tx + ox, ty + oy) != (x, y):
            path = np.concatenate([path, _line(tuple(path[-1]), (x, y))[1:]])
        return np.ascontiguousarray(path)

    def _tool_shape(self) -> tuple[int, int]:
        if self._whole:
            return self.shape
        half = self._max_side // 2
        a = self._anchors[-1]
        win = BBox(a[1] - half, a[0] - half, a[1] + half, a[0] + half).clip(self.shape)
        return win.shape

    def close(self) -> np.ndarray:
        """Join the current anchor back to the first along the edges and return the closed polygon: ``int32
        (N, 2)`` ``(x, y)``, the first point not repeated at the end. Needs at least two anchors."""
        if len(self._anchors) < 2:
            raise ValueError("close() needs at least two anchors")
        closing = self.path_to(self._anchors[0])[1:]
        poly = np.concatenate([self.path, closing])
        if len(poly) > 1 and np.array_equal(poly[0], poly[-1]):
            poly = poly[:-1]
        return poly


def _line(p0: tuple[int, int], p1: tuple[int, int]) -> np.ndarray:
    n = max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) + 1
    xs = np.rint(np.linspace(p0[0], p1[0], n)).astype(np.int32)
    ys = np.rint(np.linspace(p0[1], p1[1], n)).astype(np.int32)
    return np.stack([xs, ys], axis=1)
