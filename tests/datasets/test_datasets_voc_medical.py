"""Pascal VOC, DICOM (pydicom's bundled real files), 16-bit image folders, and the registry's key errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from segstudio.core.errors import UnknownKeyError
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.dicom_io import SIGNED_OFFSET
from segstudio.datasets.formats.medical import sample_window
from segstudio.datasets.formats.voc import VOC_CLASSES, voc_colour
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import detect, format_names, get_format, open_dataset


def _palette() -> list[int]:
    return [v for i in range(256) for v in voc_colour(i)]


def _voc(root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    for k, stem in enumerate(["2007_000001", "2007_000002", "2007_000003"]):
        Image.fromarray(np.full((12, 16, 3), 40 * k, np.uint8)).save(voc / "JPEGImages" / f"{stem}.jpg")
        idx = np.zeros((12, 16), np.uint8)
        idx[2:6, 3:9] = k + 12  # dog / horse / motorbike
        idx[6, :] = 255  # void border
        im = Image.fromarray(idx, mode="P")
        im.putpalette(_palette())
        if stem != "2007_000003":
            im.save(voc / "SegmentationClass" / f"{stem}.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000003\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n2007_000099\n")
    return root / "VOCdevkit"


def test_voc_palette_masks_splits_and_problems(tmp_path: Path) -> None:
    devkit = _voc(tmp_path)
    assert detect(devkit)[0].name == "voc"
    ds = open_dataset(devkit)
    assert ds.schema.names == VOC_CLASSES and ds.schema.ignore_index == 255
    assert ds.schema.by_id(15).colour == (192, 128, 128)  # person, the devkit colour
    assert ds.split_counts() == {"train": 2, "val": 1}
    s = ds.get("JPEGImages/2007_000001.jpg")
    expected = np.asarray(Image.open(ds.root / "SegmentationClass" / "2007_000001.png"))
    np.testing.assert_array_equal(ds.load_gt(s), expected)
    kinds = sorted((p.kind.value, p.path.name) for p in ds.all_problems())
    assert kinds == [("missing_image", "2007_000099.jpg"), ("missing_mask", "2007_000003.jpg")]


def test_voc_rgb_resaved_mask_decodes_and_reports_unknown(tmp_path: Path) -> None:
    devkit = _voc(tmp_path)
    voc = devkit / "VOC2012"
    p = voc / "SegmentationClass" / "2007_000002.png"
    rgb = np.asarray(Image.open(p).convert("RGB")).copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(p)
    ds = open_dataset(devkit)
    gt = ds.load_gt("JPEGImages/2007_000002.jpg")
    assert gt[3, 4] == 13 and gt[6, 0] == 255 and gt[0, 0] == 255
    assert any(x.kind == ProblemKind.UNKNOWN_COLOUR and "RGB(1, 2, 3) (1 px)" in x.message for x in ds.problems)


def test_voc_out_of_range_index(tmp_path: Path) -> None:
    devkit = _voc(tmp_path)
    p = devkit / "VOC2012" / "SegmentationClass" / "2007_000001.png"
    idx = np.asarray(Image.open(p)).copy()
    idx[0, 0] = 77
    im = Image.fromarray(idx, mode="P")
    im.putpalette(_palette())
    im.save(p)
    ds = open_dataset(devkit)
    with pytest.raises(DatasetProblemError, match=r"77 \(1 px\)") as e:
        ds.load_gt("JPEGImages/2007_000001.jpg")
    assert e.value.kind == ProblemKind.OUT_OF_RANGE


def _dicom_dir(tmp: Path) -> Path:
    d = tmp / "series"
    d.mkdir()
    for n in ("CT_small.dcm", "MR_small.dcm"):
        src = get_testdata_file(n, download=False)
        if src is None:
            pytest.skip("pydicom's bundled test files are not installed")
        shutil.copy(src, d / n)
    return d


def test_dicom_full_depth_and_window(tmp_path: Path) -> None:
    d = _dicom_dir(tmp_path)
    assert detect(d)[0].name == "dicom"
    ds = open_dataset(d)
    assert [s.id for s in ds] == ["CT_small.dcm", "MR_small.dcm"]
    mr = ds.get("MR_small.dcm")
    ref = pydicom.dcmread(d / "MR_small.dcm")
    img = ds.load_image(mr)
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img.astype(np.int32) - SIGNED_OFFSET, ref.pixel_array.astype(np.int32))
    w = sample_window(ds, mr)
    assert w is not None and w.width == float(ref.WindowWidth)
    assert w.center == float(ref.WindowCenter) + SIGNED_OFFSET  # slope 1 / intercept 0: stored units + offset
    assert sample_window(ds, ds.get("CT_small.dcm")) is None  # no window in that header
    assert ds.load_gt(mr) is None


def test_dicom_with_masks_folder(tmp_path: Path) -> None:
    d = _dicom_dir(tmp_path)
    (d / "masks").mkdir()
    m = np.zeros((64, 64), np.uint8)
    m[10:20, 10:30] = 255
    Image.fromarray(m).save(d / "masks" / "MR_small.png")
    ds = open_dataset(d, format="dicom")
    np.testing.assert_array_equal(ds.load_gt("MR_small.dcm"), (m > 0).astype(np.uint8))
    assert [p.kind for p in ds.get("CT_small.dcm").problems] == [ProblemKind.MISSING_MASK]


def test_corrupt_dicom_is_named(tmp_path: Path) -> None:
    d = _dicom_dir(tmp_path)
    data = (d / "MR_small.dcm").read_bytes()
    (d / "MR_small.dcm").write_bytes(data[: len(data) // 3])
    ds = open_dataset(d)
    with pytest.raises(DatasetProblemError) as e:
        ds.load_image("MR_small.dcm")
    assert e.value.path == d / "MR_small.dcm" and e.value.kind == ProblemKind.CORRUPT


def test_image_folder_keeps_16_bit_png_and_tiff(tmp_path: Path) -> None:
    a = (np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(str(tmp_path / "b.tif"), a[::-1])
    assert detect(tmp_path)[0].name == "image-folder"
    ds = open_dataset(tmp_path)
    np.testing.assert_array_equal(ds.load_image("a.png"), a)
    np.testing.assert_array_equal(ds.load_image("b.tif"), a[::-1])
    assert ds.load_gt("a.png") is None


def test_unknown_format_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownKeyError) as e:
        get_format("yolo")
    for name in ("coco", "voc", "class-folders", "paired-folders", "camvid-segnet", "dicom"):
        assert name in str(e.value)
    assert set(format_names()) == {
        "class-folders", "paired-folders", "ph2", "camvid-segnet", "camvid-rgb", "coco", "labelme", "hand-bone",
        "voc", "dicom", "image-folder",
    }  # fmt: skip
    from segstudio.datasets.registry import format_descriptions

    descriptions = format_descriptions()
    assert list(descriptions) == format_names() and all(len(d) > 20 for d in descriptions.values())
