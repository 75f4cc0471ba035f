"""The Tool Options dock: the parameters of the painting and assisted tools that have no widget of their own —
the flood fill's magic wand (tolerance in display levels, so that it follows the window/level on screen),
connectivity and scope, "paint only inside" for every tool, GrabCut's iterations and the default radii of
refine edge and smoothing; and Click to Segment (SAM)'s model file and multimask choice, which
``gui.screen.sam_tool.SamToolController`` keeps in the settings. ``ToolController`` reads the rest into the
editor's ``ToolContext`` whenever it changes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.types import ClassSchema


class ToolOptionsPanel(QWidget):
    sig_changed = Signal()
    sig_sam_model_requested = Signal()  # "Choose…" the promptable model file

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolOptions")
        # flood fill
        self.wand = QCheckBox("Magic wand (by shade)", self)
        self.wand.setObjectName("wandOn")
        self.wand.setToolTip("Off: the fill floods the clicked label region. On: it floods the pixels whose shade "
                             "on screen is within the tolerance of the clicked one (the window/level applies)")
        self.tolerance = QSpinBox(self)
        self.tolerance.setObjectName("wandTolerance")
        self.tolerance.setRange(0, 255)
        self.tolerance.setValue(16)
        self.tolerance.setSuffix(" levels")
        self.tolerance.setToolTip("How far a pixel's shade on screen (0-255, after the window/level) may be from the "
                                  "clicked pixel's")
        self.connectivity = QComboBox(self)
        self.connectivity.setObjectName("fillConnectivity")
        self.connectivity.addItem("4 neighbours (edges)", 4)
        self.connectivity.addItem("8 neighbours (edges and corners)", 8)
        self.scope = QComboBox(self)
        self.scope.setObjectName("fillScope")
        self.scope.addItem("the clicked label value", "value")
        self.scope.addItem("the selected class's plane (multi-label)", "plane")
        fill = QGroupBox("Flood fill (K)", self)
        ff = QFormLayout(fill)
        ff.addRow(self.wand)
        ff.addRow("Tolerance", self.tolerance)
        ff.addRow("Connectivity", self.connectivity)
        ff.addRow("Fills", self.scope)
        # every tool
        self.inside = QComboBox(self)
        self.inside.setObjectName("paintInside")
        self.inside.setToolTip("Only pixels of this class may change, whatever the tool (e.g. split a lung into "
                               "lobes without touching the background)")
        every = QGroupBox("Every tool", self)
        ef = QFormLayout(every)
        ef.addRow("Paint only inside", self.inside)
        # assisted tools
        self.grabcut_iterations = QSpinBox(self)
        self.grabcut_iterations.setObjectName("grabcutIterations")
        self.grabcut_iterations.setRange(1, 10)
        self.grabcut_iterations.setValue(2)
        self.grabcut_iterations.setToolTip("GrabCut rounds per box: more can follow a faint edge, each costs time")
        self.refine_radius = QSpinBox(self)
        self.refine_radius.setObjectName("refineRadius")
        self.refine_radius.setRange(2, 64)
        self.refine_radius.setValue(8)
        self.refine_radius.setSuffix(" px")
        self.smooth_radius = QSpinBox(self)
        self.smooth_radius.setObjectName("smoothRadius")
        self.smooth_radius.setRange(1, 50)
        self.smooth_radius.setValue(3)
        self.smooth_radius.setSuffix(" px")
        assist = QGroupBox("Assisted tools", self)
        assist.setToolTip("They propose: Enter accepts the proposal, Esc rejects it")
        af = QFormLayout(assist)
        af.addRow("GrabCut rounds", self.grabcut_iterations)
        af.addRow("Refine edge within", self.refine_radius)
        af.addRow("Smooth outline by", self.smooth_radius)
        # click to segment (SAM)
        self.sam_model = QLabel(self)
        self.sam_model.setObjectName("samModel")
        self.sam_model.setWordWrap(True)
        self.sam_choose = QPushButton("Choose…", self)
        self.sam_choose.setObjectName("samChoose")
        self.sam_choose.setToolTip("A SAM checkpoint (.pth) or an ONNX encoder/decoder pair on this computer "
                                   "(Model → Load Promptable Model)")
        self.sam_choose.clicked.connect(self.sig_sam_model_requested.emit)
        self.sam_multimask = QCheckBox("One click: best of three masks", self)
        self.sam_multimask.setObjectName("samMultimask")
        self.sam_multimask.setChecked(True)
        self.sam_multimask.setToolTip("For a single click, SAM proposes three candidate masks (part, object, "
                                      "whole) and the best-scored is kept; off: one mask")
        sam = QGroupBox("Click to Segment (SAM)", self)
        sam.setToolTip("Left click: on the object; Shift+click or right click: not the object; drag: a box. "
                       "Each click refines the proposal; Enter accepts, Esc rejects")
        sf = QFormLayout(sam)
        row = QHBoxLayout()
        row.addWidget(self.sam_model, 1)
        row.addWidget(self.sam_choose)
        sf.addRow("Model", row)
        sf.addRow(self.sam_multimask)
        self.set_sam_model("")
        lay = QVBoxLayout(self)
        for w in (fill, every, assist, sam):
            lay.addWidget(w)
        note = QLabel("Locks and the selected class are in the Classes panel; the brush size is on the Tools bar.")
        note.setWordWrap(True)
        lay.addWidget(note)
        lay.addStretch(1)
        self.set_schema(None)
        for box in (self.wand,):
            box.toggled.connect(self._on_changed)
        for spin in (self.tolerance, self.grabcut_iterations, self.refine_radius, self.smooth_radius):
            spin.valueChanged.connect(self._on_changed)
        for combo in (self.connectivity, self.scope, self.inside):
            combo.currentIndexChanged.connect(self._on_changed)
            # a long entry must not widen the dock (and with it the window)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self._sync_enabled()

    def set_schema(self, schema: ClassSchema | None) -> None:
        """The classes "paint only inside" offers, and whether the plane scope applies (multi-label only)."""
        keep = self.inside.currentData()
        self.inside.blockSignals(True)
        self.inside.clear()
        self.inside.addItem("(off)", None)
        if schema is not None:
            for c in schema:
                self.inside.addItem(c.name, c.id)
        idx = self.inside.findData(keep)
        self.inside.setCurrentIndex(max(0, idx))
        self.inside.blockSignals(False)
        multilabel = schema is not None and schema.multilabel
        self.scope.setEnabled(multilabel)
        if not multilabel:
            self.scope.setCurrentIndex(0)

    def set_sam_model(self, path: str) -> None:
        """Show the promptable model's file name (the whole path as the tooltip)."""
        self.sam_model.setText(Path(path).name if path else "(none chosen)")
        self.sam_model.setToolTip(path or "No model: choose a SAM checkpoint or ONNX pair")

    # what the tool context takes -------------------------------------------------------------------------------
    def tolerance_value(self) -> float | None:
        return float(self.tolerance.value()) if self.wand.isChecked() else None

    def connectivity_value(self) -> int:
        return int(self.connectivity.currentData())

    def scope_value(self) -> str:
        return str(self.scope.currentData())

    def paint_inside_value(self) -> int | None:
        v = self.inside.currentData()
        return None if v is None else int(v)

    def _on_changed(self, *_args: object) -> None:
        self._sync_enabled()
        self.sig_changed.emit()

    def _sync_enabled(self) -> None:
        self.tolerance.setEnabled(self.wand.isChecked())
