"""File → Export…: what leaves segstudio, in which format, where (issue 14).

The dialog builds an ``ExportRequest`` (``workspace.export``) and shows, live, what it would export: the
destination checked as it is typed (new or empty, outside the dataset and the workspace), the formats that cannot
hold this dataset disabled with the reason, and a summary line from ``plan_export`` ("412 images, 37 corrected,
3 classes → coco (compressed RLE)") or its error. Accepting plans once more; an error keeps the dialog open with
the error shown. The dialog computes nothing itself and runs nothing: ``ExportView`` starts the job with
:attr:`plan`.

Tests (and scripts) fill it through the setters and call :meth:`accept`; the window shows it with ``open()``,
never a blocking ``exec()``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qtawesome as qta
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.datasets.writing import get_writer, writer_names
from segstudio.gui.common.tables import cell, cell_text
from segstudio.workspace import Workspace, is_writable_dir
from segstudio.workspace.export import (
    ExportPlan,
    ExportRequest,
    background_class,
    check_destination,
    dataset_folder,
    plan_export,
)
from segstudio.workspace.records import ReviewStatus

log = logging.getLogger(__name__)

SUMMARY_DELAY_MS = 150
_OK_ICON, _ERROR_ICON = "fa5s.check-circle", "fa5s.exclamation-triangle"
_OK_COLOUR, _ERROR_COLOUR = "#6cc070", "#e8a23a"


@dataclass(frozen=True)
class FormatOption:
    """One writer option the dialog offers: ``choices`` are ``(value, text)``, the first the writer's default."""

    key: str
    label: str
    choices: tuple[tuple[Any, str], ...]
    tip: str = ""
    in_summary: bool = False  # the choice is named in the summary line ("→ coco, compressed RLE (exact)")


#: The options each writer takes (``DatasetWriter.write(options=)``), as the dialog offers them.
FORMAT_OPTIONS: dict[str, tuple[FormatOption, ...]] = {
    "coco": (
        FormatOption("encoding", "Masks as", (("rle", "compressed RLE (exact)"), ("polygon", "polygons")),
                     "RLE reads back pixel for pixel; polygons are editable in other tools (IoU ≥ 0.99 per shape)",
                     in_summary=True),
        FormatOption("instances", "One annotation per", (("class", "class and image"),
                                                        ("components", "connected region"))),
    ),
    "paired-folders": (
        FormatOption("splits", "Splits", ((True, "train/ val/ test/ folders"), (False, "one folder")),
                     "Images with a split are written under a folder per split"),
    ),
}

VERSIONS = (("latest", "Latest correction (else the original GT)"), ("original", "Original GT only"))
PREDICTIONS = (
    ("none", "None: corrections and GT only"),
    ("accepted", "Accepted predictions too"),
    ("unreviewed", "Fill images without GT with the model's predictions"),
)
_CLASS_COLUMNS = ("Class", "Export as", "")


@dataclass(frozen=True)
class FormatChoice:
    name: str
    description: str
    reason: str = ""  # why it cannot be chosen; empty: it can

    short: str = ""  # the reason in a few words, beside the name in the list

    @property
    def enabled(self) -> bool:
        return not self.reason


def format_choices(dataset: Dataset) -> list[FormatChoice]:
    """Every writer, with the reason it cannot take ``dataset`` (a multi-label schema into a one-class-per-pixel
    layout; a writer that does not load)."""
    out = []
    for name in writer_names():
        try:
            w = get_writer(name)
        except Exception as e:  # noqa: BLE001 - a writer that does not import is shown as unavailable, not a crash
            log.warning("export format %s is unavailable: %s", name, e)
            out.append(FormatChoice(name, "", f"Not available in this build ({type(e).__name__}: {e}).",
                                    "not available"))
            continue
        reason = ""
        if dataset.schema.multilabel and not w.multilabel:
            reason = ("Holds one class per pixel, but this dataset's classes overlap (multi-label): they would be "
                      "flattened. Choose a format that keeps overlapping classes.")
        out.append(FormatChoice(name, w.description, reason, "one class per pixel: overlaps lost" if reason else ""))
    return out


def summary_text(plan: ExportPlan, *, format_label: str) -> str:
    """"412 images, 37 corrected, 3 classes → coco (compressed RLE)"."""
    c = plan.counts()
    parts = [f"{c.get('images', 0)} image{'s' if c.get('images', 0) != 1 else ''}",
             f"{c.get('correction', 0)} corrected"]
    for key, what in (("accepted_prediction", "accepted predictions"), ("model_prediction", "model predictions"),
                      ("none", "without a mask")):
        if c.get(key):
            parts.append(f"{c[key]} {what}")
    n = len(plan.schema)
    parts.append(f"{n} class{'es' if n != 1 else ''}")
    return ", ".join(parts) + f" → {format_label}"


def suggested_destination(dataset: Dataset, fmt: str) -> Path:
    """``<dataset>-<format>`` beside the dataset folder (a fresh name), or under ``~/segstudio-exports`` when that
    folder cannot be written (the bundled sample inside an installed app)."""
    src = dataset_folder(dataset)
    # permission bits decide, even for root: a folder marked read-only (a shared dataset) is left alone
    base = src.parent if is_writable_dir(src.parent) else Path.home() / "segstudio-exports"
    cand = base / f"{src.name}-{fmt}"
    i = 2
    while cand.exists():
        cand = base / f"{src.name}-{fmt}-{i}"
        i += 1
    return cand


class StatusLine(QWidget):
    """An icon and a line of text: fine (green check) or a problem (amber triangle) — no stylesheet needed."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.icon = QLabel()
        self.icon.setFixedWidth(18)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.icon)
        lay.addWidget(self.text, 1)
        self.ok = True

    def show_state(self, text: str, *, ok: bool) -> None:
        self.ok = ok
        self.text.setText(text)
        icon = qta.icon(_OK_ICON if ok else _ERROR_ICON, color=_OK_COLOUR if ok else _ERROR_COLOUR)
        self.icon.setPixmap(icon.pixmap(14, 14))


class ExportDialog(QDialog):
    def __init__(self, dataset: Dataset, workspace: Workspace | None, *, has_predictions: bool = False,
                 destination: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export Dataset")
        self.dataset, self.workspace = dataset, workspace
        self.plan: ExportPlan | None = None
        self._dest_edited = destination is not None
        self._timer = QTimer(self, singleShot=True, interval=SUMMARY_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        states = workspace.reviews.all() if workspace is not None else {}
        self._status_counts = Counter(states[s.id].status.value if s.id in states else "unreviewed" for s in dataset)
        self._split_counts = Counter(s.split or "unassigned" for s in dataset)

        lay = QVBoxLayout(self)
        lay.addWidget(self._build_format())
        lay.addWidget(self._build_destination())
        lay.addWidget(self._build_filters(has_predictions))
        lay.addWidget(self._build_classes(), 1)
        self.options_box = QGroupBox("Format options")
        self.options_form = QFormLayout(self.options_box)
        self.option_boxes: dict[str, QComboBox] = {}
        lay.addWidget(self.options_box)
        self.summary = StatusLine("exportSummary")
        lay.addWidget(self.summary)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

        first = next((c.name for c in self.formats if c.enabled), None)
        if first is not None:
            self.set_format(first)
        self._on_format_box_changed(self.format_box.currentIndex())
        self.format_box.currentIndexChanged.connect(self._on_format_box_changed)  # once every part exists
        self.set_destination(destination if destination is not None else
                             suggested_destination(dataset, self.format_name() or "export"), edited=self._dest_edited)
        self.resize(680, self.sizeHint().height())
        self.refresh()

    # building ---------------------------------------------------------------------------------------------------
    def _build_format(self) -> QWidget:
        box = QGroupBox("Format")
        form = QFormLayout(box)
        self.format_box = QComboBox()
        self.format_box.setObjectName("exportFormat")
        self.formats = format_choices(self.dataset)
        model = QStandardItemModel(self.format_box)
        self.format_box.setModel(model)
        for c in self.formats:
            self.format_box.addItem(c.name if c.enabled else f"{c.name}  ({c.short})", c.name)
            item = model.item(model.rowCount() - 1)
            item.setEnabled(c.enabled)
            item.setToolTip(c.reason or c.description)
        self.format_description = QLabel()
        self.format_description.setObjectName("exportFormatDescription")
        self.format_description.setWordWrap(True)
        form.addRow("Write as", self.format_box)
        form.addRow("", self.format_description)
        return box

    def _build_destination(self) -> QWidget:
        box = QGroupBox("Destination (a new or empty folder)")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.dest_edit = QLineEdit()
        self.dest_edit.setObjectName("exportDestination")
        self.dest_edit.textEdited.connect(self._on_dest_edit_edited)
        self.dest_edit.textChanged.connect(self._on_dest_edit_changed)
        browse = QPushButton("Choose…")
        browse.setObjectName("exportBrowse")
        browse.clicked.connect(self._on_browse_clicked)
        row.addWidget(self.dest_edit, 1)
        row.addWidget(browse)
        v.addLayout(row)
        self.dest_status = StatusLine("exportDestinationStatus")
        v.addWidget(self.dest_status)
        return box

    def _build_filters(self, has_predictions: bool) -> QWidget:
        box = QGroupBox("What to export")
        form = QFormLayout(box)
        self.status_checks: dict[str, QCheckBox] = {}
        row = QHBoxLayout()
        for st in ReviewStatus:
            cb = QCheckBox(f"{st.value} ({self._status_counts.get(st.value, 0)})")
            cb.setObjectName(f"exportStatus_{st.value}")
            cb.setChecked(st != ReviewStatus.REJECTED)  # a rejected label is not one to train on
            cb.setEnabled(self.workspace is not None)
            cb.toggled.connect(self._schedule)
            self.status_checks[st.value] = cb
            row.addWidget(cb)
        row.addStretch(1)
        form.addRow("Review status", row)
        self.split_checks: dict[str, QCheckBox] = {}
        row = QHBoxLayout()
        for name in sorted(self._split_counts):
            cb = QCheckBox(f"{name} ({self._split_counts[name]})")
            cb.setObjectName(f"exportSplit_{name}")
            cb.setChecked(True)
            cb.toggled.connect(self._schedule)
            self.split_checks[name] = cb
            row.addWidget(cb)
        row.addStretch(1)
        form.addRow("Splits", row)
        self.version_box = QComboBox()
        self.version_box.setObjectName("exportVersion")
        for value, text in VERSIONS:
            self.version_box.addItem(text, value)
        self.version_box.currentIndexChanged.connect(self._schedule)
        form.addRow("Masks", self.version_box)
        self.predictions_box = QComboBox()
        self.predictions_box.setObjectName("exportPredictions")
        model = QStandardItemModel(self.predictions_box)
        self.predictions_box.setModel(model)
        for value, text in PREDICTIONS:
            self.predictions_box.addItem(text, value)
            if value == "unreviewed" and not has_predictions:
                item = model.item(model.rowCount() - 1)
                item.setEnabled(False)
                item.setToolTip("The workspace has no model predictions yet (Model → Predict All Images).")
        self.predictions_box.currentIndexChanged.connect(self._schedule)
        form.addRow("Predictions", self.predictions_box)
        return box

    def _build_classes(self) -> QWidget:
        box = QGroupBox("Classes (untick to leave out; give two classes one name to merge them)")
        v = QVBoxLayout(box)
        schema = self.dataset.schema
        bg = background_class(schema)
        self.class_table = QTableWidget(len(schema), len(_CLASS_COLUMNS))
        self.class_table.setObjectName("exportClasses")
        self.class_table.setHorizontalHeaderLabels(list(_CLASS_COLUMNS))
        self.class_table.verticalHeader().setVisible(False)
        hdr = self.class_table.horizontalHeader()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.class_table.blockSignals(True)
        for r, c in enumerate(schema):
            name = QTableWidgetItem(c.name)
            flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
            if bg is not None and c.name == bg.name:
                flags = Qt.ItemFlag.ItemIsUserCheckable  # kept always: what no other class covers
                name.setToolTip("The background is always exported: the pixels no other class covers.")
            name.setFlags(flags)
            name.setCheckState(Qt.CheckState.Checked)
            name.setIcon(qta.icon("fa5s.square-full", color="#{:02x}{:02x}{:02x}".format(*c.colour)))
            new = QTableWidgetItem(c.name)
            new.setToolTip("The class's name in the export; classes given the same name merge into one.")
            note = QTableWidgetItem("")
            note.setFlags(Qt.ItemFlag.ItemIsEnabled)
            for col, item in enumerate((name, new, note)):
                self.class_table.setItem(r, col, item)
        self.class_table.blockSignals(False)
        self.class_table.itemChanged.connect(self._on_class_table_item_changed)
        v.addWidget(self.class_table)
        return box

    # reading ----------------------------------------------------------------------------------------------------
    def format_name(self) -> str | None:
        data = self.format_box.currentData()
        return str(data) if data is not None else None

    def destination(self) -> Path | None:
        text = self.dest_edit.text().strip()
        return Path(text).expanduser() if text else None

    def _class_rows(self) -> list[tuple[str, bool, str]]:
        """``(name, kept, export name)`` per class, in schema order."""
        rows = []
        for r in range(self.class_table.rowCount()):
            name = self.class_table.item(r, 0)
            if name is None:  # a row being filled
                continue
            rows.append((name.text(), name.checkState() == Qt.CheckState.Checked,
                         cell_text(self.class_table, r, 1).strip()))
        return rows

    def options(self) -> dict[str, Any]:
        return {key: box.currentData() for key, box in self.option_boxes.items()}

    def format_label(self) -> str:
        fmt = self.format_name() or "?"
        specs = {o.key: o for o in FORMAT_OPTIONS.get(fmt, ())}
        texts = [box.currentText() for key, box in self.option_boxes.items() if specs[key].in_summary]
        return f"{fmt}, {texts[0]}" if texts else fmt

    def request(self, *, out: Path | None = None) -> ExportRequest:
        """The request as the dialog stands (``out`` stands in for the destination: the live preview)."""
        statuses = None
        if self.workspace is not None and not all(cb.isChecked() for cb in self.status_checks.values()):
            statuses = frozenset(k for k, cb in self.status_checks.items() if cb.isChecked())
        splits = None
        if not all(cb.isChecked() for cb in self.split_checks.values()):
            splits = frozenset(k for k, cb in self.split_checks.items() if cb.isChecked())
        rows = self._class_rows()
        classes = None if all(kept for _, kept, _ in rows) else tuple(n for n, kept, _ in rows if kept)
        rename = {n: new for n, kept, new in rows if kept and new and new != n}
        dest = out if out is not None else self.destination()
        return ExportRequest(
            dataset=self.dataset, workspace=self.workspace, to=self.format_name() or "", out=dest or Path(),
            statuses=statuses, splits=splits, classes=classes, rename=rename,
            version=str(self.version_box.currentData()), predictions=str(self.predictions_box.currentData()),
            options=self.options(),
        )

    # setting (the view and tests) -------------------------------------------------------------------------------
    def set_format(self, name: str) -> None:
        i = self.format_box.findData(name)
        if i < 0:
            raise KeyError(name)
        self.format_box.setCurrentIndex(i)

    def set_destination(self, path: str | Path, *, edited: bool = True) -> None:
        self._dest_edited = self._dest_edited or edited
        self.dest_edit.setText(str(path))

    def set_statuses(self, statuses: set[str] | frozenset[str]) -> None:
        for key, cb in self.status_checks.items():
            cb.setChecked(key in statuses)

    def set_splits(self, splits: set[str] | frozenset[str]) -> None:
        for key, cb in self.split_checks.items():
            cb.setChecked(key in splits)

    def set_class(self, name: str, *, kept: bool | None = None, export_as: str | None = None) -> None:
        for r in range(self.class_table.rowCount()):
            if cell_text(self.class_table, r, 0) == name:
                if kept is not None:
                    cell(self.class_table, r, 0).setCheckState(Qt.CheckState.Checked if kept else Qt.CheckState.Unchecked)
                if export_as is not None:
                    cell(self.class_table, r, 1).setText(export_as)
                return
        raise KeyError(name)

    def set_version(self, value: str) -> None:
        self.version_box.setCurrentIndex(self.version_box.findData(value))

    def set_predictions(self, mode: str) -> None:
        self.predictions_box.setCurrentIndex(self.predictions_box.findData(mode))

    def set_option(self, key: str, value: Any) -> None:
        box = self.option_boxes[key]
        box.setCurrentIndex(box.findData(value))

    # live checks ------------------------------------------------------------------------------------------------
    def check_destination(self) -> str:
        """Why the destination cannot take the export ("" when it can)."""
        dest = self.destination()
        if dest is None:
            return "Choose a folder to export into."
        try:
            resolved = check_destination(dest, source=dataset_folder(self.dataset))
        except SegstudioError as e:
            return e.message + (f" {e.fix}" if e.fix else "")
        if self.workspace is not None:
            ws = self.workspace.folder.resolve()
            if resolved == ws or resolved.is_relative_to(ws):
                return "An export never writes into the workspace. Choose a folder outside it."
        parent = next((p for p in (resolved, *resolved.parents) if p.exists()), None)
        if parent is None or not is_writable_dir(parent):
            return f"{parent or resolved} cannot be written. Choose a folder you can write to."
        return ""

    def _schedule(self, *_args: object) -> None:
        self._timer.start()

    def refresh(self) -> None:
        """Check the destination and plan the export as the dialog stands; show both; enable Export."""
        self._timer.stop()
        dest_problem = self.check_destination()
        dest = self.destination()
        if dest_problem:
            self.dest_status.show_state(dest_problem, ok=False)
        else:
            assert dest is not None
            what = "an empty folder" if dest.exists() else "a new folder"
            self.dest_status.show_state(f"Writes into {what}.", ok=True)
        self._update_class_notes()
        self.plan = None
        fmt = self.format_name()
        if fmt is None:
            self.summary.show_state("No export format can hold this dataset.", ok=False)
        else:
            # the preview plans for a destination that is fine: the destination's own problem is shown above
            preview = None if not dest_problem else Path(tempfile.gettempdir()) / f"segstudio-preview-{os.getpid()}"
            try:
                plan = plan_export(self.request(out=preview))
            except SegstudioError as e:
                self.summary.show_state(e.message + (f"\nFix: {e.fix}" if e.fix else ""), ok=False)
            else:
                self.plan = plan if not dest_problem else None
                self.summary.show_state(summary_text(plan, format_label=self.format_label()), ok=True)
        self.export_button.setEnabled(self.plan is not None)
        self.export_button.setToolTip("" if self.plan is not None else "Fix what is marked above first.")

    def _update_class_notes(self) -> None:
        rows = self._class_rows()
        groups = Counter((new or name) for name, kept, new in rows if kept)
        self.class_table.blockSignals(True)
        for r, (name, kept, new) in enumerate(rows):
            target = new or name
            if not kept:
                note = "left out"
            elif groups[target] > 1:
                note = f"merged into {target!r}"
            else:
                note = "renamed" if target != name else ""
            cell(self.class_table, r, 2).setText(note)
        self.class_table.blockSignals(False)

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_format_box_changed(self, _index: int) -> None:
        fmt = self.format_name()
        choice = next((c for c in self.formats if c.name == fmt), None)
        self.format_description.setText(choice.description if choice is not None else "")
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self.option_boxes = {}
        for opt in FORMAT_OPTIONS.get(fmt or "", ()):
            box = QComboBox()
            box.setObjectName(f"exportOption_{opt.key}")
            for value, text in opt.choices:
                box.addItem(text, value)
            box.setToolTip(opt.tip)
            box.currentIndexChanged.connect(self._schedule)
            self.options_form.addRow(opt.label, box)
            self.option_boxes[opt.key] = box
        self.options_box.setVisible(bool(self.option_boxes))
        if not self._dest_edited and fmt is not None:
            self.dest_edit.setText(str(suggested_destination(self.dataset, fmt)))
        self._schedule()

    def _on_dest_edit_edited(self, _text: str) -> None:
        self._dest_edited = True

    def _on_dest_edit_changed(self, _text: str) -> None:
        self._schedule()

    def _on_browse_clicked(self) -> None:
        start = self.destination()
        folder = QFileDialog.getExistingDirectory(self, "Export into (a new or empty folder)",
                                                  str(start.parent if start is not None else Path.home()))
        if folder:
            self.set_destination(folder)

    def _on_class_table_item_changed(self, _item: QTableWidgetItem) -> None:
        self._schedule()

    def accept(self) -> None:
        """Plan once more; on an error the dialog stays open and says what is wrong."""
        self.refresh()
        if self.plan is None:
            return
        super().accept()
