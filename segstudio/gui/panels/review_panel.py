"""Review of the current sample: status (accept / reject / flag), comment, reviewer, why its label looks suspicious
(the label-quality ranking's reasons), its review history and mask versions with revert. The panel shows state and asks for changes; the review controller makes them."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from segstudio.workspace import MaskVersion, ReviewState, ReviewStatus
from segstudio.workspace.queue import STRATEGIES

STATUS_LABELS: dict[ReviewStatus, str] = {
    ReviewStatus.UNREVIEWED: "Unreviewed",
    ReviewStatus.ACCEPTED: "Accepted",
    ReviewStatus.CORRECTED: "Corrected",
    ReviewStatus.REJECTED: "Rejected",
    ReviewStatus.FLAGGED: "Flagged",
}
STATUS_COLOURS: dict[ReviewStatus, str] = {
    ReviewStatus.UNREVIEWED: "#9aa0aa",
    ReviewStatus.ACCEPTED: "#44c46a",
    ReviewStatus.CORRECTED: "#4aa3ff",
    ReviewStatus.REJECTED: "#f05a5a",
    ReviewStatus.FLAGGED: "#f0b429",
}


#: reasons listed in the "Why suspicious" box (the strongest; the rest are counted)
MAX_REASONS = 6
NO_RANKING_TEXT = "The labels are not ranked yet: Review → Rank Labels by Suspicion (Ctrl+Shift+Q)."


def _when(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


class ReviewPanel(QWidget):
    sig_status_requested = Signal(str)  # ReviewStatus value
    sig_comment_edited = Signal(str)
    sig_reviewer_edited = Signal(str)
    sig_revert_requested = Signal(int)  # mask version
    sig_queue_next_requested = Signal()
    sig_queue_strategy_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewPanel")
        self.status = QLabel()
        self.status.setObjectName("reviewStatus")
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.buttons: dict[ReviewStatus, QPushButton] = {}
        grid = QGridLayout()
        for i, (st, key) in enumerate(((ReviewStatus.ACCEPTED, "A"), (ReviewStatus.REJECTED, "R"),
                                       (ReviewStatus.FLAGGED, "F"), (ReviewStatus.UNREVIEWED, "U"))):
            b = QPushButton(f"{STATUS_LABELS[st].replace('Unreviewed', 'Clear')} ({key})")
            b.setObjectName(f"review_{st.value}")
            b.setToolTip(f"Mark this sample {STATUS_LABELS[st].lower()} ({key})")
            b.clicked.connect(lambda _c=False, s=st: self.sig_status_requested.emit(s.value))
            grid.addWidget(b, i // 2, i % 2)
            self.buttons[st] = b
        self.comment = QPlainTextEdit()
        self.comment.setObjectName("reviewComment")
        self.comment.setPlaceholderText("Comment on this sample (saved with the next decision or on leaving it)")
        self.comment.setMaximumHeight(70)
        self.reviewer = QLineEdit()
        self.reviewer.setObjectName("reviewer")
        self.reviewer.setPlaceholderText("your name")
        self.reviewer.editingFinished.connect(lambda: self.sig_reviewer_edited.emit(self.reviewer.text().strip()))
        self.summary = QLabel()
        self.summary.setObjectName("reviewSummary")
        self.summary.setWordWrap(True)

        decision = QGroupBox("Decision")
        dl = QVBoxLayout(decision)
        dl.addWidget(self.status)
        dl.addLayout(grid)
        form = QFormLayout()
        form.addRow("Comment", self.comment)
        form.addRow("Reviewer", self.reviewer)
        dl.addLayout(form)
        dl.addWidget(self.summary)

        self.history = QListWidget()
        self.history.setObjectName("reviewHistory")
        self.versions = QListWidget()
        self.versions.setObjectName("maskVersions")
        self.revert = QPushButton("Revert to selected version")
        self.revert.setObjectName("revertVersion")
        self.revert.setEnabled(False)
        self.versions.currentRowChanged.connect(lambda r: self.revert.setEnabled(r >= 0))
        self.revert.clicked.connect(self._on_revert_clicked)
        hist = QGroupBox("History")
        hl = QVBoxLayout(hist)
        hl.addWidget(QLabel("Decisions"))
        hl.addWidget(self.history, 1)
        hl.addWidget(QLabel("Mask versions (v0 = the dataset's GT)"))
        hl.addWidget(self.versions, 1)
        hl.addWidget(self.revert)

        self.queue_strategy = QComboBox()
        self.queue_strategy.setObjectName("queueStrategy")
        for key, label in STRATEGIES.items():
            self.queue_strategy.addItem(label, key)
        self.queue_strategy.setToolTip("How the next sample to review is chosen, from the predictions' scores: the "
                                       "model's (predict the images first) or an opened predictions folder's "
                                       "(disagreement only); or from the label-suspicion ranking (Review → Rank "
                                       "Labels by Suspicion)")
        self.queue_strategy.currentIndexChanged.connect(
            lambda _i: self.sig_queue_strategy_changed.emit(self.strategy()))
        self.queue_next = QPushButton("Next to review (Q)")
        self.queue_next.setObjectName("queueNext")
        self.queue_next.clicked.connect(self.sig_queue_next_requested)
        self.queue_info = QLabel()
        self.queue_info.setObjectName("queueInfo")
        self.queue_info.setWordWrap(True)
        self.suspicion = QLabel(NO_RANKING_TEXT)
        self.suspicion.setObjectName("suspicionReasons")
        self.suspicion.setTextFormat(Qt.TextFormat.RichText)
        self.suspicion.setWordWrap(True)
        self.suspicion.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.suspicion_box = QGroupBox("Why suspicious")
        self.suspicion_box.setObjectName("suspicionBox")
        self.suspicion_box.setToolTip("Why the label-quality ranking thinks this label may be wrong, strongest reason "
                                      "first; the part it points at is framed on the image")
        sl = QVBoxLayout(self.suspicion_box)
        sl.addWidget(self.suspicion)

        queue = QGroupBox("Next to review")
        ql = QVBoxLayout(queue)
        ql.addWidget(self.queue_strategy)
        ql.addWidget(self.queue_next)
        ql.addWidget(self.queue_info)

        # in a scroll area: the panel's height must not set the dock's (and so the window's) minimum height
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(decision)
        lay.addWidget(self.suspicion_box)
        lay.addWidget(queue)
        lay.addWidget(hist, 1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def strategy(self) -> str:
        return str(self.queue_strategy.currentData())

    def set_strategy(self, key: str) -> None:
        i = self.queue_strategy.findData(key)
        if i >= 0:
            self.queue_strategy.setCurrentIndex(i)

    def set_strategy_notes(self, notes: dict[str, str | None]) -> None:
        """Mark the strategies that cannot work with what is open: ``notes[key]`` says why (``None``: it works).
        They stay selectable (the choice is remembered for when a model is there) but say "Model only"."""
        for i in range(self.queue_strategy.count()):
            key = str(self.queue_strategy.itemData(i))
            note = notes.get(key)
            label = STRATEGIES.get(key, key)
            self.queue_strategy.setItemText(i, f"Model only: {label}" if note else label)  # the box is narrow
            self.queue_strategy.setItemData(i, note, Qt.ItemDataRole.ToolTipRole)

    def set_queue_info(self, text: str) -> None:
        self.queue_info.setText(text)

    def set_suspicion(self, score: float | None, reasons: Sequence[Mapping[str, Any]], *, ranked: bool = True,
                      note: str = "") -> None:
        """Show why the current sample's label looks suspicious. ``score``: its suspicion (``None``: not ranked or
        unreadable); ``reasons``: ``{"class", "text", ...}`` dicts, strongest first (as the ranking stores them);
        ``ranked``: whether the labels were ranked at all; ``note``: a line below (e.g. labels changed since)."""
        esc = html.escape
        if not ranked:
            body = esc(NO_RANKING_TEXT)
        elif score is None:
            body = "This label was not ranked (it could not be read, or it was added after the ranking)."
        else:
            colour = "#f06e3c" if score >= 0.5 else "#9aa0aa"
            lines = [f"<b style='color:{colour}'>Suspicion {score:.2f}</b>"
                     + ("" if reasons else " · nothing stands out")]
            for r in reasons[:MAX_REASONS]:
                cls = str(r.get("class") or "")
                lines.append(f"• <b>{esc(cls)}</b>: {esc(str(r.get('text', '')))}" if cls
                             else f"• {esc(str(r.get('text', '')))}")
            if len(reasons) > MAX_REASONS:
                lines.append(f"… and {len(reasons) - MAX_REASONS} weaker")
            body = "<br>".join(lines)
        if note:
            body += f"<br><i>{esc(note)}</i>"
        self.suspicion.setText(body)

    def comment_text(self) -> str:
        return self.comment.toPlainText().strip()

    def set_state(self, state: ReviewState, history: list[ReviewState]) -> None:
        colour = STATUS_COLOURS[state.status]
        who = f" by {state.reviewer}" if state.reviewer else ""
        when = f" · {_when(state.time)}" if state.time else ""
        self.status.setText(f"<b style='color:{colour}'>{STATUS_LABELS[state.status]}</b>{who}{when}")
        with QSignalBlocker(self.comment):
            self.comment.setPlainText(state.comment)
        self.history.clear()
        for h in reversed(history):
            text = f"{_when(h.time)}  {STATUS_LABELS[h.status]}" + (f" — {h.reviewer}" if h.reviewer else "")
            if h.comment:
                text += f": {h.comment}"
            self.history.addItem(text)

    def set_versions(self, versions: list[MaskVersion], *, current: int) -> None:
        self.versions.clear()
        gt = QListWidgetItem("v0 · dataset GT (read-only)")
        gt.setData(Qt.ItemDataRole.UserRole, 0)
        self.versions.addItem(gt)
        for v in versions:
            item = QListWidgetItem(f"v{v.version} · {v.source.value.replace('_', ' ')} · {_when(v.time)}"
                                   + (f" — {v.author}" if v.author else "") + ("  (current)" if v.version == current else ""))
            item.setData(Qt.ItemDataRole.UserRole, v.version)
            self.versions.addItem(item)
        self.revert.setEnabled(False)

    def set_summary(self, counts: dict[ReviewStatus, int], total: int) -> None:
        done = total - counts.get(ReviewStatus.UNREVIEWED, total)
        parts = [f"{counts.get(s, 0)} {STATUS_LABELS[s].lower()}" for s in
                 (ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED, ReviewStatus.REJECTED, ReviewStatus.FLAGGED)]
        pct = 100.0 * done / total if total else 0.0
        self.summary.setText(f"{done}/{total} reviewed ({pct:.0f} %) · " + " · ".join(parts))

    def set_reviewer(self, name: str) -> None:
        with QSignalBlocker(self.reviewer):
            self.reviewer.setText(name)

    def _on_revert_clicked(self) -> None:
        item = self.versions.currentItem()
        if item is not None:
            self.sig_revert_requested.emit(int(item.data(Qt.ItemDataRole.UserRole)))
