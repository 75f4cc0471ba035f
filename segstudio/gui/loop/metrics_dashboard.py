"""Model → Metrics Dashboard…: the open predictions (the current model's, or a folder's) scored against the ground
truth or the corrections, the way ``segstudio evaluate`` scores them (``engine.evaluate.iter_evaluation``: the same
pooled per-class figures and per-image means), plus the confusion matrix of the pixels.

Four tabs: the dataset table per class (Dice, IoU, precision, recall, specificity, pixels), the per-image table
(sortable; a double-click opens the image in the review view), the histogram of per-image Dice and the confusion
matrix (counts, or shares of each true class). It is computed in the background on a
:class:`~segstudio.gui.common.workers.GeneratorWorker`, with progress and Stop in the dialog; the per-image table
and the per-class table can be saved as CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.engine.dataset_metrics import DashboardResult, dashboard_events
from segstudio.gui.common.errors import show_error
from segstudio.gui.common.tables import cell_text, header_text
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.metrics.confusion import normalize_confusion

REFERENCES = (("gt", "Ground truth"), ("corrections", "Corrections (the latest saved, else the ground truth)"))
#: bins of the per-image Dice histogram over [0, 1]
HIST_BINS = 20


class DiceHistogram(QWidget):
    """Per-image Dice in :data:`HIST_BINS` bins over [0, 1], with the count above each bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("diceHistogram")
        self.setMinimumSize(360, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.counts = np.zeros(HIST_BINS, np.int64)

    def set_values(self, values: Sequence[float]) -> None:
        v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
        self.counts = np.histogram(np.clip(v, 0.0, 1.0), bins=HIST_BINS, range=(0.0, 1.0))[0]
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.windowText().color()
        left, right, top, bottom = 44, 14, 16, 34
        w, h = self.width() - left - right, self.height() - top - bottom
        if w <= 0 or h <= 0:
            return
        peak = max(1, int(self.counts.max()))
        p.setPen(QPen(text))
        p.drawLine(left, top + h, left + w, top + h)
        p.drawLine(left, top, left, top + h)
        for k in range(0, 11, 2):  # x ticks every 0.1
            x = left + w * k / 10
            p.drawLine(int(x), top + h, int(x), top + h + 4)
            p.drawText(QRectF(x - 20, top + h + 5, 40, 14), Qt.AlignmentFlag.AlignHCenter, f"{k / 10:.1f}")
        p.drawText(QRectF(left, top + h + 18, w, 14), Qt.AlignmentFlag.AlignHCenter, "Dice per image")
        for frac in (0.0, 0.5, 1.0):
            y = top + h - h * frac
            p.drawText(QRectF(0, y - 7, left - 6, 14), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{round(peak * frac)}")
        bar = QColor(pal.highlight().color())
        bw = w / HIST_BINS
        for i, n in enumerate(self.counts):
            if not n:
                continue
            bh = h * n / peak
            rect = QRectF(left + i * bw + 1, top + h - bh, bw - 2, bh)
            p.fillRect(rect, QBrush(bar))
            p.drawText(QRectF(rect.x() - 6, rect.y() - 15, rect.width() + 12, 14), Qt.AlignmentFlag.AlignHCenter,
                       str(int(n)))
        p.end()


class _SortItem(QTableWidgetItem):
    """Sorts by the number in UserRole (a figure that does not apply sorts first, as −1); text otherwise."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, float) and isinstance(b, float):
            return a < b
        return super().__lt__(other)


def _num_item(value: float, *, digits: int = 4) -> QTableWidgetItem:
    item = _SortItem("—" if not math.isfinite(value) else f"{value:.{digits}f}")
    item.setData(Qt.ItemDataRole.UserRole, float(value) if math.isfinite(value) else -1.0)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class MetricsDashboard(QDialog):
    sig_compute_requested = Signal(str)  # reference key
    sig_stop_requested = Signal()
    sig_open_sample = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metricsDashboard")
        self.setWindowTitle("Metrics Dashboard")
        self.dashboard: DashboardResult | None = None
        self.source_label = QLabel(self)
        self.source_label.setWordWrap(True)
        self.reference = QComboBox(self)
        self.reference.setObjectName("metricsReference")
        for key, text in REFERENCES:
            self.reference.addItem(text, key)
        self.compute_button = QPushButton("Compute", self)
        self.compute_button.setObjectName("metricsCompute")
        self.compute_button.clicked.connect(lambda: self.sig_compute_requested.emit(self.reference.currentData()))
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.sig_stop_requested.emit)
        self.progress = QProgressBar(self)
        self.progress.setFormat("%v/%m images")
        self.summary = QLabel("Press Compute to score the predictions.", self)
        self.summary.setObjectName("metricsSummary")
        self.summary.setWordWrap(True)
        self.per_class = QTableWidget(self)
        self.per_class.setObjectName("metricsPerClass")
        self.per_image = QTableWidget(self)
        self.per_image.setObjectName("metricsPerImage")
        self.per_image.setSortingEnabled(True)
        self.per_image.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.per_image.cellDoubleClicked.connect(self._on_image_double_clicked)
        self.per_image.setToolTip("Double-click an image to open it in the review view; click a header to sort")
        self.histogram = DiceHistogram(self)
        self.confusion = QTableWidget(self)
        self.confusion.setObjectName("metricsConfusion")
        self.shares = QCheckBox("Shares of each true class (rows sum to 100 %)", self)
        self.shares.setChecked(True)
        self.shares.toggled.connect(lambda _on: self._fill_confusion())
        self.confusion_note = QLabel(self)
        self.confusion_note.setWordWrap(True)
        conf_page = QWidget(self)
        cl = QVBoxLayout(conf_page)
        cl.addWidget(self.shares)
        cl.addWidget(self.confusion, 1)
        cl.addWidget(self.confusion_note)
        for table in (self.per_class, self.per_image, self.confusion):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.setAlternatingRowColors(True)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.per_class, "Per class")
        self.tabs.addTab(self.per_image, "Per image")
        self.tabs.addTab(self.histogram, "Dice histogram")
        self.tabs.addTab(conf_page, "Confusion matrix")
        self.save_button = QPushButton("Save as CSV…", self)
        self.save_button.setObjectName("metricsSave")
        self.save_button.clicked.connect(self._save_csv_dialog)
        top = QHBoxLayout()
        top.addWidget(QLabel("Score against", self))
        top.addWidget(self.reference, 1)
        top.addWidget(self.compute_button)
        top.addWidget(self.stop_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.save_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.source_label)
        lay.addLayout(top)
        lay.addWidget(self.progress)
        lay.addWidget(self.tabs, 1)
        lay.addLayout(bottom)
        self.resize(1060, 640)
        self.set_busy(False)

    # state ------------------------------------------------------------------------------------------------------
    def set_source(self, text: str, *, ready: bool) -> None:
        self.source_label.setText(text)
        self.compute_button.setEnabled(ready and not self.stop_button.isVisible())

    def set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.stop_button.setVisible(busy)
        self.compute_button.setEnabled(not busy)
        self.reference.setEnabled(not busy)
        self.save_button.setEnabled(not busy and self.dashboard is not None)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def show_result(self, result: DashboardResult) -> None:
        self.dashboard = result
        ev = result.evaluation
        names = {c.class_id: c.name for c in ev.summary.per_class}
        spec = result.specificity()
        scored = set(ev.summary.scored_ids)
        unit = result.surface_unit
        heads = ["class", "Dice", "IoU", "precision", "recall", "specificity", f"HD95 ({unit})", f"ASD ({unit})",
                 "reference px", "predicted px"]
        rows = [c for c in ev.summary.per_class]
        self.per_class.clear()
        self.per_class.setColumnCount(len(heads))
        self.per_class.setHorizontalHeaderLabels(heads)
        self.per_class.setRowCount(len(rows) + 1)
        for r, c in enumerate(rows):
            label = c.name + ("" if c.class_id in scored else " (not in the means)")
            self.per_class.setItem(r, 0, QTableWidgetItem(label))
            for k, v in enumerate((c.dice, c.iou, c.precision, c.recall, spec.get(c.class_id, math.nan)), start=1):
                self.per_class.setItem(r, k, _num_item(v))
            for k, which in ((6, 0), (7, 1)):
                mean, left_out = result.surface_mean(c.class_id, which) if c.class_id in scored else (math.nan, 0)
                item = _num_item(mean, digits=2)
                if left_out:
                    item.setText(item.text() + f" (+{left_out} ∞)")
                    item.setToolTip(f"{left_out} image(s) have {c.name} in only one of the two masks: an infinite "
                                    "distance, left out of the mean")
                self.per_class.setItem(r, k, item)
            for k, v in ((8, c.gt_pixels), (9, c.pred_pixels)):
                item = QTableWidgetItem(f"{v:,}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.per_class.setItem(r, k, item)
        pooled = QTableWidgetItem("mean (pooled pixels)")
        font = pooled.font()
        font.setBold(True)
        pooled.setFont(font)
        last = len(rows)
        self.per_class.setItem(last, 0, pooled)
        for k, v in ((1, ev.summary.mean_dice), (2, ev.summary.mean_iou)):
            item = _num_item(v)
            item.setFont(font)
            self.per_class.setItem(last, k, item)
        self.per_class.resizeColumnsToContents()
        # per image
        fg = [cid for cid in ev.summary.scored_ids]
        heads = ["sample", "mean Dice", "mean IoU", "pixel accuracy", f"max HD95 ({unit})",
                 *[f"Dice {names[c]}" for c in fg]]
        self.per_image.setSortingEnabled(False)
        self.per_image.clear()
        self.per_image.setColumnCount(len(heads))
        self.per_image.setHorizontalHeaderLabels(heads)
        self.per_image.setRowCount(len(ev.samples))
        for r, s in enumerate(ev.samples):
            item = _SortItem(str(s.sample_id))
            item.setData(Qt.ItemDataRole.UserRole, str(s.sample_id))
            self.per_image.setItem(r, 0, item)
            hd = [v[0] for v in result.surface.get(str(s.sample_id), {}).values() if not math.isnan(v[0])]
            worst_hd = max(hd) if hd else math.nan
            for k, v in enumerate((s.mean_dice, s.mean_iou, s.pixel_accuracy), start=1):
                self.per_image.setItem(r, k, _num_item(v))
            item = _num_item(worst_hd if math.isfinite(worst_hd) else math.nan, digits=2)
            if math.isinf(worst_hd):
                item.setText("∞")
                item.setData(Qt.ItemDataRole.UserRole, 1e300)
            self.per_image.setItem(r, 4, item)
            for k, cid in enumerate(fg, start=5):
                self.per_image.setItem(r, k, _num_item(s.score(cid).dice))
        self.per_image.setSortingEnabled(True)
        self.per_image.sortItems(1, Qt.SortOrder.AscendingOrder)  # worst first
        self.per_image.resizeColumnsToContents()
        self.histogram.set_values([s.mean_dice for s in ev.samples])
        self._fill_confusion()
        ref = dict(REFERENCES)[result.reference]
        problems = f" · {len(ev.problems)} could not be scored (first: {ev.problems[0].sample_id}: " \
                   f"{ev.problems[0].message})" if ev.problems else ""
        self.summary.setText(
            f"{len(ev.samples)} image(s) against {ref.split(' (')[0].lower()}: mean Dice {ev.dice:.4f} over the "
            f"pooled pixels, {ev.sample_dice:.4f} per image · IoU {ev.iou:.4f} · pixel accuracy "
            f"{ev.pixel_accuracy:.4f}{problems}")
        self.set_busy(False)

    def _fill_confusion(self) -> None:
        res = self.dashboard
        self.confusion.clear()
        if res is None:
            return
        if res.confusion is None:
            self.confusion.setRowCount(0)
            self.confusion.setColumnCount(0)
            self.confusion_note.setText("Multi-label masks: a pixel may hold several classes, so there is no "
                                        "confusion matrix; the per-class table has each class's own counts.")
            return
        m = res.confusion
        shares = self.shares.isChecked()
        norm = normalize_confusion(m, over="true")
        n = len(res.class_ids)
        self.confusion.setRowCount(n)
        self.confusion.setColumnCount(n)
        self.confusion.setHorizontalHeaderLabels([f"→ {name}" for name in res.class_names])
        self.confusion.setVerticalHeaderLabels(list(res.class_names))
        for i in range(n):
            for j in range(n):
                share = norm[i, j]
                text = ("—" if not math.isfinite(share) else f"{share:.1%}") if shares else f"{int(m[i, j]):,}"
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(f"{res.class_names[i]} pixels predicted as {res.class_names[j]}: {int(m[i, j]):,}"
                                + (f" ({share:.2%} of {res.class_names[i]})" if math.isfinite(share) else ""))
                if math.isfinite(share) and share > 0:
                    hue = 120 if i == j else 0  # green on the diagonal, red off it
                    item.setBackground(QColor.fromHsv(hue, int(40 + 160 * math.sqrt(share)), 200))
                    item.setForeground(QColor(20, 20, 20))
                self.confusion.setItem(i, j, item)
        self.confusion.resizeColumnsToContents()
        self.confusion_note.setText("Rows: the reference class of a pixel; columns: the predicted class. "
                                    + ("Each row shows where that class's pixels went; the diagonal is its recall."
                                       if shares else "Pixel counts."))

    # actions ----------------------------------------------------------------------------------------------------
    def _on_image_double_clicked(self, row: int, _col: int) -> None:
        item = self.per_image.item(row, 0)
        if item is not None:
            self.sig_open_sample.emit(item.text())

    def _save_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the per-image figures", "metrics.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_csv(Path(path))
            except OSError as exc:
                show_error("Could not save the figures", f"{path}: {exc}")

    def save_csv(self, path: Path) -> tuple[Path, Path]:
        """The per-image table to ``path`` and the per-class table beside it (``<stem>-per-class.csv``)."""
        from segstudio.core.atomic import atomic_write_text

        out = []
        for table, target in ((self.per_image, path), (self.per_class, path.with_name(f"{path.stem}-per-class.csv"))):
            rows = [[header_text(table, c) for c in range(table.columnCount())]]
            for r in range(table.rowCount()):
                rows.append([cell_text(table, r, c) for c in range(table.columnCount())])
            buf = io.StringIO()
            csv.writer(buf).writerows(rows)
            atomic_write_text(target, buf.getvalue())
            out.append(target)
        return out[0], out[1]


class MetricsController(QObject):
    """Owns Model → Metrics Dashboard…: the dialog, and the background job that fills it."""

    def __init__(self, *, review: Any, navigation: Any, show_message: Callable[[str, int], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.review, self.navigation = review, navigation
        self._show_message = show_message
        self._parent = parent
        self.dialog: MetricsDashboard | None = None
        self._worker: GeneratorWorker | None = None

    def running(self) -> bool:
        return self._worker is not None and self._worker.running

    def show_dashboard(self) -> MetricsDashboard | None:
        if self.review.dataset is None:
            self._show_message("Open a dataset first.", 5000)
            return None
        if self.dialog is None:
            self.dialog = MetricsDashboard(self._parent)
            self.dialog.sig_compute_requested.connect(self.compute)
            self.dialog.sig_stop_requested.connect(self.stop)
            self.dialog.sig_open_sample.connect(self.navigation.go_to_sample)
        self._describe_source()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _predicted_ids(self) -> list[str]:
        ds, preds = self.review.dataset, self.review.predictions
        if ds is None or preds is None:
            return []
        return [s.id for s in ds.samples if preds.path_for(s.id) is not None]

    def _describe_source(self) -> None:
        if self.dialog is None:
            return
        from segstudio.workspace.model_predictions import ModelPredictions

        preds = self.review.predictions
        n = len(self._predicted_ids())
        if preds is None:
            text = ("No predictions are open: predict with a model (Model → Predict All Images) or open a folder of "
                    "predicted masks (File → Open Predictions…), then Compute.")
        elif isinstance(preds, ModelPredictions):
            text = f"Predictions: the current model's, {n} image(s) predicted."
        else:
            text = f"Predictions: the folder {preds.folder}, {n} image(s) with a mask."
        self.dialog.set_source(text, ready=n > 0)

    def compute(self, reference: str = "gt") -> bool:
        ds, dlg = self.review.dataset, self.dialog
        if ds is None or dlg is None or self.running():
            return False
        ids = self._predicted_ids()
        if not ids:
            self._describe_source()
            return False
        self.navigation.save_current(quiet=True)  # corrections are scored as saved
        review = self.review
        if reference == "corrections":
            ref: Callable[[str], np.ndarray | None] = review.reference_mask
        else:
            ref = ds.load_gt
        source = dlg.source_label.text()

        def start(token: Any) -> Iterator[Any]:
            return dashboard_events(token, ds, sample_ids=ids, reference=ref,
                                    prediction=lambda sid: review.prediction_mask(sid), reference_name=reference,
                                    source=source)

        worker = GeneratorWorker(start, name="metrics-dashboard", parent=self)
        worker.sig_progress.connect(self._on_progress)
        worker.sig_finished.connect(self._on_finished)
        worker.sig_cancelled.connect(lambda _last: self._on_stopped())
        worker.sig_errored.connect(self._on_errored)
        self._worker = worker
        dlg.set_progress(0, len(ids))
        dlg.set_busy(True)
        worker.start()
        return True

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return self._worker.stop_and_wait(timeout_s) if self._worker is not None else True

    def _on_progress(self, ev: object) -> None:
        from segstudio.engine.evaluate import SampleEvaluated

        if isinstance(ev, SampleEvaluated) and self.dialog is not None:
            self.dialog.set_progress(ev.index + 1, ev.total)

    def _on_finished(self, last: object) -> None:
        if self.dialog is None:
            return
        if isinstance(last, DashboardResult):
            self.dialog.show_result(last)
        else:
            self.dialog.set_busy(False)

    def _on_stopped(self) -> None:
        if self.dialog is not None:
            self.dialog.set_busy(False)
            self.dialog.summary.setText("Stopped: press Compute to score again.")

    def _on_errored(self, message: str, details: str) -> None:
        if self.dialog is not None:
            self.dialog.set_busy(False)
        show_error("Cannot compute the metrics", message, details)
