"""Model → Metrics Dashboard on the real Montgomery set with a folder of predictions (its GT eroded a little, one
image with the lungs swapped): the figures equal ``segstudio evaluate``'s, the confusion matrix is the pixels'
own, the worst image sorts first and opens on a double-click, the corrections can be the reference, and the
tables save as CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from segstudio.gui.loop.metrics_dashboard import HIST_BINS, MetricsDashboard
from segstudio.gui.main_window import MainWindow


@pytest.fixture
def dashboard(show_window, montgomery: Path, montgomery_predictions, qtbot):  # noqa: ANN001, ANN201
    folder, worst = montgomery_predictions
    win: MainWindow = show_window(montgomery, predictions=folder)
    dlg = win.metrics.show_dashboard()
    assert isinstance(dlg, MetricsDashboard) and dlg.isVisible()
    yield win, dlg, folder, worst
    win.metrics.stop_and_wait(60)
    dlg.close()


def _compute(win: MainWindow, dlg: MetricsDashboard, qtbot, reference: str = "gt") -> None:  # noqa: ANN001
    dlg.reference.setCurrentIndex(dlg.reference.findData(reference))
    dlg.compute_button.click()
    qtbot.waitUntil(lambda: not win.metrics.running() and dlg.dashboard is not None
                    and dlg.dashboard.reference == reference, timeout=60_000)


def test_the_figures_are_segstudio_evaluates_and_the_pixels_own(dashboard, qtbot, montgomery: Path,
                                                                capsys) -> None:  # noqa: ANN001
    from segstudio.cli import main

    win, dlg, folder, worst = dashboard
    assert "folder" in dlg.source_label.text() and "40 image(s)" in dlg.source_label.text()
    _compute(win, dlg, qtbot)
    res = dlg.dashboard
    ev = res.evaluation
    assert len(ev.samples) == 40
    assert main(["evaluate", str(folder), str(montgomery), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert abs(cli["dice"] - ev.dice) < 1e-6 and abs(cli["sample_dice"] - ev.sample_dice) < 1e-6
    # the confusion matrix, counted here independently over every image
    ds = win.review.dataset
    expect = np.zeros((3, 3), np.int64)
    for s in ds.samples:
        gt = ds.load_gt(s.id).astype(np.int64)
        pred = win.review.prediction_mask(s.id).astype(np.int64)
        expect += np.bincount(gt.ravel() * 3 + pred.ravel(), minlength=9).reshape(3, 3)
    assert res.class_ids == (0, 1, 2) and np.array_equal(res.confusion, expect)
    # the swapped image's lungs land in the other lung's column
    assert expect[1, 2] > 0 and expect[2, 1] > 0
    tn = expect.sum() - expect[1].sum() - expect[:, 1].sum() + expect[1, 1]
    assert abs(res.specificity()[1] - tn / (tn + expect[:, 1].sum() - expect[1, 1])) < 1e-12
    # the tables
    assert dlg.per_class.rowCount() == 4 and dlg.per_class.item(1, 0).text() == "left lung"
    assert dlg.per_class.item(1, 1).text() == f"{ev.summary.score(1).dice:.4f}"
    assert dlg.per_image.rowCount() == 40 and dlg.per_image.item(0, 0).text() == worst  # worst first
    assert int(dlg.histogram.counts.sum()) == 40 and len(dlg.histogram.counts) == HIST_BINS
    assert dlg.confusion.rowCount() == 3 and dlg.confusion.item(1, 1).text().endswith("%")
    dlg.shares.setChecked(False)
    assert dlg.confusion.item(1, 2).text() == f"{int(expect[1, 2]):,}"
    assert "mean Dice" in dlg.summary.text() and "40 image(s)" in dlg.summary.text()
    # surface distances: the metrics' own HD95 / ASD, in pixels here (the set has no pixel spacing)
    from segstudio.metrics import average_surface_distance, hd95

    some = ds.samples[3].id
    gt, pred = ds.load_gt(some), win.review.prediction_mask(some)
    assert res.surface_unit == "px" and "HD95 (px)" in dlg.per_class.horizontalHeaderItem(6).text()
    assert res.surface[some][1][0] == pytest.approx(hd95(gt == 1, pred == 1), rel=1e-12)
    assert res.surface[some][2][1] == pytest.approx(average_surface_distance(gt == 2, pred == 2), rel=1e-12)
    mean_hd, _ = res.surface_mean(1, 0)
    assert dlg.per_class.item(1, 6).text().startswith(f"{mean_hd:.2f}")
    # sorting by a column and opening the worst image from the table
    dlg.per_image.sortItems(1, Qt.SortOrder.DescendingOrder)
    assert dlg.per_image.item(39, 0).text() == worst
    dlg.per_image.cellDoubleClicked.emit(39, 1)
    qtbot.waitUntil(lambda: win.session.current is not None and win.session.current.sample.id == worst,
                    timeout=10_000)


def test_with_a_pixel_spacing_the_distances_are_in_mm(dashboard, qtbot) -> None:  # noqa: ANN001
    from segstudio.metrics import hd95

    win, dlg, _folder, _worst = dashboard
    ds = win.review.dataset
    ds.spacing = (0.7, 0.5)  # as a classes.json "spacing" gives it
    _compute(win, dlg, qtbot)
    res = dlg.dashboard
    some = ds.samples[5].id
    gt, pred = ds.load_gt(some), win.review.prediction_mask(some)
    assert res.surface_unit == "mm" and "HD95 (mm)" in dlg.per_class.horizontalHeaderItem(6).text()
    assert res.surface[some][1][0] == pytest.approx(hd95(gt == 1, pred == 1, spacing=(0.7, 0.5)), rel=1e-12)
    assert res.surface[some][1][0] != pytest.approx(hd95(gt == 1, pred == 1), rel=1e-3)


def test_corrections_as_reference_and_csv(dashboard, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    win, dlg, folder, worst = dashboard
    ws = win.review.workspace
    pred = win.review.prediction_mask(worst)
    ws.versions.save(worst, pred, note="corrected to the prediction")  # the reviewer accepts the prediction
    _compute(win, dlg, qtbot, "gt")
    against_gt = {s.sample_id: s.mean_dice for s in dlg.dashboard.evaluation.samples}
    _compute(win, dlg, qtbot, "corrections")
    against_corr = {s.sample_id: s.mean_dice for s in dlg.dashboard.evaluation.samples}
    assert against_gt[worst] < 0.1 and against_corr[worst] == pytest.approx(1.0)
    others = [sid for sid in against_gt if sid != worst]
    assert all(against_gt[s] == against_corr[s] for s in others)
    per_image, per_class = dlg.save_csv(tmp_path / "m.csv")
    rows = list(csv.reader(per_image.open(encoding="utf-8")))
    assert rows[0][:3] == ["sample", "mean Dice", "mean IoU"] and len(rows) == 41
    assert list(csv.reader(per_class.open(encoding="utf-8")))[1][0] == "background (not in the means)"


def test_without_predictions_the_dashboard_says_how_to_get_them(show_window, sample_dataset_path: Path) -> None:
    win: MainWindow = show_window(sample_dataset_path)
    dlg = win.metrics.show_dashboard()
    assert dlg is not None and not dlg.compute_button.isEnabled()
    assert "Predict All Images" in dlg.source_label.text()
    assert not win.metrics.compute()
    dlg.close()
