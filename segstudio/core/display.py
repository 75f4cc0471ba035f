"""Display-only image filters: window/level, invert, histogram equalisation, CLAHE.

They change what the screen shows, never the data: every function returns a new ``uint8`` array for display.
Window/level work at the image's full depth (16-bit X-rays keep their range until the last step).

Window/level follow DICOM's VOI functions (PS3.3 C.11.2.1.2-3): ``LINEAR`` (the standard's default, used for a
DICOM header's window and the CT presets), ``LINEAR_EXACT`` (``level ± window / 2`` maps to 0..255; every other
image) and ``SIGMOID``. A :class:`Rescale` first maps an image's stored values into the units the window is given
in (a CT's Hounsfield units); the output is truncated to whole grey levels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

DisplayFilter = Literal["none", "equalize", "clahe"]
DISPLAY_FILTERS: tuple[str, ...] = ("none", "equalize", "clahe")
VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
VOI_FUNCTIONS: tuple[str, ...] = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
#: the percentiles of the auto-window of images without a window of their own (16-bit PNG/TIFF, DICOM without one)
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class WindowPreset:
    name: str
    #: window centre and width as fractions of the image's full range (0..1), so a preset fits 8- and 16-bit;
    #: with ``absolute``, in the image's display units instead (Hounsfield units for CT)
    centre: float
    width: float
    absolute: bool = False


@dataclass(frozen=True)
class Rescale:
    """Stored values → display units: ``value * slope + intercept`` (DICOM's modality LUT: Hounsfield units for CT).

    ``invert``: the image is MONOCHROME1 (low values white), so the windowed result is inverted at the end, as the
    standard asks. ``units`` names the display units ("HU"), empty when they have no name."""

    slope: float = 1.0
    intercept: float = 0.0
    invert: bool = False
    units: str = ""

    @property
    def identity(self) -> bool:
        return self.slope == 1.0 and self.intercept == 0.0 and not self.invert

    def apply(self, values: np.ndarray | float) -> np.ndarray | float:
        return values * self.slope + self.intercept


NO_RESCALE = Rescale()

#: Presets a radiologist expects for plain chest films (fractions of the range, since PNG X-rays carry no HU).
XRAY_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Full range", 0.5, 1.0),
    WindowPreset("Lung", 0.40, 0.60),
    WindowPreset("Mediastinum", 0.60, 0.40),
    WindowPreset("Bone", 0.70, 0.50),
    WindowPreset("High contrast", 0.50, 0.35),
)

#: CT presets in Hounsfield units (level / window); the first is the default of a CT whose header has no window.
CT_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Soft tissue", 40.0, 400.0, absolute=True),
    WindowPreset("Lung", -600.0, 1500.0, absolute=True),
    WindowPreset("Bone", 400.0, 1800.0, absolute=True),
    WindowPreset("Brain", 40.0, 80.0, absolute=True),
    WindowPreset("Mediastinum", 50.0, 350.0, absolute=True),
    WindowPreset("Full range", 0.5, 1.0),
)


@dataclass(frozen=True)
class DisplaySettings:
    """``window``/``level`` (width/centre) in the image's display units (after its :class:`Rescale`; None = the
    full range of the dtype in use), applied with the VOI ``function``."""

    window: float | None = None
    level: float | None = None
    invert: bool = False
    filter: DisplayFilter = "none"
    clahe_clip: float = 2.0
    function: VoiFunction = "LINEAR_EXACT"

    def with_preset(self, preset: WindowPreset, *, value_range: tuple[float, float]) -> DisplaySettings:
        if preset.absolute:
            return replace(self, level=preset.centre, window=preset.width, function="LINEAR")
        lo, hi = value_range
        span = hi - lo
        return replace(self, level=lo + preset.centre * span, window=max(1.0, preset.width * span),
                       function="LINEAR_EXACT")


def value_range(image: np.ndarray, rescale: Rescale | None = None) -> tuple[float, float]:
    """(min, max) of the values an image's dtype can show, in display units: 0..255 for uint8 without a rescale,
    the data's extent otherwise."""
    if image.dtype == np.uint8 and (rescale is None or rescale.identity):
        return (0.0, 255.0)
    lo, hi = float(image.min()), float(max(image.max(), image.min() + 1))
    if rescale is None or rescale.identity:
        return (lo, hi)
    a, b = float(rescale.apply(lo)), float(rescale.apply(hi))
    return (min(a, b), max(a, b))


def voi(values: np.ndarray | float, *, level: float, window: float, function: VoiFunction = "LINEAR") -> np.ndarray:
    """DICOM's VOI functions (PS3.3 C.11.2.1.2 LINEAR / LINEAR_EXACT, C.11.2.1.3 SIGMOID) with output 0..255, as
    floats (not yet truncated). ``values`` in display units."""
    x = np.asarray(values, dtype=np.float64)
    c, w = float(level), float(window)
    if function == "LINEAR":
        if w <= 1.0:  # the standard asks for w >= 1; a width of 1 is a threshold at c - 0.5
            return np.where(x <= c - 0.5, 0.0, 255.0)
        y = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
    elif function == "LINEAR_EXACT":
        w = max(w, 1e-9)
        y = (x - (c - w / 2.0)) / w * 255.0
    elif function == "SIGMOID":
        y = 255.0 / (1.0 + np.exp(-4.0 * (x - c) / max(w, 1e-9)))
    else:
        raise ValueError(f"Unknown VOI function {function!r}; valid: {', '.join(VOI_FUNCTIONS)}")
    return np.clip(y, 0.0, 255.0)


def percentile_window(image: np.ndarray, rescale: Rescale | None = None, *,
                      percentiles: tuple[float, float] = AUTO_WINDOW_PERCENTILES) -> tuple[float, float]:
    """``(level, window)`` for ``LINEAR_EXACT`` that maps the ``percentiles`` (e.g. 0.5 % and 99.5 %) of the
    image's values to black and white, in display units. Percentiles are numpy's ``inverted_cdf`` (the smallest
    value whose cumulative share reaches p), counted exactly with a histogram for integer images."""
    flat = image.reshape(-1)
    if flat.size == 0:
        return (0.5, 1.0)
    if flat.dtype in (np.uint8, np.uint16):
        counts = np.bincount(flat, minlength=256)
        cdf = np.cumsum(counts)
        vals = [float(np.searchsorted(cdf, p / 100.0 * flat.size)) for p in percentiles]
    else:
        vals = [float(v) for v in np.percentile(flat, list(percentiles), method="inverted_cdf")]
    lo, hi = vals
    if rescale is not None and not rescale.identity:
        lo, hi = sorted((float(rescale.apply(lo)), float(rescale.apply(hi))))
    if hi <= lo:
        hi = lo + 1.0
    return ((lo + hi) / 2.0, hi - lo)


def _lut(n: int, settings: DisplaySettings, rescale: Rescale, lo_hi: tuple[float, float] | None) -> np.ndarray:
    values = rescale.apply(np.arange(n, dtype=np.float64))
    if settings.window is None or settings.level is None:
        lo, hi = lo_hi if lo_hi is not None else (0.0, 255.0)
        y = voi(values, level=(lo + hi) / 2.0, window=hi - lo, function="LINEAR_EXACT")
    else:
        y = voi(values, level=settings.level, window=settings.window, function=settings.function)
    out = y.astype(np.uint8)
    return 255 - out if rescale.invert else out


def _to_gray_or_rgb_u8(image: np.ndarray, settings: DisplaySettings, rescale: Rescale) -> np.ndarray:
    full_range = settings.window is None or settings.level is None
    if full_range and image.dtype == np.uint8 and rescale.identity:
        return image
    if image.dtype == np.uint8:
        # one 256-entry table beats float maths on every pixel
        return cv2.LUT(image, _lut(256, settings, rescale, None if full_range else (0.0, 255.0)))
    lo_hi = value_range(image, rescale) if full_range else None
    if image.dtype == np.uint16:
        # one 65,536-entry table: exact, and one gather instead of four float passes
        return _lut(65536, settings, rescale, lo_hi)[image]
    values = rescale.apply(image.astype(np.float64))
    if full_range:
        assert lo_hi is not None
        y = voi(values, level=(lo_hi[0] + lo_hi[1]) / 2.0, window=lo_hi[1] - lo_hi[0], function="LINEAR_EXACT")
    else:
        assert settings.level is not None and settings.window is not None
        y = voi(values, level=settings.level, window=settings.window, function=settings.function)
    out = y.astype(np.uint8)
    return 255 - out if rescale.invert else out


def render_display(image: np.ndarray, settings: DisplaySettings, *, rescale: Rescale | None = None) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` image of any integer dtype → ``uint8`` of the same shape for the screen.

    ``rescale`` maps stored values into the display units the window is in (and inverts MONOCHROME1)."""
    out = _to_gray_or_rgb_u8(image, settings, rescale or NO_RESCALE)
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
