"""Thumbnails of images deeper than 8 bits use the percentile window the canvas opens them with, not min–max:
a real X-ray stored as 16 bits with a small saturated marker keeps its contrast in the sample list."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segstudio.core.display import DisplaySettings, percentile_window, render_display
from segstudio.gui.screen.thumbnails import make_thumbnail


def test_a_16_bit_xray_thumbnail_is_windowed_like_the_canvas(montgomery: Path) -> None:
    import cv2

    xray = cv2.imread(str(sorted((montgomery / "cxr").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    deep = (xray.astype(np.uint16) * 16 + 100)  # 12 bits of signal in a 16-bit file
    deep[:16, :16] = 65535  # a small burned-in marker at full scale
    thumb = make_thumbnail(deep, px=128)
    small = cv2.resize(deep, thumb.shape[::-1], interpolation=cv2.INTER_AREA)
    level, window = percentile_window(small)
    assert np.array_equal(thumb, render_display(small, DisplaySettings(window=window, level=level)))
    stretched = ((small.astype(np.float64) - small.min()) / (small.max() - small.min()) * 255).astype(np.uint8)
    assert thumb.std() > 3 * stretched.std()  # min–max would have squashed it towards black
