"""The model history of the workspace (its model registry): every adoption, promotion, refusal and rollback, with
the gate's verdict, the interval of the change in Dice and the reason, newest first; and the Roll back button."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from segstudio.workspace.models import ModelAction, ModelEvent

COLUMNS = ("#", "When", "What", "Gate", "Δ Dice (interval)", "Model", "Reason")
GATE_COL, MODEL_COL, REASON_COL = 3, 5, 6
_ACTION_TEXT = {ModelAction.ADOPT: "chosen", ModelAction.PROMOTE: "promoted", ModelAction.REFUSE: "refused",
                ModelAction.ROLLBACK: "rolled back to"}
_VERDICT_TEXT = {"promote": "better (proven)", "not_proven": "not proven", "refused": "refused"}
BETTER = QColor(46, 160, 67)
WORSE = QColor(218, 54, 51)


def _interval(figures: Any) -> str:
    gate = figures.get("gate") if hasattr(figures, "get") else None
    if not isinstance(gate, dict):
        return ""
    d, lo, hi = gate.get("mean_delta"), gate.get("ci_low"), gate.get("ci_high")
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (d, lo, hi)):
        return ""
    return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def event_row(ev: ModelEvent, run_names: dict[str, str]) -> tuple[str, ...]:
    model = run_names.get(ev.run_id) or ev.run_id or ev.checkpoint.parent.parent.name
    return (str(ev.seq), time.strftime("%m-%d %H:%M", time.localtime(ev.time)), _ACTION_TEXT[ev.action],
            _VERDICT_TEXT.get(ev.verdict, "by hand" if not ev.verdict else ev.verdict), _interval(ev.figures),
            f"{model} · {ev.checkpoint.name}", ev.reason + (f" ({ev.author})" if ev.author else ""))


class ModelHistory(QWidget):
    """``sig_rollback_requested()``: go back to the model before the current one."""

    sig_rollback_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("modelHistory")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setMinimumHeight(110)
        self.rollback_button = QPushButton("Roll back", self)
        self.rollback_button.setObjectName("rollbackButton")
        self.rollback_button.setToolTip("Make the model that was current before the current one current again "
                                        "(recorded in the history)")
        self.rollback_button.clicked.connect(self.sig_rollback_requested.emit)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.rollback_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree, 1)
        lay.addLayout(row)
        self.set_history([], {})

    def set_history(self, events: Sequence[ModelEvent], run_names: dict[str, str]) -> None:
        self.tree.clear()
        for ev in reversed(events):
            item = QTreeWidgetItem(list(event_row(ev, run_names)))
            item.setToolTip(REASON_COL, ev.reason)
            item.setToolTip(MODEL_COL, str(ev.checkpoint))
            if ev.verdict in ("promote", "refused"):
                item.setForeground(GATE_COL, QBrush(BETTER if ev.verdict == "promote" else WORSE))
            if ev.action is ModelAction.REFUSE:
                for c in range(len(COLUMNS)):
                    if c != GATE_COL:
                        item.setForeground(c, QBrush(QColor(128, 128, 128)))
            item.setTextAlignment(0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(item)
        for c in range(len(COLUMNS) - 1):
            self.tree.resizeColumnToContents(c)
        self.rollback_button.setEnabled(any(e.action is not ModelAction.REFUSE and e.previous is not None
                                            for e in events))
