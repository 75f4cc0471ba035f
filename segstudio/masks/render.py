"""Mask → RGBA overlay, by region, so the canvas refreshes only the dirty rectangle.

Output is straight (not premultiplied) RGBA ``uint8 (h, w, 4)`` — ``QImage.Format_RGBA8888`` takes it as is.
Colours come from lookup tables built once per style: semantic masks index one ``(2**bits, 4)`` table;
multi-label masks split the ``uint64`` into bytes and sum eight 256-entry tables, so a pixel in several classes
shows the mean colour of its visible classes (overlaps stay visible instead of one class hiding another).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from segstudio.core.types import RGB, ClassSchema
from segstudio.masks.geometry import BBox

# the packed uint32 RGBA and uint16-lane views below assume little-endian memory (x86-64, arm64)
if sys.byteorder != "little":  # pragma: no cover
    raise ImportError("segstudio.masks.render needs a little-endian machine")

OverlayMode = Literal["fill", "contour", "fill_contour"]
OVERLAY_MODES: tuple[str, ...] = ("fill", "contour", "fill_contour")


@dataclass(frozen=True)
class OverlayStyle:
    """How a mask is drawn over its image.

    ``mode``: "fill" (area at ``opacity``), "contour" (class borders only, at ``contour_opacity``) or
    "fill_contour" (both). ``hidden``: class ids not drawn. ``colours``: ``(class id, (r, g, b))`` pairs that
    override the schema's colours. ``opacities``: ``(class id, opacity)`` pairs that override ``opacity`` for a
    class's fill (a multi-label pixel in several classes takes the mean of theirs).
    """

    mode: OverlayMode = "fill"
    opacity: float = 0.5
    contour_opacity: float = 1.0
    hidden: frozenset[int] = frozenset()
    colours: tuple[tuple[int, RGB], ...] = ()
    opacities: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in OVERLAY_MODES:
            raise ValueError(f"Unknown overlay mode {self.mode!r}; valid: {', '.join(OVERLAY_MODES)}")
        checks = [("opacity", self.opacity), ("contour_opacity", self.contour_opacity)]
        checks += [(f"opacity of class {c}", v) for c, v in self.opacities]
        for name, v in checks:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {v}")

    def fill_alpha(self, class_id: int) -> int:
        """The fill alpha (0..255) of ``class_id``: 0 in contour-only mode."""
        if self.mode == "contour":
            return 0
        for cid, v in self.opacities:
            if cid == class_id:
                return round(v * 255)
        return round(self.opacity * 255)

    @staticmethod
    def default_for(schema: ClassSchema, **changes: object) -> OverlayStyle:
        """The usual style: semantic masks hide class 0 (background), multi-label masks show every class."""
        hidden = frozenset() if schema.multilabel or not schema.has_id(0) else frozenset({0})
        return replace(OverlayStyle(hidden=hidden), **changes)  # type: ignore[arg-type]


class OverlayRenderer:
    """Renders regions of masks of one ``schema`` in one :class:`OverlayStyle` (tables built on style change)."""

    def __init__(self, schema: ClassSchema, style: OverlayStyle | None = None) -> None:
        self._schema = schema
        self._style = style if style is not None else OverlayStyle.default_for(schema)
        self._build()

    @property
    def style(self) -> OverlayStyle:
        return self._style

    @style.setter
    def style(self, style: OverlayStyle) -> None:
        self._style = style
        self._build()

    def _colour(self, class_id: int) -> RGB:
        for cid, col in self._style.colours:
            if cid == class_id:
                return col
        return self._schema.by_id(class_id).colour

    def _build(self) -> None:
        st = self._style
        self._visible = [c.id for c in self._schema if c.id not in st.hidden]
        self._edge_alpha = np.uint8(round(st.contour_opacity * 255))
        self._sem_luts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self._schema.multilabel:
            # per 16-bit lane j of the bitmask: table[j, v] packs (count, sum r, sum g, sum b) as four uint16
            # fields of a uint64, so adding the tables of all lanes adds the fields independently (64 * 255 < 2**16)
            self._lane_luts = np.zeros((4, 1 << 16), np.uint64)
            values = np.arange(1 << 16, dtype=np.uint64)
            for cid in self._visible:
                j, b = divmod(cid, 16)
                r, g, bl = self._colour(cid)
                has = (values >> np.uint64(b)) & np.uint64(1)
                self._lane_luts[j] += has * np.uint64(1 | (r << 16) | (g << 32) | (bl << 48))
            self._used_lanes = sorted({cid // 16 for cid in self._visible})
            vis = 0
            for cid in self._visible:
                vis |= 1 << cid
            self._visible_bits = np.uint64(vis)
            # mean = sum * ceil(2**16 / count) >> 16 (fixed point: no integer division per pixel)
            counts = np.arange(1, 66, dtype=np.float64)
            self._recip = np.concatenate([[0], np.ceil(65536.0 / counts)]).astype(np.uint32)
            # per lane, the summed fill alphas of every lane value (mean alpha = sum / count)
            self._lane_alpha = np.zeros((4, 1 << 16), np.uint32)
            for cid in self._visible:
                j, b = divmod(cid, 16)
                has = ((values >> np.uint64(b)) & np.uint64(1)).astype(np.uint32)
                self._lane_alpha[j] += has * np.uint32(st.fill_alpha(cid))
            # per lane, the final colour of every lane value (pixels whose classes all sit in that lane)
            self._lane_rgba = np.zeros((4, 1 << 16), np.uint32)
            for j in self._used_lanes:
                self._lane_rgba[j] = self._pack_mean(self._lane_luts[j], self._lane_alpha[j])

    def _semantic_luts(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """``(rgba, visible)`` tables for ``dtype`` values: ``uint32`` packed RGBA (fill alpha) and ``bool``."""
        size = 1 << (8 * dtype.itemsize)
        if size not in self._sem_luts:
            rgba = np.zeros((size, 4), np.uint8)
            vis = np.zeros(size, np.bool_)
            for cid in self._visible:
                if 0 <= cid < size:
                    rgba[cid, :3] = self._colour(cid)
                    rgba[cid, 3] = self._style.fill_alpha(cid)
                    vis[cid] = True
            self._sem_luts[size] = (rgba.view(np.uint32).reshape(size), vis)
        return self._sem_luts[size]

    # public -----------------------------------------------------------------------------------------------
    def render(self, array: np.ndarray, bbox: BBox | None = None) -> np.ndarray:
        """RGBA ``uint8 (h, w, 4)`` of ``array[bbox]`` (whole array when None); ``array`` is the full ``(H, W)``
        mask so contours at the box edge see their neighbours."""
        box = BBox.full(array.shape) if bbox is None else bbox.clip(array.shape)
        out = np.empty((*box.shape, 4), np.uint8)
        if not box.is_empty:
            self._render(array, box, out)
        return out

    def render_into(self, array: np.ndarray, target: np.ndarray, bbox: BBox | None = None) -> BBox:
        """Redraw ``bbox`` of ``target`` (RGBA ``uint8 (H, W, 4)``, same size as ``array``) in place.

        Returns the box actually drawn (clipped). Contour mode widens nothing: callers pass the edit's box
        padded by 1 px (:meth:`dirty_box`) so borders next to the edit update too.
        """
        box = BBox.full(array.shape) if bbox is None else bbox.clip(array.shape)
        if not box.is_empty:
            self._render(array, box, target[box.slices])
        return box

    def dirty_box(self, bbox: BBox, shape: tuple[int, ...]) -> BBox:
        """The box to redraw after ``bbox`` changed: 1 px wider when contours are drawn (neighbours' borders)."""
        return bbox.pad(1).clip(shape) if self._style.mode != "fill" else bbox.clip(shape)

    # internals --------------------------------------------------------------------------------------------
    def _render(self, array: np.ndarray, box: BBox, out: np.ndarray) -> None:
        if self._schema.multilabel:
            self._render_multilabel(array, box, out)
        else:
            self._render_semantic(array, box, out)

    def _neighbour_context(self, array: np.ndarray, box: BBox) -> np.ndarray:
        """``array`` over ``box`` padded by 1 px, edge-replicated at the image border."""
        outer = box.pad(1).clip(array.shape)
        ctx = array[outer.slices]
        pads = ((box.y0 - outer.y0 == 0, box.y1 == outer.y1), (box.x0 - outer.x0 == 0, box.x1 == outer.x1))
        if any(p for ax in pads for p in ax):
            ctx = np.pad(ctx, [(int(a), int(b)) for a, b in pads], mode="edge")
        return ctx

    def _render_semantic(self, array: np.ndarray, box: BBox, out: np.ndarray) -> None:
        crop = array[box.slices]
        rgba, vis = self._semantic_luts(crop.dtype)
        # one packed-uint32 lookup per pixel writes all four channels
        np.take(rgba, crop, out=out.view(np.uint32)[..., 0])
        if self._style.mode == "fill":
            return
        ctx = self._neighbour_context(array, box)
        c = ctx[1:-1, 1:-1]
        edge = (c != ctx[:-2, 1:-1]) | (c != ctx[2:, 1:-1]) | (c != ctx[1:-1, :-2]) | (c != ctx[1:-1, 2:])
        edge &= vis[crop]
        out[..., 3][edge] = self._edge_alpha

    def _render_multilabel(self, array: np.ndarray, box: BBox, out: np.ndarray) -> None:
        mode = self._style.mode
        v = array[box.slices] & self._visible_bits
        edge = None
        if mode != "fill":
            ctx = self._neighbour_context(array, box) & self._visible_bits
            c = ctx[1:-1, 1:-1]
            inner = ctx[:-2, 1:-1] & ctx[2:, 1:-1] & ctx[1:-1, :-2] & ctx[1:-1, 2:]
            edge_bits = c & ~inner  # bits whose plane ends at this pixel
            edge = edge_bits != 0
            # contour pixels take the colour of the classes whose border passes there
            v = np.where(edge, edge_bits, v) if mode == "fill_contour" else edge_bits
        out32 = out.view(np.uint32)[..., 0]
        out32[...] = 0
        if self._used_lanes and v.size:
            self._colour_bitmasks(np.ascontiguousarray(v), out32)
        if edge is not None:
            out[..., 3][edge] = self._edge_alpha

    def _colour_bitmasks(self, v: np.ndarray, out32: np.ndarray) -> None:
        """Write packed RGBA (mean colour of the visible classes, fill alpha) for bitmasks ``v`` into ``out32``.

        A pixel whose classes all sit in one 16-bit lane takes its colour from that lane's RGBA table in one
        lookup; only pixels with classes in two or more lanes (overlaps across lanes, usually few) go through the
        summed-fields path.
        """
        quad = v.view(np.uint16).reshape(*v.shape, 4)
        # cv2.split de-interleaves the lanes in one pass; a gather from a strided index is several times slower
        lanes: list[np.ndarray] = (
            [np.asarray(p) for p in cv2.split(quad)]
            if v.size >= 4096
            else [np.ascontiguousarray(quad[..., j]) for j in range(4)]
        )
        first, *rest = self._used_lanes
        np.take(self._lane_rgba[first], lanes[first], out=out32)
        if not rest:
            return
        seen = lanes[first] != 0
        mixed = np.zeros(v.shape, np.bool_)
        for j in rest:
            here = lanes[j] != 0
            mixed |= here & seen
            only = here & ~seen
            out32[only] = self._lane_rgba[j][lanes[j][only]]
            seen |= here
        if mixed.any():
            n = int(np.count_nonzero(mixed))
            acc = np.zeros(n, np.uint64)
            alpha = np.zeros(n, np.uint32)
            for j in self._used_lanes:
                vals = lanes[j][mixed]
                acc += self._lane_luts[j][vals]
                alpha += self._lane_alpha[j][vals]
            out32[mixed] = self._pack_mean(acc, alpha)

    def _pack_mean(self, acc: np.ndarray, alpha_sum: np.ndarray) -> np.ndarray:
        """``uint32`` packed RGBA from ``uint64`` summed fields (count, r, g, b) and summed fill alphas: the mean
        colour and the mean alpha of the classes counted."""
        count = (acc & np.uint64(0xFFFF)).astype(np.uint32)
        rec = np.take(self._recip, count).astype(np.uint64)
        packed = np.zeros(acc.shape, np.uint32)
        for shift, field in ((0, 16), (8, 32), (16, 48)):
            mean = np.minimum((((acc >> np.uint64(field)) & np.uint64(0xFFFF)) * rec) >> np.uint64(16), 255)
            packed |= mean.astype(np.uint32) << np.uint32(shift)
        a = np.minimum((alpha_sum.astype(np.uint64) * rec) >> np.uint64(16), 255).astype(np.uint32)
        packed |= a << np.uint32(24)
        return packed
