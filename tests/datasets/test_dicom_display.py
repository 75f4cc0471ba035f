"""What a DICOM, a 16-bit PNG and a classes.json spacing look like by default (issue 19): the header window applied
with the standard's VOI formula in modality units (HU for CT), CT presets, MONOCHROME1, the percentile
auto-window, and the pixel spacing read back. Pixels are Montgomery X-rays (and pydicom's real CT) in real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from segstudio.core.display import DisplaySettings, render_display
from segstudio.datasets.display import default_display
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import open_dataset
from tests.datasets.dicomkit import min_max, montgomery_pixels, voi_linear, write_dicom


def _shown(path: Path) -> tuple[np.ndarray, str]:
    """What the app shows by default for the one image in ``path``'s folder, and where its window came from."""
    ds = open_dataset(path.parent)
    s = ds[0]
    image = ds.load_image(s)
    d = default_display(ds, s, image)
    return render_display(image, d.settings(), rescale=d.rescale), d.source


def test_header_window_of_a_16_bit_xray_is_applied(tmp_path: Path, montgomery: Path) -> None:
    stem, u8 = montgomery_pixels(montgomery)
    stored = (u8.astype(np.uint16) * 16 + 7)  # 12-bit range, 7..4087
    path = write_dicom(tmp_path / "xr" / f"{stem}.dcm", stored, BitsStored=12, WindowCenter="1800",
                       WindowWidth=["2400", "4096"], PixelSpacing=[0.35, 0.35])
    shown, source = _shown(path)
    assert source == "header"
    expected = voi_linear(pydicom.dcmread(path).pixel_array, 1800, 2400)  # the first of a multi-valued window
    np.testing.assert_array_equal(shown, expected)
    assert np.abs(shown.astype(int) - min_max(stored).astype(int)).mean() > 5  # min-max is not what is shown
    # pydicom's own VOI LUT agrees (its output spans the stored bit depth)
    from pydicom.pixels import apply_voi_lut

    ref = pydicom.dcmread(path)
    theirs = apply_voi_lut(ref.pixel_array, ref) / (2**12 - 1) * 255.0
    assert np.abs(theirs - shown).max() <= 1.0


def test_ct_rescale_to_hounsfield_units_then_header_window(tmp_path: Path, montgomery: Path) -> None:
    stem, u8 = montgomery_pixels(montgomery, 1)
    stored = u8.astype(np.int16) * 8 - 1000  # signed, negative values included
    path = write_dicom(tmp_path / "ct" / "slice.dcm", stored, modality="CT", RescaleIntercept="-24",
                       RescaleSlope="1", WindowCenter="-500", WindowWidth="1200", PixelSpacing=[0.7, 0.7])
    shown, source = _shown(path)
    hu = pydicom.dcmread(path).pixel_array.astype(np.float64) * 1 - 24
    assert source == "header"
    np.testing.assert_array_equal(shown, voi_linear(hu, -500, 1200))
    assert not np.array_equal(shown, min_max(hu))


def test_monochrome1_is_inverted_after_the_window(tmp_path: Path, montgomery: Path) -> None:
    stem, u8 = montgomery_pixels(montgomery, 2)
    stored = (255 - u8).astype(np.uint16) * 200  # MONOCHROME1: low values are white
    path = write_dicom(tmp_path / "m1" / "film.dcm", stored, photometric="MONOCHROME1", RescaleSlope="2",
                       RescaleIntercept="100", WindowCenter="51100", WindowWidth="90000")
    shown, source = _shown(path)
    modality = pydicom.dcmread(path).pixel_array.astype(np.float64) * 2 + 100
    np.testing.assert_array_equal(shown, 255 - voi_linear(modality, 51100, 90000))
    # the lungs (dark in the source X-ray) stay dark on screen
    assert np.corrcoef(shown.ravel().astype(float), u8.ravel().astype(float))[0, 1] > 0.95


def test_ct_without_a_window_opens_with_the_soft_tissue_preset(tmp_path: Path) -> None:
    src = get_testdata_file("CT_small.dcm", download=False)
    if src is None:
        pytest.skip("pydicom's bundled test files are not installed")
    path = Path(shutil.copy(src, tmp_path / "CT_small.dcm"))
    ref = pydicom.dcmread(path)
    assert "WindowCenter" not in ref and float(ref.RescaleIntercept) == -1024
    shown, source = _shown(path)
    hu = ref.pixel_array.astype(np.float64) * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    assert source == "CT preset: Soft tissue"
    np.testing.assert_array_equal(shown, voi_linear(hu, 40, 400))
    assert open_dataset(tmp_path).pixel_spacing("CT_small.dcm") == (0.661468, 0.661468)


def _auto(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [0.5, 99.5], method="inverted_cdf")
    return np.floor(np.clip((x.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255.0).astype(np.uint8)


def test_dicom_without_a_window_gets_the_percentile_auto_window(tmp_path: Path, montgomery: Path) -> None:
    _, u8 = montgomery_pixels(montgomery, 3)
    stored = u8.astype(np.uint16) * 40
    stored[:4, :4] = 65000  # a burnt-in marker that min-max would let flatten the whole film
    path = write_dicom(tmp_path / "cr" / "cr.dcm", stored)
    shown, source = _shown(path)
    assert source.startswith("auto 0.5–99.5")
    np.testing.assert_array_equal(shown, _auto(stored))
    assert shown.std() > min_max(stored).std() * 1.5


def test_16_bit_png_gets_the_percentile_auto_window(tmp_path: Path, montgomery: Path) -> None:
    stem, u8 = montgomery_pixels(montgomery, 4)
    img16 = u8.astype(np.uint16) * 12 + 1500
    img16[-3:, -3:] = 60000
    folder = tmp_path / "png16"
    folder.mkdir()
    cv2.imwrite(str(folder / f"{stem}.png"), img16)
    ds = open_dataset(folder, format="image-folder")
    image = ds.load_image(ds[0])
    assert image.dtype == np.uint16
    d = default_display(ds, ds[0], image)
    shown = render_display(image, d.settings(), rescale=d.rescale)
    np.testing.assert_array_equal(shown, _auto(img16))
    assert not np.array_equal(shown, min_max(img16))
    # an 8-bit image is shown as stored
    cv2.imwrite(str(folder / f"{stem}.png"), u8)
    d8 = default_display(ds, ds[0], ds.load_image(ds[0]))
    assert d8.window is None and np.array_equal(render_display(u8, d8.settings()), u8)
    assert render_display(u8, DisplaySettings()).tobytes() == u8.tobytes()


def test_training_still_reads_the_stored_values(tmp_path: Path, montgomery: Path) -> None:
    _, u8 = montgomery_pixels(montgomery)
    stored = u8.astype(np.uint16) * 16
    path = write_dicom(tmp_path / "raw" / "x.dcm", stored, WindowCenter="500", WindowWidth="300")
    ds = open_dataset(path.parent)
    np.testing.assert_array_equal(ds.load_image(ds[0]), stored)


# --- spacing --------------------------------------------------------------------------------------------------------


def _class_folders(tmp_path: Path, montgomery: Path, spacing: object) -> Path:
    root = tmp_path / "mont"
    for sub in ("cxr", "leftMask", "rightMask"):
        (root / sub).mkdir(parents=True)
        for p in sorted((montgomery / sub).glob("*.png"))[:2]:
            shutil.copy(p, root / sub / p.name)
    (root / "classes.json").write_text(json.dumps({"spacing": spacing}))
    return root


def test_spacing_from_classes_json(tmp_path: Path, montgomery: Path) -> None:
    ds = open_dataset(_class_folders(tmp_path, montgomery, [0.175, 0.2]))
    assert ds.format_name == "class-folders"
    assert ds.spacing == (0.175, 0.2) and ds.pixel_spacing(ds[0]) == (0.175, 0.2)
    plain = open_dataset(montgomery)
    assert plain.spacing is None and plain.pixel_spacing(plain[0]) is None



def test_segstudio_info_reports_the_pixel_spacing(tmp_path: Path, montgomery: Path, capsys) -> None:
    from segstudio.cli import main

    root = _class_folders(tmp_path, montgomery, [0.175, 0.2])
    assert main(["info", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_spacing"] == [0.175, 0.2]
    assert main(["info", str(root)]) == 0
    assert "Pixel spacing: 0.175 × 0.2 mm" in capsys.readouterr().out
    assert main(["info", str(montgomery)]) == 0
    assert "Pixel spacing: unknown" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [[0.2], [0.2, 0], [0.2, -1], ["0.2", 0.2], [True, 0.2], 0.2, [0.2, 5000], {"y": 1}])
def test_a_malformed_spacing_names_the_file_and_the_fix(tmp_path: Path, montgomery: Path, bad: object) -> None:
    root = _class_folders(tmp_path, montgomery, bad)
    with pytest.raises(DatasetProblemError) as e:
        open_dataset(root)
    assert e.value.path == root / "classes.json"
    assert "spacing" in e.value.message and "[row_mm, column_mm]" in (e.value.fix or "")


def test_dicom_header_spacing_wins_over_classes_json(tmp_path: Path, montgomery: Path) -> None:
    _, u8 = montgomery_pixels(montgomery)
    folder = tmp_path / "mixed"
    write_dicom(folder / "a.dcm", u8.astype(np.uint16), PixelSpacing=[0.5, 0.25])
    write_dicom(folder / "b.dcm", u8.astype(np.uint16))  # no spacing of its own
    (folder / "classes.json").write_text(json.dumps({"classes": [{"id": 0, "name": "background"},
                                                                 {"id": 1, "name": "lung"}], "spacing": [0.3, 0.3]}))
    ds = open_dataset(folder)
    assert ds.pixel_spacing("a.dcm") == (0.5, 0.25)
    assert ds.pixel_spacing("b.dcm") == (0.3, 0.3)


def test_hd95_in_mm_with_the_dicom_spacing(tmp_path: Path, montgomery: Path) -> None:
    surface = pytest.importorskip("segstudio.metrics.surface")
    stem, u8 = montgomery_pixels(montgomery)
    path = write_dicom(tmp_path / "hd" / f"{stem}.dcm", u8.astype(np.uint16), PixelSpacing=[0.7, 0.7])
    spacing = open_dataset(path.parent).pixel_spacing(path.name)
    assert spacing == (0.7, 0.7)
    gt = cv2.imread(str(montgomery / "leftMask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
    pred = np.roll(cv2.erode(gt.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0, 5, axis=1)
    px = surface.hd95(gt, pred)
    assert px > 2
    assert surface.hd95(gt, pred, spacing=spacing) == pytest.approx(0.7 * px, rel=1e-9)
