"""The verdict of a retraining round: the promotion gate's verdict (the bootstrap interval of the change in mean
Dice, and per class whether it got worse beyond the margin), per-class Dice and IoU of the current model and of the
retrained one on the same frozen validation images, and the choice — keep the promoted model or go back, promote a
model the gate did not let through (recorded as a person's decision) or keep the current one.

The dialog is modeless: the window stays usable while it is open (the refreshed predictions arrive behind it).
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.metrics.gate import MIN_IMAGES

BETTER = QColor(46, 160, 67)
WORSE = QColor(218, 54, 51)
COLUMNS = ("Class", "Dice before", "Dice after", "Δ Dice", "IoU before", "IoU after", "Δ IoU", "Gate")


def _fmt(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4f}"


def _delta(a: float, b: float) -> float:
    return b - a if math.isfinite(a) and math.isfinite(b) else math.nan


def class_verdict(comp: Any, class_id: int | None) -> str:
    """The gate's word on one class (``""`` for classes it does not judge, such as background)."""
    gate = comp.gate
    if class_id is None:
        return gate.verdict.label
    for c in gate.per_class:
        if c.class_id == class_id:
            if c.regressed:
                return f"worse by more than {gate.thresholds.class_margin:.3f}"
            return "better" if math.isfinite(c.delta) and c.delta > 0 else "within the margin"
    return ""


def gate_summary(comp: Any) -> str:
    """One line: the mean per-image change, its interval, and over how many images."""
    g = comp.gate
    if not math.isfinite(g.mean_delta):
        return "No validation image could be paired: nothing was measured."
    return (f"Mean per-image Dice change {g.mean_delta:+.4f}, {g.thresholds.confidence:.0%} bootstrap interval "
            f"[{g.ci_low:+.4f}, {g.ci_high:+.4f}] over {g.images} image(s); promoted only when the interval is "
            f"above {g.thresholds.min_gain:+.3f} and no class drops by more than {g.thresholds.class_margin:.3f}.")


def comparison_rows(comp: Any) -> list[tuple[str, float, float, float, float, bool]]:
    """``(class, dice before, dice after, iou before, iou after, scored)`` per class, then the mean row.
    ``scored``: the class counts in the means (background and ignored classes do not)."""
    return [row[1:] for row in _rows(comp)]


def _rows(comp: Any) -> list[tuple[int | None, str, float, float, float, float, bool]]:
    before = {c.class_id: c for c in comp.before.summary.per_class}
    after = {c.class_id: c for c in comp.after.summary.per_class}
    scored = set(comp.after.summary.scored_ids)
    rows: list[tuple[int | None, str, float, float, float, float, bool]] = []
    for cid, b in before.items():
        a = after.get(cid)
        if a is None:
            continue
        rows.append((cid, b.name, b.dice, a.dice, b.iou, a.iou, cid in scored))
    rows.append((None, "Mean (scored classes)", comp.before.dice, comp.after.dice, comp.before.iou, comp.after.iou,
                 True))
    return rows


class RetrainDialog(QDialog):
    """``sig_promote_requested()``: promote the retrained model; ``sig_keep_previous_requested()``: go back to the
    model the round started from. ``promoted``: whether the retrained model is the current one now."""

    sig_promote_requested = Signal()
    sig_keep_previous_requested = Signal()

    def __init__(self, comparison: Any, *, promoted: bool, run_name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("retrainDialog")
        self.setWindowTitle("Retraining result")
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.comparison = comparison
        self.promoted = promoted
        self.headline = QLabel(self)
        self.headline.setObjectName("retrainHeadline")
        self.headline.setWordWrap(True)
        self.gate_label = QLabel(gate_summary(comparison), self)
        self.gate_label.setObjectName("gateSummary")
        self.gate_label.setWordWrap(True)
        self.reason_label = QLabel(f"Gate: {comparison.gate.reason}.", self)
        self.reason_label.setObjectName("gateReason")
        self.reason_label.setWordWrap(True)
        # the interval line says it all, unless a class or too few images decided
        self.reason_label.setVisible(bool(comparison.gate.regressed) or comparison.gate.images < MIN_IMAGES)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color: palette(mid);")
        self.table = QTableWidget(self)
        self.table.setObjectName("retrainTable")
        self.table.setColumnCount(len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a read-only table: no focus frame on a cell
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.buttons = QDialogButtonBox(self)
        self.promote_button = QPushButton("Promote the retrained model", self)
        self.promote_button.setObjectName("promoteButton")
        self.keep_button = QPushButton("Keep the previous model", self)
        self.keep_button.setObjectName("keepPreviousButton")
        self.buttons.addButton(self.promote_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.keep_button, QDialogButtonBox.ButtonRole.ActionRole)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.close)
        self.promote_button.clicked.connect(self._on_promote_clicked)
        self.keep_button.clicked.connect(self._on_keep_clicked)
        lay = QVBoxLayout(self)
        lay.addWidget(self.headline)
        lay.addWidget(self.gate_label)
        lay.addWidget(self.reason_label)
        lay.addWidget(self.table)
        lay.addWidget(self.detail)
        lay.addStretch(1)
        lay.addWidget(self.buttons)
        self._fill(run_name)
        self._sync()
        # every row in view: the mean row is the one people look for
        rows_h = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + rows_h + 2 * self.table.frameWidth())
        self.resize(860, lay.totalHeightForWidth(860) if lay.hasHeightForWidth() else self.sizeHint().height())

    def _fill(self, run_name: str) -> None:
        comp = self.comparison
        rows = _rows(comp)
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, (cid, name, db, da, ib, ia, scored) in enumerate(rows):
            word = class_verdict(comp, cid) if scored else ""
            values: tuple[str | float, ...] = (name, _fmt(db), _fmt(da), _delta(db, da), _fmt(ib), _fmt(ia), _delta(ib, ia), word)
            for c, v in enumerate(values):
                if isinstance(v, float):
                    item = QTableWidgetItem("—" if not math.isfinite(v) else f"{v:+.4f}")
                    if math.isfinite(v) and abs(v) >= 5e-5 and scored:
                        item.setForeground(QBrush(BETTER if v > 0 else WORSE))
                else:
                    item = QTableWidgetItem(v)
                    if c == len(values) - 1 and v:
                        worse = v.startswith("worse") or v == "refused"
                        good = v.startswith("better")
                        if worse or good:
                            item.setForeground(QBrush(WORSE if worse else BETTER))
                if 0 < c < len(values) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r == len(rows) - 1:
                    item.setFont(bold)
                if not scored:
                    item.setToolTip("Not part of the means (background)")
                    item.setForeground(QBrush(QColor(128, 128, 128)))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        where = f" ({run_name})" if run_name else ""
        self.detail.setText(
            f"Fine-tuned {comp.epochs} epoch(s) from the current model{where} on the dataset's ground truth and "
            f"{comp.reviewed} corrected or accepted image(s); both models scored on the same "
            f"{len(comp.val_ids)} validation image(s), against the corrections where there are some.")

    def _sync(self) -> None:
        comp = self.comparison
        change = (f"{comp.metric.capitalize()} {comp.before_value:.4f} → {comp.after_value:.4f} "
                  f"({comp.delta:+.4f}).")
        if self.promoted:
            state = "The retrained model is now the current model; its predictions are being refreshed."
        elif comp.improved:
            state = "The gate lets the retrained model through, but the previous model is kept until you promote it."
        else:
            state = ("The current model stays. Promoting the retrained model anyway is recorded as your decision, "
                     "with these figures.")
        verdict = {"promote": "Better, proven", "not_proven": "Not proven",
                   "refused": "Refused"}[comp.gate.verdict.value]
        self.headline.setText(f"<b>{verdict}.</b> {change} {state}")
        self.promote_button.setVisible(not self.promoted)
        self.keep_button.setVisible(self.promoted)

    def _on_promote_clicked(self) -> None:
        self.sig_promote_requested.emit()
        self.set_promoted(True)

    def _on_keep_clicked(self) -> None:
        self.sig_keep_previous_requested.emit()
        self.set_promoted(False)

    def set_promoted(self, promoted: bool) -> None:
        self.promoted = promoted
        self._sync()
