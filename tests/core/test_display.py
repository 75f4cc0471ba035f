from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.display import XRAY_PRESETS, DisplaySettings, render_display, value_range


def test_default_is_identity_on_uint8_and_never_aliases_input() -> None:
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = render_display(img, DisplaySettings())
    assert np.array_equal(out, img) and out is not img
    out[0, 0] = 99
    assert img[0, 0] == 0


def test_window_level_maps_window_to_full_range_and_clips() -> None:
    img = np.array([[0, 100, 150, 200, 255]], np.uint8)
    out = render_display(img, DisplaySettings(window=100, level=150))
    assert out.tolist() == [[0, 0, 127, 255, 255]]


def test_sixteen_bit_keeps_depth_until_display() -> None:
    img = np.array([[1000, 1001, 1002, 60000]], np.uint16)
    full = render_display(img, DisplaySettings())
    assert full[0, 0] == 0 and full[0, 3] == 255
    narrow = render_display(img, DisplaySettings(window=2, level=1001))
    # a narrow window separates values one unit apart that a plain 8-bit cast would merge
    assert narrow[0, 0] < narrow[0, 1] < narrow[0, 2]


def test_invert_and_filters() -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64)) * 60 + 40).astype(np.uint8)  # low contrast
    inv = render_display(img, DisplaySettings(invert=True))
    assert np.array_equal(inv, 255 - img)
    eq = render_display(img, DisplaySettings(filter="equalize"))
    cl = render_display(img, DisplaySettings(filter="clahe"))
    assert np.ptp(eq) > np.ptp(img) and np.ptp(cl) > np.ptp(img)
    rgb = np.stack([img, img // 2, img // 3], -1)
    assert render_display(rgb, DisplaySettings(filter="clahe")).shape == rgb.shape
    with pytest.raises(ValueError, match="Unknown display filter"):
        render_display(img, DisplaySettings(filter="sharpen"))  # type: ignore[arg-type]


def test_presets_scale_with_the_value_range() -> None:
    img16 = np.array([[0, 4095]], np.uint16)
    lung = next(p for p in XRAY_PRESETS if p.name == "Lung")
    s = DisplaySettings().with_preset(lung, value_range=value_range(img16))
    assert s.level == pytest.approx(0.40 * 4095) and s.window == pytest.approx(0.60 * 4095)
