"""Display-only image filters: window/level, invert, histogram equalisation, CLAHE.

They change what the screen shows, never the data: every function returns a new ``uint8`` array for display.
Window/level work at the image's full depth (16-bit X-rays keep their range until the last step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

DisplayFilter = Literal["none", "equalize", "clahe"]
DISPLAY_FILTERS: tuple[str, ...] = ("none", "equalize", "clahe")


@dataclass(frozen=True)
class WindowPreset:
    name: str
    #: window centre and width as fractions of the image's full range (0..1), so a preset fits 8- and 16-bit
    centre: float
    width: float


#: Presets a radiologist expects for plain chest films (fractions of the range, since PNG X-rays carry no HU).
XRAY_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Full range", 0.5, 1.0),
    WindowPreset("Lung", 0.40, 0.60),
    WindowPreset("Mediastinum", 0.60, 0.40),
    WindowPreset("Bone", 0.70, 0.50),
    WindowPreset("High contrast", 0.50, 0.35),
)


@dataclass(frozen=True)
class DisplaySettings:
    """``window``/``level`` in the image's own value units (None = the full range of the dtype in use)."""

    window: float | None = None
    level: float | None = None
    invert: bool = False
    filter: DisplayFilter = "none"
    clahe_clip: float = 2.0

    def with_preset(self, preset: WindowPreset, *, value_range: tuple[float, float]) -> DisplaySettings:
        lo, hi = value_range
        span = hi - lo
        return replace(self, level=lo + preset.centre * span, window=max(1.0, preset.width * span))


def value_range(image: np.ndarray) -> tuple[float, float]:
    """(min, max) of the values an image's dtype can show: 0..255 for uint8, the data's extent otherwise."""
    if image.dtype == np.uint8:
        return (0.0, 255.0)
    return (float(image.min()), float(max(image.max(), image.min() + 1)))


def _to_gray_or_rgb_u8(image: np.ndarray, window: float | None, level: float | None) -> np.ndarray:
    if window is None or level is None:
        if image.dtype == np.uint8:
            return image
        lo, hi = value_range(image)
    else:
        lo, hi = level - window / 2.0, level + window / 2.0
    if hi <= lo:
        hi = lo + 1.0
    if image.dtype == np.uint8:
        # one 256-entry table beats float maths on every pixel
        lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        return cv2.LUT(image, lut)
    a = (image.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(a, 0, 255).astype(np.uint8)


def render_display(image: np.ndarray, settings: DisplaySettings) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` image of any integer dtype → ``uint8`` of the same shape for the screen."""
    out = _to_gray_or_rgb_u8(image, settings.window, settings.level)
    if settings.filter != "none":
        if settings.filter not in DISPLAY_FILTERS:
            raise ValueError(f"Unknown display filter {settings.filter!r}; valid: {', '.join(DISPLAY_FILTERS)}")
        out = _equalise(out, clahe=settings.filter == "clahe", clip=settings.clahe_clip)
    if settings.invert:
        out = 255 - out
    return out if out is not image else out.copy()


def _equalise(u8: np.ndarray, *, clahe: bool, clip: float) -> np.ndarray:
    def one(ch: np.ndarray) -> np.ndarray:
        if clahe:
            return cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(ch)
        return cv2.equalizeHist(ch)

    if u8.ndim == 2:
        return one(u8)
    # equalise lightness only, so colours do not shift
    lab = cv2.cvtColor(np.ascontiguousarray(u8), cv2.COLOR_RGB2LAB)
    lab[..., 0] = one(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
