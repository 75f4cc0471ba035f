"""The first window on the bundled sample: navigation, overlay, opacity, status bar, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from canvas_driver import hover
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from segstudio.core.settings import load_settings
from segstudio.gui.common.qimage import qimage_to_array
from segstudio.gui.main_window import GT_LAYER, MainWindow


@pytest.fixture
def window(qtbot, sample_dataset_path: Path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_dataset(sample_dataset_path) is not None
    return win


def _canvas_pixels(win: MainWindow) -> np.ndarray:
    QApplication.processEvents()
    return qimage_to_array(win.canvas.render_to_image())[..., :3].astype(np.int32)


def test_window_opens_on_the_sample(window: MainWindow) -> None:
    ds = window.session.dataset
    assert ds is not None and len(ds) == 8
    assert window.browser.model_.rowCount() == 8
    cur = window.session.current
    assert cur is not None and cur.row == 0 and cur.gt is not None
    assert cur.image.shape[:2] == cur.gt.shape[:2] == (512, 512)
    assert "background" in ds.schema.names and len(ds.schema) == 3
    # the class panel lists every class with a pixel count for this image
    assert window.class_panel.tree.topLevelItemCount() == 3
    assert window.class_panel.selected_class() == 1


def test_next_and_previous_change_the_image(window: MainWindow, qtbot) -> None:
    first = window.session.current
    before = _canvas_pixels(window)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Right)
    second = window.session.current
    assert second is not None and first is not None
    assert second.row == 1 and second.sample.id != first.sample.id
    assert np.abs(_canvas_pixels(window) - before).mean() > 1.0
    window.actions_["prev"].trigger()
    assert window.session.current.row == 0
    window.go_previous()  # at the first sample: stays
    assert window.session.current.row == 0


def test_browser_click_selects_sample(window: MainWindow) -> None:
    window.browser.select_row(5)
    assert window.session.current.row == 5


def test_overlay_toggle_and_opacity_change_rendered_pixels(window: MainWindow) -> None:
    window.layers_panel.rows["gt"].opacity.setValue(80)
    with_overlay = _canvas_pixels(window)
    window.actions_["toggle_gt"].setChecked(False)
    without = _canvas_pixels(window)
    assert np.abs(with_overlay - without).mean() > 1.0
    window.actions_["toggle_gt"].setChecked(True)
    assert np.abs(_canvas_pixels(window) - with_overlay).max() == 0

    window.layers_panel.rows["gt"].opacity.setValue(20)
    faint = _canvas_pixels(window)
    assert window.canvas.layer_opacity(GT_LAYER) == pytest.approx(0.2)
    # both differ from the bare image, the stronger overlay more so
    assert np.abs(with_overlay - without).sum() > np.abs(faint - without).sum() > 0


def test_hiding_a_class_removes_its_colour(window: MainWindow) -> None:
    window.layers_panel.rows["gt"].opacity.setValue(100)
    all_visible = _canvas_pixels(window)
    window.class_panel.set_class_visible(1, False)
    assert 1 not in window.class_panel.visible_ids()
    one_hidden = _canvas_pixels(window)
    assert np.abs(all_visible - one_hidden).mean() > 0.5


def _move_to_image_pixel(win: MainWindow, x: int, y: int) -> None:
    hover(win.canvas, x, y)


def test_status_bar_reports_position_intensity_and_class(window: MainWindow) -> None:
    cur = window.session.current
    ds = window.session.dataset
    gt = cur.gt
    ys, xs = np.nonzero(gt == 1)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    _move_to_image_pixel(window, x, y)
    assert window.status.position.text() == f"x {x}, y {y}"
    assert window.status.intensity.text() == f"value {int(cur.image[y, x])}"
    assert window.status.label.text() == f"class: {ds.schema.by_id(1).name}"
    ys, xs = np.nonzero(gt == 0)
    _move_to_image_pixel(window, int(xs[0]), int(ys[0]))
    assert window.status.label.text() == "class: background"


def test_zoom_actions(window: MainWindow) -> None:
    window.view.zoom_1to1()
    assert window.canvas.scale_factor() == pytest.approx(1.0)
    window.view.zoom_in()
    assert window.canvas.scale_factor() == pytest.approx(1.25)
    window.view.zoom_fit()
    w, h = window.canvas.image_size()
    vp = window.canvas.viewport().size()
    assert window.canvas.scale_factor() == pytest.approx(min(vp.width() / w, vp.height() / h), rel=0.05)


def test_settings_and_geometry_persist(qtbot, sample_dataset_path: Path) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_dataset(sample_dataset_path)
    win.layers_panel.rows["gt"].opacity.setValue(35)
    win.resize(760, 740)
    saved = (win.size().width(), win.size().height())  # what the window really took (minimum sizes apply)
    win.close()
    s = load_settings()
    assert s.overlay.opacity == pytest.approx(0.35)
    assert s.last_dataset == str(sample_dataset_path.resolve())

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert again.layers_panel.rows["gt"].opacity.value() == 35
    assert (again.size().width(), again.size().height()) == saved


def test_bad_dataset_path_shows_an_error_and_keeps_the_window(window: MainWindow, monkeypatch, tmp_path) -> None:
    shown: list[str] = []
    monkeypatch.setattr("segstudio.gui.window.opening.show_error", lambda title, msg, details="": shown.append(msg))
    assert window.open_dataset(tmp_path / "does-not-exist") is None
    assert shown and "does-not-exist" in shown[0]
    assert window.session.dataset is not None and len(window.session.dataset) == 8


def test_about_dialog_shows_version_and_data_licence(qtbot) -> None:
    from PySide6.QtWidgets import QLabel, QTextBrowser

    from segstudio import __version__
    from segstudio.gui.window.about import AboutDialog

    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    data = dlg.findChild(QTextBrowser, "aboutDataLicences")
    assert data is not None and "National Library of Medicine" in data.toPlainText()
    heads = " ".join(lbl.text() for lbl in dlg.findChildren(QLabel))
    assert f"segstudio {__version__}" in heads and "Apache License 2.0" in heads


def test_middle_drag_pans(window: MainWindow, qtbot) -> None:
    window.view.zoom_1to1()
    window.view.zoom_in()
    window.view.zoom_in()
    h0 = window.canvas.horizontalScrollBar().value()
    vp = window.canvas.viewport()
    start = QPoint(vp.width() // 2, vp.height() // 2)
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(vp, start + QPoint(-120, 0))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=start + QPoint(-120, 0))
    assert window.canvas.horizontalScrollBar().value() != h0
