"""Issue 14, real datasets as downloaded: a folder holding a README and one data folder opens that folder; an
EXIF Orientation is applied when images (and masks) are read, so pixels and masks align as other tools show them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from segstudio.core.errors import DatasetError
from segstudio.datasets import open_dataset
from segstudio.datasets.io import EXIF_ORIENTATION, apply_orientation, image_size, read_image, read_mask
from segstudio.datasets.registry import OPENED_SUBFOLDER, lone_subfolder


def _paired(root: Path, n: int = 3) -> Path:
    """A tiny paired-folders dataset: ``images/`` + ``masks/`` (0/255 binary PNGs)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (12, 16), np.uint8)).save(root / "images" / f"s{i}.png")
        m = np.zeros((12, 16), np.uint8)
        m[2:6, 3 + i : 9 + i] = 255
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")
    return root


# lone sub-folder ----------------------------------------------------------------------------------------------------
def test_montgomery_as_distributed_opens_its_data_folder(shared_datasets: Path) -> None:
    root = shared_datasets / "montgomery_cxr"
    if not (root / "data").is_dir():
        pytest.skip("montgomery_cxr/data is missing")
    ds = open_dataset(root)
    assert ds.root == root / "data"
    assert ds.options[OPENED_SUBFOLDER] == "data"
    assert ds.format_name == "class-folders"
    assert len(ds) == 40


def test_info_cli_opens_montgomery_as_distributed(shared_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segstudio.cli import main

    root = shared_datasets / "montgomery_cxr"
    if not (root / "data").is_dir():
        pytest.skip("montgomery_cxr/data is missing")
    assert main(["info", "--json", str(root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(root / "data")
    assert report["options"][OPENED_SUBFOLDER] == "data"
    assert report["samples"] == 40


def test_readme_beside_one_data_folder_opens_it(tmp_path: Path) -> None:
    root = tmp_path / "download"
    _paired(root / "data")
    (root / "README.md").write_text("# a dataset\n")
    (root / "LICENSE").write_text("CC-BY\n")
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "__MACOSX").mkdir()
    (root / "data.segstudio").mkdir()  # the workspace of an earlier open sits beside the data folder
    ds = open_dataset(root)
    assert ds.root == root / "data"
    assert ds.options[OPENED_SUBFOLDER] == "data"
    assert len(ds) == 3
    # a format named explicitly looks there too (the app's chooser, `--format`)
    ds2 = open_dataset(root, format="paired-folders")
    assert ds2.root == root / "data" and ds2.options[OPENED_SUBFOLDER] == "data"


def test_an_archive_folder_two_levels_deep(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    _paired(root / "dataset" / "data")
    (root / "dataset" / "README.txt").write_text("read me\n")
    ds = open_dataset(root)
    assert ds.root == root / "dataset" / "data"
    assert ds.options[OPENED_SUBFOLDER] == "dataset/data"


def test_a_recognised_root_is_not_descended(tmp_path: Path) -> None:
    root = _paired(tmp_path / "ds")
    ds = open_dataset(root)
    assert ds.root == root
    assert OPENED_SUBFOLDER not in ds.options


def test_two_data_folders_stay_unrecognised(tmp_path: Path) -> None:
    root = tmp_path / "two"
    _paired(root / "a")
    _paired(root / "b")
    (root / "README.md").write_text("two datasets\n")
    assert lone_subfolder(root) is None
    with pytest.raises(DatasetError, match="No known dataset format"):
        open_dataset(root)


def test_lone_subfolder_of_a_file_is_none(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    assert lone_subfolder(f) is None


# EXIF orientation ---------------------------------------------------------------------------------------------------
def _exif(orientation: int) -> Image.Exif:
    ex = Image.Exif()
    ex[EXIF_ORIENTATION] = orientation
    return ex


def _stored() -> np.ndarray:
    """A 6x10 RGB picture with no symmetry: every orientation gives different pixels."""
    a = np.zeros((6, 10, 3), np.uint8)
    a[..., 0] = np.arange(10, dtype=np.uint8)[None, :] * 25
    a[..., 1] = np.arange(6, dtype=np.uint8)[:, None] * 40
    a[0, 0] = (255, 255, 255)
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pil_exif_transpose(orientation: int) -> None:
    stored = _stored()
    im = Image.fromarray(stored)
    im.getexif()[EXIF_ORIENTATION] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(apply_orientation(stored, orientation), expected)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_rotated_jpeg_reads_as_shown(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(_stored()).save(path, quality=95, exif=_exif(orientation))
    shown = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(shown, expected)
    h, w = shown.shape[:2]
    assert image_size(path) == (w, h)  # the header-only size agrees with the pixels
    assert (h, w) == ((10, 6) if orientation in (6, 8) else (6, 10))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_png_and_tiff_orientation(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scan{suffix}"
    Image.fromarray(_stored()).save(path, exif=_exif(6))
    assert np.array_equal(read_image(path), np.rot90(_stored(), k=-1))
    assert image_size(path) == (6, 10)


def test_mask_with_orientation_is_turned_like_the_image(tmp_path: Path) -> None:
    m = np.zeros((6, 10), np.uint8)
    m[0, :3] = 2
    path = tmp_path / "m.png"
    Image.fromarray(m).save(path, exif=_exif(8))
    got = read_mask(path)
    assert got.dtype == np.uint8 and np.array_equal(got, np.rot90(m, k=1))


def test_dataset_of_rotated_jpegs_aligns_with_its_masks(tmp_path: Path) -> None:
    """A phone photo stored landscape with Orientation 6 and a mask drawn on the portrait view (as labelme and
    every viewer show it): same size, no size-mismatch problem, the mask over the right pixels."""
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:, :5] = 250  # a bright band on the stored left edge: the top of the portrait view
    Image.fromarray(stored).save(root / "images" / "p.jpg", quality=95, exif=_exif(6))
    mask = np.zeros((30, 20), np.uint8)
    mask[:5, :] = 255
    Image.fromarray(mask).save(root / "masks" / "p.png")
    ds = open_dataset(root)
    assert not ds.all_problems()
    img, gt = ds.load_image(ds[0]), ds.load_gt(ds[0])
    assert img.shape[:2] == gt.shape == (30, 20)
    assert img[gt > 0].mean() > 200 and img[gt == 0].mean() < 50


def test_images_without_exif_are_not_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("plain.png", "plain.jpg"):
        Image.fromarray(_stored()).save(tmp_path / name)

    def boom(self: Image.Image) -> Image.Exif:
        raise AssertionError("EXIF parsed for an image without it")

    monkeypatch.setattr(Image.Image, "getexif", boom)
    for name in ("plain.png", "plain.jpg"):
        assert read_image(tmp_path / name).shape == (6, 10, 3)
        assert image_size(tmp_path / name) == (10, 6)


def test_damaged_exif_reads_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "bad.jpg"
    Image.fromarray(_stored()).save(path, exif=b"Exif\x00\x00garbage-not-tiff")
    assert read_image(path).shape == (6, 10, 3)


def _tiff_rgb16(path: Path, rgb: np.ndarray, orientation: int) -> None:
    """A baseline little-endian TIFF, 16-bit RGB in one uncompressed strip, with an Orientation tag."""
    import struct

    h, w, _ = rgb.shape
    pixels = rgb.astype("<u2").tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, None), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd_at = 8
    bits_at = ifd_at + 2 + 12 * len(entries) + 4
    data_at = bits_at + 6
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = data_at
        out += struct.pack("<HHI", tag, typ, count)
        out += struct.pack("<HH", value, 0) if typ == 3 and count == 1 else struct.pack("<I", value)
    out += struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + pixels
    path.write_bytes(bytes(out))


def test_wide_colour_tiff_read_through_opencv_is_turned(tmp_path: Path) -> None:
    """16-bit RGB TIFFs decode with OpenCV (PIL narrows them), which turns them itself: turned once, not twice."""
    stored = _stored().astype(np.uint16) * 257
    path = tmp_path / "wide.tif"
    _tiff_rgb16(path, stored, 6)
    got = read_image(path)
    assert got.dtype == np.uint16
    assert np.array_equal(got, np.rot90(stored, k=-1))
    assert image_size(path) == (6, 10)


def test_wide_colour_png_with_exif_is_turned(tmp_path: Path) -> None:
    """16-bit RGB PNGs decode with OpenCV, which ignores a PNG's eXIf chunk (IMREAD_UNCHANGED): turned here."""
    import struct
    import zlib

    import cv2

    stored = _stored().astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(stored[..., ::-1]))
    assert ok
    data = buf.tobytes()
    exif = _exif(8).tobytes()
    exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif  # a PNG eXIf chunk holds the TIFF block alone
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    at = data.index(b"IDAT") - 4
    path = tmp_path / "wide.png"
    path.write_bytes(data[:at] + chunk + data[at:])
    got = read_image(path)
    assert got.dtype == np.uint16
    assert np.array_equal(got, np.rot90(stored, k=1))
    assert image_size(path) == (6, 10)
