"""Layers and display: visibility and opacity per layer, overlay drawing mode, error-map class, view mode, and
the display-only image controls (window/level presets, invert, equalisation, CLAHE)."""

from __future__ import annotations

from typing import NamedTuple

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.display import DISPLAY_FILTERS, XRAY_PRESETS
from segstudio.core.types import ClassSchema
from segstudio.gui.common.view_modes import VIEW_MODES

LAYERS: tuple[tuple[str, str, float], ...] = (
    ("gt", "GT / correction", 0.5),
    ("prediction", "Prediction", 0.5),
    ("error", "Error map (FP/FN)", 0.7),
    ("uncertainty", "Uncertainty", 0.7),
)
#: layers that start hidden (the uncertainty heat map is asked for, not imposed)
HIDDEN_AT_START = frozenset({"uncertainty"})
OVERLAY_MODE_NAMES = {"fill": "Fill", "contour": "Contour only", "fill_contour": "Fill + contour"}
FILTER_NAMES = {"none": "None", "equalize": "Histogram equalisation", "clahe": "CLAHE"}


class LayerRow(NamedTuple):
    visible: QCheckBox
    opacity: QSlider


class LayersPanel(QWidget):
    sig_layer_visibility_changed = Signal(str, bool)
    sig_layer_opacity_changed = Signal(str, float)
    sig_overlay_mode_changed = Signal(str)
    sig_error_class_changed = Signal(object)  # int class id or None (all classes)
    sig_view_mode_changed = Signal(str)
    sig_preset_chosen = Signal(str)  # window/level preset name
    sig_invert_toggled = Signal(bool)
    sig_filter_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        self.rows: dict[str, LayerRow] = {}

        layers = QGroupBox("Layers")
        form = QFormLayout(layers)
        for name, title, opacity in LAYERS:
            cb = QCheckBox(title)
            cb.setObjectName(f"layerVisible_{name}")
            cb.setChecked(name not in HIDDEN_AT_START)
            if name == "uncertainty":
                cb.setToolTip("Per-pixel uncertainty (entropy) of the model's prediction as a heat map: "
                              "transparent where the model is sure, red to yellow where it is not (Shift+V)")
            sl = QSlider(Qt.Orientation.Horizontal)
            sl.setObjectName(f"layerOpacity_{name}")
            sl.setRange(0, 100)
            sl.setValue(round(opacity * 100))
            sl.setToolTip(f"{title} opacity")
            cb.toggled.connect(lambda on, n=name: self.sig_layer_visibility_changed.emit(n, on))
            sl.valueChanged.connect(lambda v, n=name: self.sig_layer_opacity_changed.emit(n, v / 100.0))
            form.addRow(cb, sl)
            self.rows[name] = LayerRow(cb, sl)
        self.overlay_mode = QComboBox()
        for key, label in OVERLAY_MODE_NAMES.items():
            self.overlay_mode.addItem(label, key)
        self.overlay_mode.currentIndexChanged.connect(
            lambda _i: self.sig_overlay_mode_changed.emit(self.overlay_mode.currentData()))
        form.addRow("Masks drawn as", self.overlay_mode)
        self.error_class = QComboBox()
        self.error_class.currentIndexChanged.connect(
            lambda _i: self.sig_error_class_changed.emit(self.error_class.currentData()))
        form.addRow("Error map of", self.error_class)
        self.view_mode = QComboBox()
        self.view_mode.setObjectName("viewMode")
        for key, label in VIEW_MODES.items():
            self.view_mode.addItem(label, key)
        self.view_mode.currentIndexChanged.connect(
            lambda _i: self.sig_view_mode_changed.emit(self.view_mode.currentData()))
        form.addRow("View", self.view_mode)

        display = QGroupBox("Image display (does not change the data)")
        dform = QFormLayout(display)
        self.preset = QComboBox()
        self.preset.addItem("Choose a window…", None)
        for p in XRAY_PRESETS:
            self.preset.addItem(p.name, p.name)
        self.preset.activated.connect(self._on_preset_activated)
        dform.addRow("Window/level", self.preset)
        self.wl_label = QLabel("full range · right-drag to adjust")
        dform.addRow("", self.wl_label)
        self.invert = QCheckBox("Invert")
        self.invert.toggled.connect(self.sig_invert_toggled)
        self.filter = QComboBox()
        for key in DISPLAY_FILTERS:
            self.filter.addItem(FILTER_NAMES[key], key)
        self.filter.currentIndexChanged.connect(lambda _i: self.sig_filter_changed.emit(self.filter.currentData()))
        row = QHBoxLayout()
        row.addWidget(self.invert)
        row.addWidget(self.filter, 1)
        dform.addRow("Filter", row)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(layers)
        lay.addWidget(display)
        lay.addStretch(1)

    def set_schema(self, schema: ClassSchema) -> None:
        with QSignalBlocker(self.error_class):
            self.error_class.clear()
            self.error_class.addItem("All classes", None)
            for c in schema:
                if schema.multilabel or c.id != 0:
                    self.error_class.addItem(c.name, c.id)

    def set_presets(self, names: list[str]) -> None:
        """The window presets that fit the image shown (Hounsfield-unit presets for CT, range fractions else)."""
        with QSignalBlocker(self.preset):
            self.preset.clear()
            self.preset.addItem("Choose a window…", None)
            for n in names:
                self.preset.addItem(n, n)

    def set_window_level_text(self, window: float | None, level: float | None, *, units: str = "",
                              source: str = "") -> None:
        """``units``: of the window ("HU"); ``source``: where the window came from ("header", "auto ...")."""
        if window is None or level is None:
            text = "full range"
        else:
            u = f" {units}" if units else ""
            text = f"W {window:.0f} · L {level:.0f}{u}" + (f" ({source})" if source else "")
        self.wl_label.setText(f"{text} · right-drag to adjust")

    def set_layer_available(self, name: str, available: bool) -> None:
        row = self.rows[name]
        row.visible.setEnabled(available)
        row.opacity.setEnabled(available)

    def set_layer_title(self, name: str, title: str) -> None:
        """Rename a layer's row (e.g. "Prediction (older model)")."""
        self.rows[name].visible.setText(title)

    def layer_visible(self, name: str) -> bool:
        return self.rows[name].visible.isChecked()

    def layer_opacity(self, name: str) -> float:
        return self.rows[name].opacity.value() / 100.0

    def set_layer_visible(self, name: str, on: bool) -> None:
        self.rows[name].visible.setChecked(on)

    def _on_preset_activated(self, _index: int) -> None:
        name = self.preset.currentData()
        if name is not None:
            self.sig_preset_chosen.emit(name)
