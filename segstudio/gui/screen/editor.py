"""The editing session of one sample: the label mask, the active tool, the overlays it feeds, saving and the
recovery journal. Widgets talk to it; it talks to the canvas only through layer buffers and dirty rectangles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.edit_target import (
    EditTarget,
    colour_errors,
    pixel_counts,
)
from segstudio.gui.screen.editor_assist import AssistedEditing
from segstudio.gui.screen.proposals import (
    GRABCUT,
    LIVEWIRE,
    PREDICT_HERE,
    SAM,
    Proposal,
)
from segstudio.masks import (
    BBox,
    LabelMask,
    OverlayRenderer,
    OverlayStyle,
    PointerEvent,
    Tool,
    ToolContext,
    copy_prediction,
    create_tool,
    polygon_footprint,
)
from segstudio.metrics.compare import error_map
from segstudio.workspace import JournalWriter, MaskSource, MaskVersion, Workspace

if TYPE_CHECKING:
    from segstudio.masks.livewire import LiveWire

log = logging.getLogger(__name__)

GT_LAYER, PRED_LAYER, ERROR_LAYER = "gt", "prediction", "error"

#: Pseudo-tool that draws a lasso and accepts the prediction inside it.
ACCEPT_LASSO = "accept-lasso"

class EditorController(AssistedEditing, QObject):
    sig_dirty_changed = Signal(bool)
    sig_history_changed = Signal()
    sig_mask_replaced = Signal()  # a new sample (or a revert) replaced the whole mask
    sig_mask_edited = Signal(object)  # BBox of pixels that changed
    sig_saved = Signal(object)  # MaskVersion
    sig_refused = Signal(str)  # an edit refused (a read-only workspace): the message to show
    sig_journal_changed = Signal(bool)  # whether every unsaved edit is in the recovery journal
    sig_proposal_changed = Signal(str)  # "" when none, else what is proposed and how to accept or reject it

    def __init__(self, canvas: ImageCanvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.workspace: Workspace | None = None
        self.target: EditTarget | None = None
        self.mask: LabelMask | None = None
        self.context = ToolContext(class_id=1, size=20.0)
        self.tool_name = "brush"
        self._tool: Tool | None = None
        self._lasso: list[tuple[float, float]] = []
        self._box_start: tuple[float, float] | None = None
        self._livewire: LiveWire | None = None
        #: runs the model on a box in the background: ``(image, (y0, x0, y1, x1), on_result) -> started``; the
        #: window sets it (``InferenceController.predict_here``)
        self.predict_here_hook: Callable[[np.ndarray, tuple[int, int, int, int], Callable[[np.ndarray], None]],
                                         bool] | None = None
        #: the click-to-segment tool's pointer handler (``gui.screen.sam_tool.SamToolController.on_pointer``)
        self.sam_pointer_hook: Callable[[str, PointerEvent], None] | None = None
        #: what an assisted tool offers, shown on :data:`PROPOSAL_LAYER` until accepted or rejected
        self.proposal: Proposal | None = None
        #: the assisted tools' settings (the Tool Options panel sets them)
        self._wand_image: np.ndarray | None = None
        self.grabcut_iterations = 2
        self.refine_radius = 8
        self.smooth_radius = 3
        self._style = OverlayStyle(opacity=1.0)
        self._renderer: OverlayRenderer | None = None
        self._pred_renderer: OverlayRenderer | None = None
        self._gt_rgba: np.ndarray | None = None
        self._err_rgba: np.ndarray | None = None
        self._pred_rgba: np.ndarray | None = None
        self._error_class: int | None = None
        self._journal: JournalWriter | None = None
        self._journal_box: BBox | None = None
        #: every unsaved edit is in the recovery journal (False after an append failed, e.g. on a full disk,
        #: until the next save): what the status bar and a failed save tell the user
        self.journal_ok = True
        self._loaded_serial = 0
        self.author = ""
        canvas.sig_pointer.connect(self._on_canvas_pointer)

    # loading ----------------------------------------------------------------------------------------------------
    def set_workspace(self, workspace: Workspace | None) -> None:
        self.workspace = workspace

    @property
    def read_only(self) -> bool:
        """Edits are refused: the workspace is open read-only."""
        return self.workspace is not None and self.workspace.read_only

    def _refuse(self) -> bool:
        """Tell why an edit is refused (once per gesture); True when it is."""
        if not self.read_only:
            return False
        assert self.workspace is not None
        self.sig_refused.emit(f"This workspace is open read-only ({self.workspace.read_only_reason}): edits "
                              "cannot be saved, so none are made.")
        return True

    def _set_journal_ok(self, ok: bool) -> None:
        if ok != self.journal_ok:
            self.journal_ok = ok
            self.sig_journal_changed.emit(ok)

    def load(self, target: EditTarget, *, recovered: np.ndarray | None = None) -> None:
        """Edit ``target``; the previous sample must have been saved (or discarded) by the caller.

        ``recovered``: unsaved work restored from the recovery journal, applied on top of ``target.base`` as one
        undoable (and unsaved) step.
        """
        self.close_journal()
        self.target = target
        schema = target.schema
        if self._renderer is None or self._renderer_schema() != schema:
            self._style = OverlayStyle.default_for(schema, opacity=1.0, mode=self._style.mode)
        self._renderer = OverlayRenderer(schema, self._style)
        self._pred_renderer = OverlayRenderer(schema, self._style)
        self.mask = LabelMask(target.base, schema)
        self._loaded_serial = self.mask.history.top_serial
        self.mask.events.region_changed.connect(self._on_mask_region_changed)
        self.mask.events.dirty.connect(self.sig_dirty_changed.emit)
        self.mask.events.history_changed.connect(self._on_mask_history_changed)
        self._tool = None
        self._lasso = []
        self.reject_proposal()
        self.canvas.set_tool_outline(())
        self._render_all()
        self.sig_mask_replaced.emit()
        self._set_journal_ok(True)
        if recovered is not None:
            self.replace_mask(recovered)
            try:
                journal = self._open_journal()
                if journal is not None:
                    # a snapshot makes the new journal restorable on its own, should this session die too
                    journal.append_snapshot(self.mask.array)
            except SegstudioError as exc:
                log.error("cannot journal the recovered mask: %s", exc)
                self._set_journal_ok(False)
        self.sig_history_changed.emit()

    def _renderer_schema(self) -> ClassSchema | None:
        return None if self.target is None else self.target.schema

    def clear(self) -> None:
        self.close_journal()
        self.reject_proposal()
        self.target, self.mask, self._tool = None, None, None
        for name in (GT_LAYER, PRED_LAYER, ERROR_LAYER):
            self.canvas.set_layer(name, None)

    # rendering --------------------------------------------------------------------------------------------------
    def set_overlay_style(self, *, mode: str | None = None, hidden: frozenset[int] | None = None) -> None:
        changes: dict[str, object] = {}
        if mode is not None:
            changes["mode"] = mode
        if hidden is not None:
            changes["hidden"] = hidden
        from dataclasses import replace

        self._style = replace(self._style, **changes)  # type: ignore[arg-type]
        if self.target is not None:
            self._renderer = OverlayRenderer(self.target.schema, self._style)
            self._pred_renderer = OverlayRenderer(self.target.schema, self._style)
            self._render_all()

    @property
    def overlay_style(self) -> OverlayStyle:
        return self._style

    @property
    def error_class(self) -> int | None:
        return self._error_class

    def prediction_rgba(self) -> np.ndarray | None:
        """The prediction overlay as drawn (rendered on first use; a split view's second pane shares it)."""
        t = self.target
        if self._pred_rgba is None and t is not None and t.prediction is not None and self._pred_renderer is not None:
            self._pred_rgba = self._pred_renderer.render(t.prediction)
            self.canvas.set_layer(PRED_LAYER, self._pred_rgba, z=1.0)
        return self._pred_rgba

    def set_prediction(self, prediction: np.ndarray | None) -> None:
        """A new prediction of the sample being edited arrived: redraw the prediction layer and the error map; the
        mask, its history and unsaved edits stay as they are."""
        from dataclasses import replace

        if self.target is None:
            return
        self.target = replace(self.target, prediction=prediction, layers=None)
        self._pred_rgba = None
        self.canvas.set_layer(PRED_LAYER, None, z=1.0)
        if self.canvas.layer(PRED_LAYER).isVisible():
            self.prediction_rgba()
        self._render_error(None)

    def before_rgba(self) -> np.ndarray | None:
        """The mask as it was when the sample was opened (the "before" of a before/after view)."""
        if self.target is None or self._renderer is None:
            return None
        return self._renderer.render(self.target.base)

    def class_pixel_counts(self) -> dict[int, int]:
        """Pixels per class in the mask being edited (drawn in advance with the layers when unchanged)."""
        if self.mask is None or self.target is None:
            return {}
        pre = self.target.layers
        if pre is not None and not self.mask.dirty and self.mask.history.top_serial == self._loaded_serial:
            return dict(pre.counts)
        return pixel_counts(self.mask.array, self.target.schema)

    def set_error_class(self, class_id: int | None) -> None:
        """Error map of one class (one-vs-rest), or of all classes at once (None)."""
        self._error_class = class_id
        self._render_error(None)

    def _render_all(self) -> None:
        t, m = self.target, self.mask
        if t is None or m is None or self._renderer is None or self._pred_renderer is None:
            return
        pre = t.layers
        usable = (pre is not None and pre.style == self._style and pre.error_class == self._error_class
                  and not m.dirty and pre.gt_rgba.shape[:2] == m.shape)
        self._gt_rgba = pre.gt_rgba if usable and pre is not None else self._renderer.render(m.array)
        self.canvas.set_layer(GT_LAYER, self._gt_rgba, z=2.0)
        # the prediction layer is drawn when first shown (hidden by default; see prediction_rgba)
        self._pred_rgba = None
        self.canvas.set_layer(PRED_LAYER, None, z=1.0)
        if self.canvas.layer(PRED_LAYER).isVisible():
            self.prediction_rgba()
        if usable and pre is not None and pre.err_rgba is not None:
            self._err_rgba = pre.err_rgba
            self.canvas.set_layer(ERROR_LAYER, self._err_rgba, z=3.0)
        else:
            self._render_error(None)

    def _render_error(self, box: BBox | None) -> None:
        t, m = self.target, self.mask
        if t is None or m is None:
            return
        if t.prediction is None:
            self._err_rgba = None
            self.canvas.set_layer(ERROR_LAYER, None, z=3.0)
            return
        if box is None or self._err_rgba is None:
            codes = error_map(m.array, t.prediction, schema=t.schema, class_id=self._error_class)
            self._err_rgba = colour_errors(codes)
            self.canvas.set_layer(ERROR_LAYER, self._err_rgba, z=3.0)
            return
        codes = error_map(m.array[box.slices], t.prediction[box.slices], schema=t.schema, class_id=self._error_class)
        self.canvas.update_layer_region(ERROR_LAYER, colour_errors(codes), x=box.x0, y=box.y0)

    def _on_mask_region_changed(self, bbox: BBox) -> None:
        m, r = self.mask, self._renderer
        if m is None or r is None or self._gt_rgba is None:
            return
        box = r.dirty_box(bbox, m.shape)
        if box.is_empty:
            return
        r.render_into(m.array, self._gt_rgba, box)
        self.canvas.layer(GT_LAYER).refresh(x=box.x0, y=box.y0, w=box.width, h=box.height)
        self._render_error(bbox.clip(m.shape))
        self._journal_box = bbox if self._journal_box is None else self._journal_box.union(bbox)
        self.sig_mask_edited.emit(bbox)

    def _on_mask_history_changed(self) -> None:
        # a stroke, an op, an undo or a redo finished: journal the pixels it touched (fsync'd, so kill -9 keeps it)
        self._flush_journal()
        self.sig_history_changed.emit()

    def _open_journal(self) -> JournalWriter | None:
        """The recovery journal of this sample, created at its first edit (opening a sample writes nothing)."""
        if (self._journal is None and self.workspace is not None and not self.workspace.read_only
                and self.target is not None and self.mask is not None):
            self._journal = self.workspace.journal.open(
                self.target.sample_id, base_version=self.target.base_version, shape=self.mask.shape,
                dtype=self.mask.dtype,
            )
        return self._journal

    def _flush_journal(self) -> None:
        box, self._journal_box = self._journal_box, None
        if box is None or self.mask is None:
            return
        try:
            journal = self._open_journal()
            if journal is None:
                return
            box = box.clip(self.mask.shape)
            if box.is_empty:
                return
            journal.append_patch(top=box.y0, left=box.x0, values=np.array(self.mask.array[box.slices]))
        except (SegstudioError, OSError) as exc:
            # The edit is in memory only: the status bar says so, and a later save (or snapshot) covers it.
            log.error("cannot append to the recovery journal: %s", exc)
            self._set_journal_ok(False)

    # tools ------------------------------------------------------------------------------------------------------
    def set_tool(self, name: str) -> None:
        self.cancel_gesture()
        self._box_start = None
        self._livewire = None
        self.tool_name = name
        self._tool = None

    def set_context(self, context: ToolContext) -> None:
        if context.tolerance != self.context.tolerance and self._tool is not None and not self._tool.active:
            self._tool = None  # the fill reads the shades on screen (magic wand) or the label (plain fill)
        self.context = context
        if self._tool is not None:
            self._tool.context = context

    def _current_tool(self) -> Tool | None:
        if self.mask is None or self.target is None or self.tool_name in (ACCEPT_LASSO, GRABCUT, LIVEWIRE,
                                                                          PREDICT_HERE, SAM):
            return None
        # the magic wand compares shades as they are on screen (the window/level applies): a new display, a new tool
        shown = self.canvas.display_array() if self.tool_name == "fill" and self.context.tolerance is not None else None
        if shown is not None and shown.shape[:2] != self.mask.shape:
            shown = None
        if self._tool is None or self._tool.mask is not self.mask or (shown is not None and shown is not self._wand_image
                                                                     and not self._tool.active):
            self._wand_image = shown
            self._tool = create_tool(self.tool_name, self.mask, self.context,
                                     image=shown if shown is not None else self.target.image)
        self._tool.context = self.context
        return self._tool

    @property
    def gesture_active(self) -> bool:
        """A stroke or shape is in progress (autosave waits for it to end)."""
        return bool(self._lasso) or self._livewire_active or (self._tool is not None and self._tool.active)

    def cancel_gesture(self) -> None:
        """Esc: the gesture in progress ends; with none, a proposal on show is rejected."""
        busy = bool(self._lasso) or self._box_start is not None or self._livewire_active \
            or (self._tool is not None and self._tool.active)
        if self._tool is not None and self._tool.active:
            self._tool.cancel()
        self._lasso = []
        self._box_start = None
        self._livewire = None
        self.canvas.set_tool_outline(())
        if not busy:
            self.reject_proposal()

    def finish_polygon(self) -> None:
        """Enter: a polygon in progress closes; with none, a proposal on show is accepted."""
        tool = self._tool
        if self._livewire_active:
            self._close_livewire()
            return
        if self.proposal is not None and not (tool is not None and tool.active):
            self.accept_proposal()
            return
        if tool is not None and tool.active and hasattr(tool, "finish"):
            tool.finish()
        self.canvas.set_tool_outline(())

    def _on_canvas_pointer(self, phase: str, ev: PointerEvent) -> None:
        if self.mask is None:
            return
        if self.read_only:
            if phase == "press":
                self._refuse()
            return
        if self.tool_name == ACCEPT_LASSO:
            self._accept_lasso_pointer(phase, ev)
            return
        if self.tool_name in (GRABCUT, PREDICT_HERE):
            self._box_pointer(phase, ev)
            return
        if self.tool_name == LIVEWIRE:
            self._livewire_pointer(phase, ev)
            return
        if self.tool_name == SAM:
            if self.sam_pointer_hook is not None:
                self.sam_pointer_hook(phase, ev)
            return
        tool = self._current_tool()
        if tool is None:
            return
        if phase == "press":
            tool.press(ev)
        elif phase == "move":
            if ev.buttons or tool.active:
                tool.move(ev)
        elif phase == "release":
            tool.release(ev)
        elif phase == "double" and hasattr(tool, "finish") and tool.active:
            tool.finish()
        outline = tool.outline() if tool.active else ()
        self.canvas.set_tool_outline(outline, closed=self.tool_name == "rectangle")

    # edits ------------------------------------------------------------------------------------------------------
    def undo(self) -> None:
        if self.mask is not None and self.mask.can_undo:
            self.cancel_gesture()
            self.mask.undo()

    def redo(self) -> None:
        if self.mask is not None and self.mask.can_redo:
            self.mask.redo()

    def accept_prediction(self, *, polygon: list[tuple[float, float]] | None = None,
                          class_id: int | None = None) -> BBox | None:
        """Copy the prediction into the label — the whole image, or inside ``polygon`` — as one undoable step.

        Locked classes stay untouched (the tool context's guard applies here too).
        """
        t, m = self.target, self.mask
        if t is None or m is None or t.prediction is None or self._refuse():
            return None
        region = None
        if polygon is not None:
            if len(polygon) < 3:
                return None
            box, foot = polygon_footprint(polygon, shape=m.shape)
            if box.is_empty:
                return None
            region = np.zeros(m.shape, np.bool_)
            region[box.slices] = foot
        return copy_prediction(m, t.prediction, region=region, class_id=class_id, guard=self.context.guard)

    def replace_mask(self, array: np.ndarray) -> None:
        """Put ``array`` in the editor as one undoable step (e.g. reverting to an older version)."""
        if self.mask is None or self._refuse():
            return
        self.mask.assign(BBox.full(self.mask.shape), array.astype(self.mask.dtype, copy=False))

    # saving -----------------------------------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.mask is not None and self.mask.dirty

    def save(self, *, source: MaskSource = MaskSource.CORRECTION, note: str = "") -> MaskVersion | None:
        """Save the mask as a new version when it changed; clears the recovery journal. Returns the version."""
        t, m, ws = self.target, self.mask, self.workspace
        if t is None or m is None or ws is None or not m.dirty:
            return None
        self.cancel_gesture()
        seq = self._journal.seq if self._journal is not None else None
        rec = ws.save_mask(t.sample_id, np.array(m.array), source=source, author=self.author, note=note,
                           journal_seq=seq)
        m.mark_clean()
        self._set_journal_ok(True)  # nothing is unsaved now, journaled or not
        self.sig_saved.emit(rec)
        return rec

    def discard_changes(self) -> None:
        """Throw away unsaved edits of this sample (the journal goes too)."""
        if self._journal is not None:
            self._journal.discard()
            self._journal = None
        self._set_journal_ok(True)

    def close_journal(self) -> None:
        if self._journal is not None:
            self._flush_journal()
            try:
                if self.mask is not None and not self.mask.dirty:
                    self._journal.discard()
                else:
                    self._journal.close()
            except SegstudioError as exc:  # a journal left behind is offered again, never harmful
                log.warning("could not close the recovery journal: %s", exc)
            self._journal = None
