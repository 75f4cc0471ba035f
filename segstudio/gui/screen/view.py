"""What the canvas shows and how: zoom, layer visibility and opacity, overlay mode, split views and the
display-only image settings (window/level, invert, filters). The main window routes view actions and the Layers
panel here; the image data is never changed."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction

from segstudio.core.display import (
    NO_RESCALE,
    XRAY_PRESETS,
    DisplaySettings,
    WindowPreset,
    render_display,
    value_range,
)
from segstudio.datasets.display import ImageDisplay, default_display
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.screen.canvas import ImageCanvas
from segstudio.gui.screen.editor import ERROR_LAYER, GT_LAYER, PRED_LAYER, EditorController
from segstudio.gui.screen.session import LoadedSample, SessionController
from segstudio.gui.screen.split_view import SECOND_LAYER, SplitView

LAYER_ACTIONS = {GT_LAYER: "toggle_gt", PRED_LAYER: "toggle_pred", ERROR_LAYER: "toggle_error",
                 "uncertainty": "toggle_uncertainty"}  # drawn by gui.predictions_view
VIEW_ACTIONS = {"single": "view_single", "gt|pred": "view_gt_pred", "before|after": "view_before_after"}
#: screen pixels of right-drag that move window or level across the whole value range
WL_DRAG_SPAN_PX = 500.0


class ViewController(QObject):
    def __init__(self, *, session: SessionController, canvas: ImageCanvas, split: SplitView,
                 layers: LayersPanel, editor: EditorController, actions: dict[str, QAction],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.canvas, self.split = session, canvas, split
        self.layers, self.editor, self.actions = layers, editor, actions
        self.display = DisplaySettings()
        #: the current image's default display (its rescale to display units, header window or auto-window)
        self.image_display = ImageDisplay()
        self._presets: tuple[WindowPreset, ...] = XRAY_PRESETS
        #: the user chose a window (preset or right-drag): kept for the next image of the same value range
        self._manual_window = False
        self._image_range: tuple[float, float] | None = None
        layers.sig_layer_visibility_changed.connect(self._on_layers_visibility_changed)
        layers.sig_layer_opacity_changed.connect(self._on_layers_opacity_changed)
        layers.sig_overlay_mode_changed.connect(lambda m: editor.set_overlay_style(mode=m))
        layers.sig_error_class_changed.connect(editor.set_error_class)
        layers.sig_view_mode_changed.connect(self.set_view_mode)
        layers.sig_preset_chosen.connect(self._on_layers_preset_chosen)
        layers.sig_filter_changed.connect(self._on_layers_filter_changed)
        canvas.sig_window_level_dragged.connect(self._on_canvas_window_level_dragged)
        split.secondary.sig_window_level_dragged.connect(self._on_canvas_window_level_dragged)
        for name, row in layers.rows.items():
            canvas.set_layer_opacity(name, row.opacity.value() / 100.0)

    def bind_actions(self, actions: dict[str, QAction]) -> None:
        """The window's actions (built after this controller: their handlers are its methods)."""
        self.actions = actions
        self.layers.sig_invert_toggled.connect(actions["invert"].setChecked)

    # zoom -------------------------------------------------------------------------------------------------------
    def zoom_fit(self) -> None:
        self.canvas.fit()

    def zoom_1to1(self) -> None:
        self.canvas.zoom_1to1()

    def zoom_in(self) -> None:
        self.canvas.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.canvas.zoom_by(0.8)

    # layers -----------------------------------------------------------------------------------------------------
    def set_gt_visible(self, on: bool) -> None:
        self.layers.set_layer_visible(GT_LAYER, on)

    def set_pred_visible(self, on: bool) -> None:
        self.layers.set_layer_visible(PRED_LAYER, on)

    def set_error_visible(self, on: bool) -> None:
        self.layers.set_layer_visible(ERROR_LAYER, on)

    def set_contour_mode(self, on: bool) -> None:
        self.layers.overlay_mode.setCurrentIndex(self.layers.overlay_mode.findData("contour" if on else "fill"))

    def set_view_mode(self, mode: str) -> None:
        self.split.set_mode(mode)
        for m, name in VIEW_ACTIONS.items():
            if self.actions[name].isChecked() != (m == mode):
                self.actions[name].setChecked(m == mode)
        idx = self.layers.view_mode.findData(mode)
        if self.layers.view_mode.currentIndex() != idx:
            self.layers.view_mode.setCurrentIndex(idx)
        self.refresh_secondary()
        self.apply_layer_visibility()

    def apply_layer_visibility(self) -> None:
        for name in (GT_LAYER, PRED_LAYER, ERROR_LAYER):
            visible = self.layers.layer_visible(name)
            if name == PRED_LAYER and self.split.mode == "gt|pred":
                visible = False  # the prediction has its own pane
            if name == PRED_LAYER and visible:
                self.editor.prediction_rgba()  # drawn on first show
            self.canvas.set_layer_visible(name, visible)

    def refresh_secondary(self) -> None:
        """The second pane of a split view: the same image with the prediction (or the mask as opened)."""
        mode = self.split.mode
        if mode == "single" or self.session.current is None:
            return
        self.render_image()
        layer = self.editor.prediction_rgba() if mode == "gt|pred" else self.editor.before_rgba()
        sec = self.split.secondary
        sec.set_layer(SECOND_LAYER, layer, z=1.0)
        sec.set_layer_opacity(SECOND_LAYER, self.layers.layer_opacity(PRED_LAYER if mode == "gt|pred" else GT_LAYER))
        sec.copy_view_from(self.canvas)

    # image display ----------------------------------------------------------------------------------------------
    def sample_shown(self, cur: LoadedSample) -> None:
        """A new sample opens with its own default window (DICOM header, CT preset, percentile auto-window); a
        window the user chose is kept while the value range and units stay the same (8-bit after 8-bit, ...)."""
        ds = self.session.dataset
        shown = default_display(ds, cur.sample, cur.image) if ds is not None else ImageDisplay()
        rng = value_range(cur.image, shown.rescale)
        keep = (self._manual_window and rng == self._image_range
                and shown.rescale.units == self.image_display.rescale.units)
        self.image_display = shown
        if shown.presets != self._presets:
            self._presets = shown.presets
            self.layers.set_presets([p.name for p in shown.presets])
        if not keep:
            self._manual_window = False
            self.display = shown.settings(self.display)
            self._show_window_text()
        self._image_range = rng
        self.render_image()

    def _show_window_text(self) -> None:
        d = self.display
        source = "" if self._manual_window else self.image_display.source
        self.layers.set_window_level_text(d.window, d.level, units=self.image_display.rescale.units, source=source)

    def render_image(self) -> None:
        cur = self.session.current
        if cur is None:
            return
        rescale = self.image_display.rescale if self.image_display is not None else NO_RESCALE
        shown = render_display(cur.image, self.display, rescale=rescale)
        self.canvas.set_image(shown)
        if self.split.mode != "single":
            self.split.secondary.set_image(shown)

    def set_invert(self, on: bool) -> None:
        self.display = replace(self.display, invert=on)
        if self.layers.invert.isChecked() != on:
            self.layers.invert.setChecked(on)
        self.render_image()

    def reset_display(self) -> None:
        """Back to the image's own window (header, CT preset or auto-window), keeping invert and the filter."""
        self._manual_window = False
        self.display = self.image_display.settings(
            DisplaySettings(invert=self.display.invert, filter=self.display.filter))
        self._show_window_text()
        self.render_image()

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_canvas_window_level_dragged(self, dx: float, dy: float) -> None:
        cur = self.session.current
        if cur is None:
            return
        lo, hi = value_range(cur.image, self.image_display.rescale)
        span = hi - lo
        window = self.display.window if self.display.window is not None else span
        level = self.display.level if self.display.level is not None else lo + span / 2
        window = max(1.0, window + dx * span / WL_DRAG_SPAN_PX)
        level = level + dy * span / WL_DRAG_SPAN_PX
        self.display = replace(self.display, window=window, level=level)
        self._manual_window = True
        self._show_window_text()
        self.render_image()

    def _on_layers_preset_chosen(self, name: str) -> None:
        cur = self.session.current
        if cur is None:
            return
        preset = next((p for p in self._presets if p.name == name), None)
        if preset is None:
            return
        self.display = self.display.with_preset(preset, value_range=value_range(cur.image, self.image_display.rescale))
        self._manual_window = True
        self._show_window_text()
        self.render_image()

    def _on_layers_filter_changed(self, name: str) -> None:
        self.display = replace(self.display, filter=name)  # type: ignore[arg-type]
        self.render_image()

    def _on_layers_visibility_changed(self, name: str, on: bool) -> None:
        action = self.actions[LAYER_ACTIONS[name]]
        if action.isChecked() != on:
            action.setChecked(on)
        self.apply_layer_visibility()

    def _on_layers_opacity_changed(self, name: str, value: float) -> None:
        self.canvas.set_layer_opacity(name, value)
        mode = self.split.mode
        if (name == PRED_LAYER and mode == "gt|pred") or (name == GT_LAYER and mode == "before|after"):
            self.split.secondary.set_layer_opacity(SECOND_LAYER, value)
