"""Mask → RGBA overlay, by region, so the canvas refreshes only the dirty rectangle.

Output is straight (not premultiplied) RGBA ``uint8 (h, w, 4)`` — ``QImage.Format_RGBA8888`` takes it as is.
Colours come from lookup tables built once per style: semantic masks index one ``(2**bits, 4)`` table;
multi-label masks split the ``uint64`` into bytes and sum eight 256-entry tables, so a pixel in several classes
shows the mean colour of its visible classes (overlaps stay visible instead of one class hiding another).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from segstudio.core.types import RGB, ClassSchema
from segstudio.masks.geometry import BBox

OverlayMode = Literal["fill", "contour", "fill_contour"]
OVERLAY_MODES: tuple[str, ...] = ("fill", "contour", "fill_contour")


@dataclass(frozen=True)
class OverlayStyle:
    """How a mask is drawn over its image.

    ``mode``: "fill" (area at ``opacity``), "contour" (class borders only, at ``contour_opacity``) or
    "fill_contour" (both). ``hidden``: class ids not drawn. ``colours``: ``(class id, (r, g, b))`` pairs that
    override the schema's colours.
    """

    mode: OverlayMode = "fill"
    opacity: float = 0.5
    contour_opacity: float = 1.0
    hidden: frozenset[int] = frozenset()
    colours: tuple[tuple[int, RGB], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in OVERLAY_MODES:
            raise ValueError(f"Unknown overlay mode {self.mode!r}; valid: {', '.join(OVERLAY_MODES)}")
        for name in ("opacity", "contour_opacity"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {v}")

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
        visible = [c.id for c in self._schema if c.id not in st.hidden]
        if self._schema.multilabel:
            # per byte k: table[k, v] = (sum r, sum g, sum b, count) over the visible classes whose bit is in v
            self._byte_luts = np.zeros((8, 256, 4), np.uint16)
            bits = np.arange(256)
            for cid in visible:
                k, b = divmod(cid, 8)
                has = ((bits >> b) & 1).astype(bool)
                self._byte_luts[k, has, :3] += np.array(self._colour(cid), np.uint16)
                self._byte_luts[k, has, 3] += 1
            self._used_bytes = sorted({cid // 8 for cid in visible})
            vis = 0
            for cid in visible:
                vis |= 1 << cid
            self._visible_bits = np.uint64(vis)
        else:
            size = 1 << 16 if self._schema.mask_dtype() == np.uint16 else 256
            size = max(size, self._schema.max_id + 1)
            self._rgb_lut = np.zeros((size, 3), np.uint8)
            self._vis_lut = np.zeros(size, np.bool_)
            for cid in visible:
                if 0 <= cid < size:
                    self._rgb_lut[cid] = self._colour(cid)
                    self._vis_lut[cid] = True
        self._fill_alpha = np.uint8(round(st.opacity * 255)) if st.mode != "contour" else np.uint8(0)
        self._edge_alpha = np.uint8(round(st.contour_opacity * 255))

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
        out[..., :3] = self._rgb_lut[crop]
        vis = self._vis_lut[crop]
        mode = self._style.mode
        alpha = out[..., 3]
        if mode == "fill":
            np.multiply(vis, self._fill_alpha, out=alpha, casting="unsafe")
            return
        ctx = self._neighbour_context(array, box)
        c = ctx[1:-1, 1:-1]
        edge = (c != ctx[:-2, 1:-1]) | (c != ctx[2:, 1:-1]) | (c != ctx[1:-1, :-2]) | (c != ctx[1:-1, 2:])
        edge &= vis
        np.multiply(vis, self._fill_alpha, out=alpha, casting="unsafe")
        alpha[edge] = self._edge_alpha

    def _sum_colours(self, v: np.ndarray) -> np.ndarray:
        """``uint16 (h, w, 4)`` sums (r, g, b, count) over the visible classes set in bitmask ``v``."""
        acc = np.zeros((*v.shape, 4), np.uint16)
        for k in self._used_bytes:
            byte = ((v >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8)
            acc += self._byte_luts[k][byte]
        return acc

    def _render_multilabel(self, array: np.ndarray, box: BBox, out: np.ndarray) -> None:
        mode = self._style.mode
        v = array[box.slices] & self._visible_bits
        if mode == "fill":
            colour_src = v
            edge = None
        else:
            ctx = self._neighbour_context(array, box) & self._visible_bits
            c = ctx[1:-1, 1:-1]
            inner = ctx[:-2, 1:-1] & ctx[2:, 1:-1] & ctx[1:-1, :-2] & ctx[1:-1, 2:]
            edge_bits = c & ~inner  # bits whose plane ends at this pixel
            edge = edge_bits != 0
            # contour pixels take the colour of the classes whose border passes there
            colour_src = np.where(edge, edge_bits, v) if mode == "fill_contour" else edge_bits
        acc = self._sum_colours(colour_src)
        count = acc[..., 3]
        nz = np.maximum(count, 1)
        for ch in range(3):
            out[..., ch] = acc[..., ch] // nz
        alpha = out[..., 3]
        np.multiply(count != 0, self._fill_alpha, out=alpha, casting="unsafe")
        if edge is not None:
            alpha[edge] = self._edge_alpha
