"""The promotion gate's thresholds, edited in the Training panel and saved in the workspace's settings
(``workspace.json``: ``gate_confidence``, ``gate_min_gain``, ``gate_class_margin``, ``auto_promote``), where
``segstudio retrain`` reads them too."""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QWidget

from segstudio.core.errors import SegstudioError
from segstudio.workspace import Workspace

log = logging.getLogger(__name__)

CONFIDENCES = (0.90, 0.95, 0.99)


class GateSettings(QWidget):
    """``sig_message(text)``: a line for the status bar (a setting that could not be saved)."""

    sig_message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace: Workspace | None = None
        self._loading = False
        self.confidence = QComboBox(self)
        self.confidence.setObjectName("gateConfidence")
        for c in CONFIDENCES:
            self.confidence.addItem(f"{c:.0%}", c)
        self.confidence.setToolTip("Confidence of the bootstrap interval of the change in mean Dice over the "
                                   "validation images")
        self.min_gain = self._spin(-0.2, 0.2, "gateMinGain",
                                   "The interval's lower end must be above this change in mean Dice (0: any gain "
                                   "that is proven, not noise)")
        self.class_margin = self._spin(0.0, 0.5, "gateClassMargin",
                                       "A class whose Dice drops by more than this refuses the promotion, whatever the "
                                       "mean does")
        self.auto_promote = QCheckBox("Promote by itself when the gate says so", self)
        self.auto_promote.setObjectName("gateAutoPromote")
        self.auto_promote.setToolTip("Off: every round waits for you to promote its model")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Interval confidence", self.confidence)
        form.addRow("Minimum gain", self.min_gain)
        form.addRow("Class may drop at most", self.class_margin)
        form.addRow(self.auto_promote)  # across both columns: the form stays as narrow as its dock
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.confidence.currentIndexChanged.connect(self._save)
        self.min_gain.valueChanged.connect(self._save)
        self.class_margin.valueChanged.connect(self._save)
        self.auto_promote.toggled.connect(self._save)
        self.setEnabled(False)

    def _spin(self, lo: float, hi: float, name: str, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setObjectName(name)
        spin.setRange(lo, hi)
        spin.setDecimals(3)
        spin.setSingleStep(0.005)
        spin.setToolTip(tip)
        return spin

    def set_workspace(self, workspace: Workspace | None) -> None:
        self.workspace = workspace
        self._loading = True
        try:
            if workspace is not None:
                s = workspace.settings
                idx = min(range(len(CONFIDENCES)), key=lambda i: abs(CONFIDENCES[i] - s.gate_confidence))
                self.confidence.setCurrentIndex(idx)
                self.min_gain.setValue(s.gate_min_gain)
                self.class_margin.setValue(s.gate_class_margin)
                self.auto_promote.setChecked(s.auto_promote)
        finally:
            self._loading = False
        self.setEnabled(workspace is not None and not workspace.read_only)

    def _save(self) -> None:
        ws = self.workspace
        if self._loading or ws is None or ws.read_only:
            return
        s = ws.settings
        new = s.replace(gate_confidence=float(self.confidence.currentData()), gate_min_gain=self.min_gain.value(),
                        gate_class_margin=self.class_margin.value(), auto_promote=self.auto_promote.isChecked())
        if new == s:
            return
        try:
            ws.save_settings(new)
        except SegstudioError as exc:
            log.warning("cannot save the gate settings: %s", exc)
            self.sig_message.emit(f"The gate settings could not be saved: {exc.message}")
