"""The editor's assisted tools: the accept-lasso, GrabCut and predict-here boxes, the live-wire, and the proposals
they make, shown on :data:`~segstudio.gui.screen.proposals.PROPOSAL_LAYER` until accepted (one undo step) or
rejected. A mixin of :class:`~segstudio.gui.screen.editor.EditorController`, which owns the state it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import SignalInstance

from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.edit_target import EditTarget
from segstudio.gui.screen.proposals import (
    GRABCUT,
    PREDICT_HERE_CLICK_PX,
    PROPOSAL_LAYER,
    Proposal,
    proposal_rgba,
)
from segstudio.masks import BBox, LabelMask, PointerEvent, ToolContext

if TYPE_CHECKING:
    from segstudio.masks.livewire import LiveWire


class AssistedEditing:
    """The assisted tools' pointer handling and proposals, on the editing session's state."""

    canvas: ImageCanvas
    mask: LabelMask | None
    target: EditTarget | None
    context: ToolContext
    tool_name: str
    proposal: Proposal | None
    grabcut_iterations: int
    predict_here_hook: Callable[[np.ndarray, tuple[int, int, int, int], Callable[[np.ndarray], None]], bool] | None
    sig_proposal_changed: SignalInstance
    _lasso: list[tuple[float, float]]
    _box_start: tuple[float, float] | None
    _livewire: LiveWire | None

    # the editor's own: whether an edit is refused (a read-only workspace), and copying the prediction in
    _refuse: Callable[[], bool]
    accept_prediction: Callable[..., BBox | None]

    @property
    def _livewire_active(self) -> bool:
        return self._livewire is not None and bool(self._livewire.anchors)

    def _accept_lasso_pointer(self, phase: str, ev: PointerEvent) -> None:
        if phase == "press":
            self._lasso = [ev.pos]
        elif phase == "move" and self._lasso and ev.buttons:
            self._lasso.append(ev.pos)
        elif phase == "release" and self._lasso:
            self._lasso.append(ev.pos)
            points, self._lasso = self._lasso, []
            self.canvas.set_tool_outline(())
            self.accept_prediction(polygon=points)
            return
        self.canvas.set_tool_outline(tuple(self._lasso), closed=True)

    def _box_pointer(self, phase: str, ev: PointerEvent) -> None:
        """Drag a box around an object: GrabCut's segmentation of it (or the model's answer, predict here) becomes
        a proposal of the selected class. Predict here also takes a plain click: a box around it."""
        if phase == "press":
            self._box_start = ev.pos
        elif phase in ("move", "release") and self._box_start is not None:
            (x0, y0), (x1, y1) = self._box_start, ev.pos
            corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            if phase == "move":
                self.canvas.set_tool_outline(corners, closed=True)
                return
            self._box_start = None
            self.canvas.set_tool_outline(())
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            if self.tool_name == GRABCUT:
                self.propose_grabcut(box)
                return
            if box[2] - box[0] < 8 and box[3] - box[1] < 8:  # a click: the neighbourhood around it
                r = PREDICT_HERE_CLICK_PX / 2
                box = (x1 - r, y1 - r, x1 + r, y1 + r)
            self.predict_here(box)

    def _pixel_box(self, box: tuple[float, float, float, float], refusal: str) -> tuple[int, int, int, int] | None:
        """``box`` (x0, y0, x1, y1) rounded to pixels inside the mask; under 8 px either way, None, and ``refusal``
        tells the user what to drag instead."""
        assert self.mask is not None
        h, w = self.mask.shape
        x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
        x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
        if x1 - x0 < 8 or y1 - y0 < 8:
            self.sig_proposal_changed.emit(refusal)
            return None
        return x0, y0, x1, y1

    def predict_here(self, box: tuple[float, float, float, float]) -> bool:
        """Ask the current model about ``box`` (x0, y0, x1, y1) in the background; its answer for the selected
        class arrives as a proposal (if the same image is still shown)."""
        if self.mask is None or self.target is None or self.predict_here_hook is None:
            return False
        pixels = self._pixel_box(box, "Predict here: drag a box (or click) over the image")
        if pixels is None:
            return False
        x0, y0, x1, y1 = pixels
        sid, cid, schema = self.target.sample_id, self.context.class_id, self.target.schema

        def arrived(mask: np.ndarray) -> None:
            if self.target is None or self.target.sample_id != sid or self.mask is None or mask.shape != self.mask.shape:
                return  # another image by now
            from segstudio.metrics.compare import class_plane

            region = np.zeros(mask.shape, bool)
            region[y0:y1, x0:x1] = True
            self.propose(class_plane(mask, schema=schema, class_id=cid) & region, region=region, class_id=cid,
                         tool="Predict here")

        return self.predict_here_hook(self.target.image, (y0, x0, y1, x1), arrived)

    def _livewire_pointer(self, phase: str, ev: PointerEvent) -> None:
        """Click anchors; between clicks the path follows the image's edges to the pointer; double-click (or
        Enter) closes the outline back to the first anchor and proposes what it encloses."""
        from segstudio.masks.livewire import LiveWire

        if self.target is None or self.mask is None:
            return
        h, w = self.mask.shape
        x, y = min(w - 1, max(0, int(ev.pos[0]))), min(h - 1, max(0, int(ev.pos[1])))
        if phase == "press":
            if self._livewire is None:
                self._livewire = LiveWire(self.target.image)
            self._livewire.set_anchor((x, y))
        elif phase == "double":
            self._close_livewire()
            return
        elif phase != "move" or not self._livewire_active:
            return
        assert self._livewire is not None
        committed = self._livewire.path
        live = self._livewire.path_to((x, y)) if phase == "move" else np.empty((0, 2), np.int32)
        pts = np.concatenate([committed, live]) if len(live) else committed
        self.canvas.set_tool_outline(tuple((float(px), float(py)) for px, py in pts))

    def _close_livewire(self) -> Proposal | None:
        from segstudio.masks.assist import polygon_mask

        wire, self._livewire = self._livewire, None
        self.canvas.set_tool_outline(())
        if wire is None or self.mask is None or len(wire.anchors) < 3:
            self.sig_proposal_changed.emit("Live-wire: click at least three anchors around the object, then "
                                           "double-click or press Enter")
            return None
        plane = polygon_mask(wire.close(), self.mask.shape)
        return self.propose(plane, region=plane.copy(), tool="Live-wire")

    # proposals (assisted tools) ---------------------------------------------------------------------------------
    def propose(self, plane: np.ndarray, *, region: np.ndarray | None = None, class_id: int | None = None,
                tool: str = "") -> Proposal | None:
        """Show ``plane`` (bool, the image's shape) as a proposal for ``class_id`` (default: the selected class)
        inside ``region`` (default: everywhere). The label does not change until :meth:`accept_proposal`."""
        if self.mask is None or self.target is None:
            return None
        cid = self.context.class_id if class_id is None else class_id
        plane = np.asarray(plane, bool)
        region = np.ones(plane.shape, bool) if region is None else np.asarray(region, bool)
        if plane.shape != self.mask.shape or region.shape != self.mask.shape:
            raise ValueError(f"a proposal of {plane.shape} for a mask of {self.mask.shape}")
        self.proposal = Proposal(plane=plane, region=region, class_id=cid, tool=tool)
        colour = self.target.schema.by_id(cid).colour
        self.canvas.set_layer(PROPOSAL_LAYER, proposal_rgba(plane & region, colour), z=4.0)
        name = self.target.schema.by_id(cid).name
        n = int(np.count_nonzero(plane & region))
        self.sig_proposal_changed.emit(f"{tool or 'Proposal'}: {n:,} px of {name} proposed — Enter accepts, "
                                       "Esc rejects, a new box tries again")
        return self.proposal

    def propose_grabcut(self, box: tuple[float, float, float, float]) -> Proposal | None:
        """GrabCut inside ``box`` (x0, y0, x1, y1 in image pixels) as a proposal of the selected class."""
        from segstudio.masks.assist import grabcut_box

        if self.mask is None or self.target is None:
            return None
        pixels = self._pixel_box(box, "GrabCut: drag a box around the object (at least 8 px each way)")
        if pixels is None:
            return None
        x0, y0, x1, y1 = pixels
        bb = BBox(y0, x0, y1, x1)
        try:
            plane = grabcut_box(self.target.image, bb, iterations=self.grabcut_iterations)
        except ValueError as exc:
            self.sig_proposal_changed.emit(f"GrabCut: {exc}")
            return None
        region = np.zeros(self.mask.shape, bool)
        region[bb.slices] = True
        return self.propose(plane, region=region, tool="GrabCut")

    def accept_proposal(self) -> BBox | None:
        """The proposal into the label, as one undo step: inside its region the class's pixels become the
        proposal's (pixels of the class it leaves out take the erase value). Locked classes and "paint only
        inside" hold, as for every tool."""
        prop, m = self.proposal, self.mask
        self.reject_proposal()
        if prop is None or m is None or self._refuse():
            return None
        box = BBox.of_nonzero(prop.region)
        if box is None:
            return None
        old = m.array[box.slices]
        plane, region = prop.plane[box.slices], prop.region[box.slices]
        if m.multilabel:
            bit = np.uint64(1 << prop.class_id)
            new = np.where(region, np.where(plane, old | bit, old & ~bit), old)
        else:
            c = old.dtype.type(prop.class_id)
            new = old.copy()
            new[region & (old == c) & ~plane] = old.dtype.type(self.context.erase_value)
            new[region & plane] = c
        return m.assign(box, new, guard=self.context.guard)

    def reject_proposal(self) -> None:
        if self.proposal is not None:
            self.proposal = None
            self.canvas.set_layer(PROPOSAL_LAYER, None, z=4.0)
            self.sig_proposal_changed.emit("")
