"""Review-screen features on the bundled sample with a predictions folder: tools through the real canvas, locks,
number keys, accept prediction (whole image and inside a lasso), revert, split views, display filters."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from canvas_driver import drag, view_pos
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segstudio.gui.common.qimage import qimage_to_array
from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus


@pytest.fixture
def sample_predictions(sample_dataset_path: Path, tmp_path: Path) -> Path:
    """Predictions for the bundled sample: the GT shifted 12 px right (so GT and prediction disagree)."""
    out = tmp_path / "preds"
    out.mkdir()
    for img in sorted((sample_dataset_path / "cxr").glob("*.png")):
        left = cv2.imread(str(sample_dataset_path / "leftMask" / img.name), cv2.IMREAD_GRAYSCALE) > 127
        right = cv2.imread(str(sample_dataset_path / "rightMask" / img.name), cv2.IMREAD_GRAYSCALE) > 127
        pred = np.zeros(left.shape, np.uint8)
        pred[np.roll(left, 12, axis=1)] = 1
        pred[np.roll(right, 12, axis=1)] = 2
        cv2.imwrite(str(out / img.name), pred)
    return out


@pytest.fixture
def window(qtbot, sample_dataset_path: Path, sample_predictions: Path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_dataset(sample_dataset_path, predictions=sample_predictions) is not None
    win.navigation.autosave.stop()
    return win


def _pixels(win: MainWindow) -> np.ndarray:
    QApplication.processEvents()
    return qimage_to_array(win.canvas.render_to_image())[..., :3].astype(np.int32)


def test_number_keys_select_the_class_and_brush_paints_it(window: MainWindow, qtbot) -> None:
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)
    assert window.class_panel.selected_class() == 2 and window.editor.context.class_id == 2
    window.tools.set_tool("brush")
    window.brush_size.setValue(10)
    before = np.array(window.editor.mask.array)
    drag(window.canvas, [(20.0, 20.0), (60.0, 20.0)])
    changed = window.editor.mask.array != before
    assert changed.sum() > 200 and set(np.unique(window.editor.mask.array[changed]).tolist()) == {2}
    # the right button erases with the same brush
    drag(window.canvas, [(20.0, 20.0), (60.0, 20.0)], button=Qt.MouseButton.RightButton)
    assert np.array_equal(window.editor.mask.array, before)


def test_brush_size_keys_and_outline_cursor(window: MainWindow, qtbot) -> None:
    window.brush_size.setValue(20)
    window.actions_["brush_larger"].trigger()
    assert window.brush_size.value() == 24
    window.actions_["brush_smaller"].trigger()
    window.actions_["brush_smaller"].trigger()
    assert window.brush_size.value() < 24
    assert window.canvas._brush_size == window.brush_size.value()  # noqa: SLF001 - the outline follows the size


def test_locked_class_is_never_painted_over(window: MainWindow) -> None:
    gt = np.array(window.editor.mask.array)
    ys, xs = np.nonzero(gt == 1)
    cy, cx = float(ys.mean()), float(xs.mean())
    window.class_panel.select_class(2)
    item = window.class_panel.tree.topLevelItem(1)
    item.setCheckState(1, Qt.CheckState.Checked)  # lock "left lung"
    assert window.editor.context.locked == frozenset({1})
    window.tools.set_tool("brush")
    window.brush_size.setValue(40)
    # from inside the locked lung out across the image: only unlocked pixels may change
    drag(window.canvas, [(cx, cy), (cx - 120, cy), (cx - 240, cy)])
    after = window.editor.mask.array
    assert np.array_equal(after == 1, gt == 1)  # every left-lung pixel kept, none added
    assert ((after == 2) & (gt == 0)).sum() > 500  # the stroke did paint outside the lock


def test_accept_prediction_whole_and_inside_lasso(window: MainWindow) -> None:
    pred = window.editor.target.prediction
    gt = np.array(window.editor.mask.array)
    window.tools.accept_prediction()
    assert np.array_equal(window.editor.mask.array, pred)
    window.editor.undo()
    assert np.array_equal(window.editor.mask.array, gt)

    window.tools.set_tool("accept-lasso")
    h, w = gt.shape
    square = [(0.0, 0.0), (w / 2, 0.0), (w / 2, float(h)), (0.0, float(h)), (0.0, 1.0)]
    drag(window.canvas, square)
    m = window.editor.mask.array
    assert np.array_equal(m[:, : w // 2 - 2], pred[:, : w // 2 - 2])
    assert np.array_equal(m[:, w // 2 + 2 :], gt[:, w // 2 + 2 :])


def test_accepting_saves_a_version_and_revert_restores(window: MainWindow) -> None:
    sid = window.session.current.sample.id
    gt = np.array(window.editor.mask.array)
    window.tools.accept_prediction()
    window.navigation.set_review_status("accepted")
    ws = window.review.workspace
    v1 = ws.versions.latest(sid)
    assert v1 is not None and v1.version == 1
    assert ws.reviews.get(sid).status == ReviewStatus.ACCEPTED
    window.review_panel.versions.setCurrentRow(0)  # v0, the dataset GT
    window.review_panel.revert.click()
    assert np.array_equal(window.editor.mask.array, gt)
    window.save_now()
    assert ws.versions.latest(sid).version == 2
    assert np.array_equal(ws.versions.load(ws.versions.latest(sid)), gt)


def test_review_keys_and_summary(window: MainWindow, qtbot) -> None:
    qtbot.keyClick(window.canvas, Qt.Key.Key_F)
    first = window.session.current.sample.id
    assert window.review.review(first).status == ReviewStatus.FLAGGED
    window.go_next()
    qtbot.wait(20)  # the table follows the shown sample in the next event-loop turn
    qtbot.keyClick(window.canvas, Qt.Key.Key_R)
    assert window.review.review(window.session.current.sample.id).status == ReviewStatus.REJECTED
    assert "2/8 reviewed" in window.review_panel.summary.text()
    window.browser.set_filter("flagged")
    assert window.browser.visible_ids() == [first, window.session.current.sample.id]  # the current row stays


def test_error_map_marks_disagreement_and_split_views_sync(window: MainWindow) -> None:
    window.layers_panel.rows["error"].opacity.setValue(100)
    with_err = _pixels(window)
    window.actions_["toggle_error"].setChecked(False)
    without = _pixels(window)
    assert np.abs(with_err - without).sum() > 0
    # the prediction is shifted right: the error map paints the strips where GT and prediction differ
    codes_px = np.count_nonzero(window.editor._err_rgba[..., 3])  # noqa: SLF001
    assert codes_px == np.count_nonzero(window.editor.mask.array != window.editor.target.prediction)

    window.view.set_view_mode("gt|pred")
    assert window.split.secondary.isVisible()
    assert window.split.secondary.layer("second").array is window.editor.prediction_rgba()
    window.canvas.zoom_by(2.0)
    QApplication.processEvents()
    assert window.split.secondary.scale_factor() == pytest.approx(window.canvas.scale_factor())
    window.canvas.horizontalScrollBar().setValue(window.canvas.horizontalScrollBar().value() + 37)
    assert window.split.secondary.horizontalScrollBar().value() == window.canvas.horizontalScrollBar().value()
    window.view.set_view_mode("before|after")
    assert window.split.secondary_title.text().startswith("Before")
    window.view.set_view_mode("single")
    assert not window.split.secondary.isVisible()


def test_display_controls_change_pixels_not_data(window: MainWindow) -> None:
    image = np.array(window.session.current.image)
    window.actions_["toggle_gt"].setChecked(False)
    window.actions_["toggle_error"].setChecked(False)
    plain = _pixels(window)
    shown = np.array(window.canvas._image_item.array)  # noqa: SLF001 - what the image layer displays
    window.actions_["invert"].setChecked(True)
    assert np.array_equal(window.canvas._image_item.array, 255 - shown)  # noqa: SLF001
    assert np.abs(_pixels(window) - plain).mean() > 10
    window.actions_["invert"].setChecked(False)
    window.layers_panel.filter.setCurrentIndex(window.layers_panel.filter.findData("clahe"))
    assert np.abs(_pixels(window) - plain).mean() > 1
    window.layers_panel.preset.setCurrentIndex(window.layers_panel.preset.findData("Lung"))
    window.layers_panel.preset.activated.emit(window.layers_panel.preset.currentIndex())
    assert window.view.display.window is not None
    # right drag in pan mode changes window/level
    window.tools.set_tool("pan")
    vp = window.canvas.viewport()
    before = (window.view.display.window, window.view.display.level)
    from PySide6.QtTest import QTest

    start = view_pos(window.canvas, 100, 100).toPoint()
    QTest.mousePress(vp, Qt.MouseButton.RightButton, pos=start)
    QTest.mouseMove(vp, start + type(start)(40, 25))
    QTest.mouseRelease(vp, Qt.MouseButton.RightButton, pos=start + type(start)(40, 25))
    assert (window.view.display.window, window.view.display.level) != before
    assert np.array_equal(window.session.current.image, image)  # data untouched


def test_contour_mode_and_class_visibility(window: MainWindow) -> None:
    window.actions_["toggle_error"].setChecked(False)
    window.layers_panel.rows["gt"].opacity.setValue(100)
    filled = _pixels(window)
    window.actions_["contour_mode"].setChecked(True)
    assert window.editor.overlay_style.mode == "contour"
    contour = _pixels(window)
    assert np.abs(filled - contour).mean() > 1
    window.class_panel.set_class_visible(2, False)
    assert 2 in window.editor.overlay_style.hidden


def test_polygon_tool_closes_on_enter(window: MainWindow, qtbot) -> None:
    window.tools.set_tool("polygon")
    window.class_panel.select_class(1)
    before = np.array(window.editor.mask.array)
    for x, y in ((400.0, 420.0), (480.0, 420.0), (480.0, 500.0)):
        drag(window.canvas, [(x, y)])
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return)
    changed = window.editor.mask.array != before
    assert changed.sum() > 1000
    assert set(np.unique(window.editor.mask.array[changed]).tolist()) == {1}
    window.editor.undo()
    assert np.array_equal(window.editor.mask.array, before)


def test_pixel_grid_appears_at_high_zoom(window: MainWindow) -> None:
    window.actions_["toggle_gt"].setChecked(False)
    window.actions_["toggle_error"].setChecked(False)
    window.canvas.zoom_1to1()
    window.canvas.zoom_by(12.0)
    vp = window.canvas.viewport()
    window.canvas.centerOn(256.5, 256.5)
    QApplication.processEvents()
    img = qimage_to_array(vp.grab().toImage())[..., :3].astype(np.int32)
    # grid lines: every 12 screen pixels a column differs from its neighbours more than the image itself does
    col_diff = np.abs(np.diff(img.mean(axis=0).mean(axis=1)))
    assert col_diff.max() > 5
