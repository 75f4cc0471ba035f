"""The app on a DICOM dataset (issue 19): the header window is what the canvas shows, a CT without one opens with
the soft-tissue preset in HU, and with the header's pixel spacing the class panel shows mm² and the status bar mm."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
from canvas_driver import hover
from PySide6.QtWidgets import QApplication

from segstudio.gui.panels.class_panel import COL_PIXELS
from tests.datasets.dicomkit import min_max, montgomery_pixels, voi_linear, write_dicom

SPACING = (0.35, 0.4)


def _dicom_dataset(root: Path, montgomery: Path) -> Path:
    """Two Montgomery films as DICOM (a 12-bit CR with a header window, a CT-like slice in HU without one), with
    masks/ and classes.json (left and right lung)."""
    stem, u8 = montgomery_pixels(montgomery)
    write_dicom(root / "a_cr.dcm", u8.astype(np.uint16) * 16 + 7, BitsStored=12, WindowCenter="1800",
                WindowWidth="2400", PixelSpacing=list(SPACING))
    write_dicom(root / "b_ct.dcm", u8.astype(np.int16) * 8 - 1000, modality="CT", RescaleIntercept="-24",
                RescaleSlope="1")
    gt = np.zeros(u8.shape, np.uint8)
    gt[cv2.imread(str(montgomery / "leftMask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127] = 1
    gt[cv2.imread(str(montgomery / "rightMask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127] = 2
    (root / "masks").mkdir()
    for n in ("a_cr", "b_ct"):
        cv2.imwrite(str(root / "masks" / f"{n}.png"), gt)
    (root / "classes.json").write_text(json.dumps({"classes": [
        {"id": 0, "name": "background"}, {"id": 1, "name": "left lung"}, {"id": 2, "name": "right lung"}]}))
    return root


def _row_text(win, name: str) -> str:  # noqa: ANN001
    tree = win.class_panel.tree
    for i in range(tree.topLevelItemCount()):
        if tree.topLevelItem(i).text(0) == name:
            return tree.topLevelItem(i).text(COL_PIXELS)
    raise AssertionError(name)


def test_dicom_header_window_and_areas_in_mm2(show_window, qtbot, tmp_path: Path, montgomery: Path) -> None:
    root = _dicom_dataset(tmp_path / "series", montgomery)
    win = show_window(root)
    assert win.session.dataset.format_name == "dicom"
    cur = win.session.current
    assert cur.sample.id == "a_cr.dcm"
    shown = np.array(win.canvas._image_item.array)  # noqa: SLF001 - what the image layer displays
    stored = pydicom.dcmread(root / "a_cr.dcm").pixel_array
    np.testing.assert_array_equal(shown, voi_linear(stored, 1800, 2400))
    assert not np.array_equal(shown, min_max(stored))
    assert "(header)" in win.layers_panel.wl_label.text() and "W 2400 · L 1800" in win.layers_panel.wl_label.text()

    qtbot.waitUntil(lambda: "mm²" in _row_text(win, "left lung"), timeout=5000)
    left = int(np.count_nonzero(win.editor.mask.array == 1))
    assert _row_text(win, "left lung") == f"{left:,} px · {left * SPACING[0] * SPACING[1]:,.1f} mm²"
    hover(win.canvas, 100, 200)
    assert win.status.position.text() == f"x 100, y 200 ({100 * SPACING[1]:.1f}, {200 * SPACING[0]:.1f} mm)"

    # the CT slice: no header window, so the soft-tissue preset in HU; no spacing, so pixels only
    win.actions_["next"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == "b_ct.dcm", timeout=10_000)
    QApplication.processEvents()
    hu = pydicom.dcmread(root / "b_ct.dcm").pixel_array.astype(np.float64) - 24
    np.testing.assert_array_equal(win.canvas._image_item.array, voi_linear(hu, 40, 400))  # noqa: SLF001
    assert "HU (CT preset: Soft tissue)" in win.layers_panel.wl_label.text()
    qtbot.waitUntil(lambda: "mm²" not in _row_text(win, "left lung"), timeout=5000)
    assert _row_text(win, "left lung") == f"{int(np.count_nonzero(win.editor.mask.array == 1)):,}"
    hover(win.canvas, 30, 40)
    assert win.status.position.text() == "x 30, y 40"
    assert win.status.intensity.text().endswith(" HU")
    # the CT presets are in HU: Lung is level -600 / window 1500
    panel = win.layers_panel
    panel.preset.setCurrentIndex(panel.preset.findData("Lung"))
    panel.preset.activated.emit(panel.preset.currentIndex())
    np.testing.assert_array_equal(win.canvas._image_item.array, voi_linear(hu, -600, 1500))  # noqa: SLF001
    win.actions_["view.reset_display"].trigger()
    np.testing.assert_array_equal(win.canvas._image_item.array, voi_linear(hu, 40, 400))  # noqa: SLF001
    assert win.session.current.image.dtype == np.uint16  # the data keeps its stored values
