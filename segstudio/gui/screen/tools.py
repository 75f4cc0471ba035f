"""The painting tools as the window offers them: which tool is active, the brush (size, shape), the class and
locks it paints with, accepting the prediction and the Edit menu's mask operations. The editor does the
painting; this controller keeps its tool context in step with the widgets that choose it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSpinBox, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.gui.common.errors import show_error
from segstudio.gui.panels.class_panel import ClassPanel
from segstudio.gui.panels.tool_options import ToolOptionsPanel
from segstudio.gui.screen import mask_ops
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import EditorController

EDIT_TOOLS = ("brush", "eraser", "polygon", "lasso", "fill", "rectangle", "accept-lasso", "grabcut", "livewire",
              "predict-here", "sam")


class ToolController(QObject):
    sig_tool_changed = Signal(str)  # the tool just chosen (e.g. "sam", which embeds the image when chosen)

    def __init__(self, *, editor: EditorController, canvas: ImageCanvas, class_panel: ClassPanel,
                 brush_size: QSpinBox, show_message: Callable[[str, int], None], dialog_parent: QWidget,
                 options: ToolOptionsPanel | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.editor, self.canvas, self.class_panel, self.brush_size = editor, canvas, class_panel, brush_size
        self.options = options
        if options is not None:
            options.sig_changed.connect(self.sync_context)
        self._show_message, self._dialog_parent = show_message, dialog_parent
        self.square_brush = False
        class_panel.sig_lock_changed.connect(lambda _c, _l: self.sync_context())
        class_panel.sig_class_selected.connect(lambda _c: self.sync_context())
        brush_size.valueChanged.connect(lambda _v: self.sync_context())

    def set_tool(self, name: str) -> None:
        editing = name in EDIT_TOOLS
        self.canvas.set_edit_mode(editing)
        if editing:
            self.editor.set_tool(name)
        self.sync_context()
        self.sig_tool_changed.emit(name)

    def sync_context(self) -> None:
        """The editor paints with the selected class, the brush size and shape, and the locked classes."""
        cid = self.class_panel.selected_class()
        ctx = self.editor.context.with_(size=float(self.brush_size.value()),
                                        brush="square" if self.square_brush else "round",
                                        locked=self.class_panel.locked_ids())
        if cid is not None:
            ctx = ctx.with_(class_id=cid)
        opts = self.options
        if opts is not None:
            ctx = ctx.with_(tolerance=opts.tolerance_value(), connectivity=opts.connectivity_value(),
                            fill_scope=opts.scope_value(), paint_inside=opts.paint_inside_value())
            self.editor.grabcut_iterations = opts.grabcut_iterations.value()
            self.editor.refine_radius = opts.refine_radius.value()
            self.editor.smooth_radius = opts.smooth_radius.value()
        self.editor.set_context(ctx)
        brushy = self.canvas.edit_mode and self.editor.tool_name in ("brush", "eraser")
        self.canvas.set_brush_cursor(ctx.size if brushy else 0, ctx.brush)

    def change_brush_size(self, step: int) -> None:
        v = self.brush_size.value()
        factor = 1.2 if step > 0 else 1 / 1.2
        self.brush_size.setValue(max(1, round(v * factor) if round(v * factor) != v else v + step))

    def set_square_brush(self, on: bool) -> None:
        self.square_brush = on
        self.sync_context()

    def accept_prediction(self) -> None:
        if self.editor.target is None or self.editor.target.prediction is None:
            self._show_message("This sample has no prediction to accept.", 4000)
            return
        self.editor.accept_prediction()

    def run_mask_op(self, name: str) -> None:
        try:
            mask_ops.run(name, editor=self.editor, parent=self._dialog_parent)
        except SegstudioError as exc:
            show_error("Mask operation failed", str(exc))
