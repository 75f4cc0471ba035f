"""How an image is shown before anyone touches window/level: the DICOM header's window in modality units, else a
modality preset (CT: soft tissue, in Hounsfield units), else a percentile auto-window for images deeper than
8 bits (16-bit PNG/TIFF, DICOM without a window); 8-bit images show as stored. Display only: the array that
training reads is never changed (``Dataset.load_image``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from segstudio.core.display import (
    AUTO_WINDOW_PERCENTILES,
    CT_PRESETS,
    NO_RESCALE,
    XRAY_PRESETS,
    DisplaySettings,
    Rescale,
    VoiFunction,
    WindowPreset,
    percentile_window,
)
from segstudio.datasets.base import Dataset, Sample

#: The preset a CT opens with when its header has no window (documented in docs/formats.md).
CT_DEFAULT_PRESET = CT_PRESETS[0]


@dataclass(frozen=True)
class ImageDisplay:
    """The default display of one image. ``level``/``window`` in display units (after ``rescale``), None = the
    dtype's full range; ``source`` says where they came from, for the Layers panel ("header", "CT preset: Soft
    tissue", "auto 0.5–99.5 %", "full range"); ``presets`` are the window presets that fit the image."""

    rescale: Rescale = NO_RESCALE
    level: float | None = None
    window: float | None = None
    function: VoiFunction = "LINEAR_EXACT"
    source: str = "full range"
    presets: tuple[WindowPreset, ...] = XRAY_PRESETS

    def settings(self, base: DisplaySettings | None = None) -> DisplaySettings:
        """``base`` (invert, filter kept) with this image's window, level and VOI function."""
        return replace(base or DisplaySettings(), window=self.window, level=self.level, function=self.function)


def default_display(ds: Dataset, sample: Sample, image: np.ndarray) -> ImageDisplay:
    """The display ``image`` (``ds.load_image(sample)``) opens with; see the module docstring for the order."""
    from segstudio.datasets.formats.medical import sample_header

    header = sample_header(ds, sample) if image.ndim == 2 else None  # colour DICOM: shown as stored
    rescale = header.rescale if header is not None else NO_RESCALE
    is_ct = header is not None and header.modality == "CT"
    presets = CT_PRESETS if is_ct else XRAY_PRESETS
    if header is not None and header.window is not None:
        center, width = header.window
        return ImageDisplay(rescale, center, width, header.function, "header", presets)
    if is_ct and header is not None and not header.rescaled_min_max:
        p = CT_DEFAULT_PRESET
        return ImageDisplay(rescale, p.centre, p.width, "LINEAR", f"CT preset: {p.name}", presets)
    if image.dtype == np.uint8 and rescale.identity:
        return ImageDisplay(rescale, presets=presets)
    level, window = percentile_window(image, rescale)
    lo, hi = AUTO_WINDOW_PERCENTILES
    return ImageDisplay(rescale, level, window, "LINEAR_EXACT", f"auto {lo:g}–{hi:g} %", presets)
