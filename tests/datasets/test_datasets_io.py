"""Safe image/mask reading: depth kept, BGR->RGB, bombs refused, broken files named."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import (
    CorruptImageError,
    ImageTooLargeError,
    image_size,
    read_binary_mask,
    read_image,
    read_mask,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def giant_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny file whose header claims a huge image (the decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def test_rgb_png_is_returned_as_rgb_not_bgr(tmp_path: Path) -> None:
    arr = np.zeros((4, 5, 3), np.uint8)
    arr[..., 0] = 200  # red
    Image.fromarray(arr).save(tmp_path / "r.png")
    out = read_image(tmp_path / "r.png")
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 200).all() and (out[..., 2] == 0).all()


def test_16bit_gray_png_keeps_full_depth(tmp_path: Path) -> None:
    arr = (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), arr)
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, arr)


def test_16bit_rgb_png_keeps_full_depth_and_channel_order(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint16)
    rgb[..., 0] = 60000
    rgb[..., 1] = 300
    cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1])  # cv2 writes BGR
    out = read_image(tmp_path / "c16.png")
    assert out.dtype == np.uint16 and out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out, rgb)


def test_16bit_tiff_keeps_full_depth(tmp_path: Path) -> None:
    arr = np.linspace(0, 65535, 48, dtype=np.uint16).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "g16.tif"), arr)
    out = read_image(tmp_path / "g16.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, arr)


def test_palette_mask_keeps_indices_but_image_expands_palette(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 255]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), idx)
    rgb = read_image(tmp_path / "p.png")
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 1]) == (128, 0, 0)


def test_one_bit_and_24_bit_bmp_masks_read_the_same(tmp_path: Path) -> None:
    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True
    Image.fromarray(m).convert("1").save(tmp_path / "m1.bmp")
    Image.fromarray(np.stack([m.astype(np.uint8) * 255] * 3, -1)).save(tmp_path / "m24.bmp")
    assert Image.open(tmp_path / "m1.bmp").mode == "1"
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m1.bmp"), m)
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "m24.bmp"), m)


def test_truncated_png_is_corrupt_and_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    bad = tmp_path / "cut.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError) as e:
        read_image(bad)
    assert e.value.path == bad and "cut.png" in str(e.value)
    assert e.value.to_problem("s").kind == ProblemKind.CORRUPT


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError):
        read_image(tmp_path / "cut.jpg")


def test_not_an_image_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(CorruptImageError, match="Not a readable image"):
        read_image(tmp_path / "x.png")


def test_giant_header_is_refused_before_decoding(tmp_path: Path) -> None:
    p = giant_png(tmp_path / "bomb.png")
    assert image_size(p) == (100_000, 100_000)
    with pytest.raises(ImageTooLargeError, match="decompression bomb") as e:
        read_image(p)
    assert e.value.path == p
    assert e.value.to_problem().kind == ProblemKind.TOO_LARGE


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "s.png")
    with pytest.raises(ImageTooLargeError):
        read_image(tmp_path / "s.png", max_pixels=99)
    assert read_image(tmp_path / "s.png", max_pixels=100).shape == (10, 10)


def test_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_header_over_our_limit_but_under_pils_is_refused_by_ours(tmp_path: Path) -> None:
    p = giant_png(tmp_path / "big.png", 20_000, 20_000)  # 400 MP: over 16384², under PIL's hard stop
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        read_mask(p)
    assert image_size(p) == (20_000, 20_000)


def test_16bit_rgb_tiff_keeps_full_depth_and_channel_order(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint16)
    rgb[..., 0] = 60000
    rgb[..., 1] = 300
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb[..., ::-1])
    out = read_image(tmp_path / "c16.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb)
