"""DICOM reading with pydicom: stored pixel values kept at full depth, window/level taken from the header.

The array returned is what the GUI windows for display, so the header window is converted into the same units
(stored values, offset by 32768 when the pixels are signed so that they fit ``uint16``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.datasets.clamped_file import ClampedFile
from segstudio.datasets.problems import CorruptImageError, DatasetProblemError, ImageTooLargeError

#: Added to signed pixels (CT) so that they fit ``uint16``; ``Window`` values include it.
SIGNED_OFFSET = 32768


@dataclass(frozen=True)
class Window:
    """Display window in the units of the array ``read_dicom`` returns: show ``center ± width / 2``."""

    center: float
    width: float

    def to_dict(self) -> dict[str, float]:
        return {"center": self.center, "width": self.width}


def _dcmread(path: Path, *, pixels: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with ClampedFile(path) as f:
            return pydicom.dcmread(f, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as e:
        raise CorruptImageError(f"Not a readable DICOM file ({str(e)[:200]}).", path=path,
                                fix="Re-export or remove it.") from e
    except Exception as e:  # pydicom is a large parser that raises assorted types on hostile headers
        raise CorruptImageError(
            f"Not a readable DICOM file ({type(e).__name__}: {str(e)[:200]}).", path=path, fix="Re-export or remove it."
        ) from e


def _header_int(ds: Any, key: str, default: int, *, path: Path) -> int:
    """A whole-number header value (Rows, BitsAllocated, ...); a malformed one names the file."""
    try:
        value = ds.get(key, default)
        return default if value is None or value == "" else int(value)
    except Exception as e:  # a value of the wrong VR, a multi-valued tag, bytes where a number belongs
        raise CorruptImageError(
            f"The DICOM header's {key} is not a whole number ({type(e).__name__}).", path=path,
            fix="Re-export or remove the file.",
        ) from e


def is_dicom(path: Path) -> bool:
    """True when the file has the DICOM preamble magic (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def dicom_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header."""
    ds = _dcmread(path, pixels=False)
    cols, rows = _header_int(ds, "Columns", 0, path=path), _header_int(ds, "Rows", 0, path=path)
    if rows <= 0 or cols <= 0:
        raise CorruptImageError("The DICOM file has no image (no Rows/Columns).", path=path)
    return cols, rows


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except Exception:  # header values of any VR reach here; a window that cannot be read is simply absent
        return None
    return f if math.isfinite(f) else None


def dicom_window(path: Path) -> Window | None:
    """The header's first WindowCenter/WindowWidth, in the units of ``read_dicom``'s array; None if absent."""
    ds = _dcmread(path, pixels=False)
    try:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        slope_v, intercept_v = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    except Exception:  # a header element that fails to decode: no window, the image still shows
        return None
    if center is None or width is None or width <= 0:
        return None
    slope = _first(slope_v) or 1.0
    intercept = _first(intercept_v) or 0.0
    # The header window is in modality units (e.g. HU); undo the rescale to reach stored values.
    stored_center = (center - intercept) / slope
    stored_width = width / abs(slope)
    signed = _header_int(ds, "PixelRepresentation", 0, path=path) == 1
    if signed:
        stored_center += SIGNED_OFFSET
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        # read_dicom inverts MONOCHROME1 within its dtype's range; the window follows.
        top = 255 if _header_int(ds, "BitsAllocated", 16, path=path) <= 8 and not signed else 65535
        stored_center = top - stored_center
    return Window(stored_center, stored_width)


def read_dicom(path: Path, *, max_pixels: int | None) -> np.ndarray:
    """Decode the first frame: ``(H, W) uint8/uint16`` (MONOCHROME1 inverted) or ``(H, W, 3) uint8`` RGB."""
    header = _dcmread(path, pixels=False)
    rows, cols = _header_int(header, "Rows", 0, path=path), _header_int(header, "Columns", 0, path=path)
    if rows <= 0 or cols <= 0:
        raise CorruptImageError("The DICOM file has no image (no Rows/Columns).", path=path)
    if max_pixels is not None and rows * cols > max_pixels:
        raise ImageTooLargeError(
            f"The DICOM image declares {cols}x{rows} pixels, over the limit of {max_pixels:,}.", path=path
        )
    ds = _dcmread(path, pixels=True)
    try:
        arr = ds.pixel_array
    except (ValueError, EOFError) as e:  # pixel data shorter than Rows x Columns says, broken fragments
        raise CorruptImageError(
            f"The DICOM pixel data is corrupt or truncated ({e}).", path=path, fix="Re-export or remove the file."
        ) from e
    except Exception as e:  # pydicom raises assorted types when a codec is missing
        raise DatasetProblemError(
            f"Cannot decode the DICOM pixel data ({type(e).__name__}: {e}).",
            path=path,
            fix="Compressed transfer syntaxes need a codec (pylibjpeg / gdcm); or export the series uncompressed.",
        ) from e
    if _header_int(ds, "NumberOfFrames", 1, path=path) > 1 and arr.ndim >= 3:
        arr = arr[0]  # 2-D tool: the first frame of a multi-frame object
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))[:32]
    if arr.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        return np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)
    if arr.dtype.kind == "i":
        arr = (arr.astype(np.int32) + SIGNED_OFFSET).clip(0, 65535).astype(np.uint16)
    elif arr.dtype.itemsize > 2 or arr.dtype.kind == "f":
        a = arr.astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        arr = ((a - lo) / (hi - lo) * 65535.0).astype(np.uint16) if hi > lo else np.zeros(a.shape, np.uint16)
    if photometric == "MONOCHROME1":
        top = np.iinfo(arr.dtype).max if arr.dtype.kind == "u" else int(arr.max())
        arr = (top - arr).astype(arr.dtype)
    return np.ascontiguousarray(arr)
