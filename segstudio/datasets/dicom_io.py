"""DICOM reading with pydicom: stored pixel values kept at full depth, window/level taken from the header.

The array returned is what training and the GUI start from (stored values, offset by 32768 when the pixels are
signed so that they fit ``uint16``; MONOCHROME1 inverted). ``dicom_header`` says how to display it: the
:class:`~segstudio.core.display.Rescale` from that array to modality units (RescaleSlope/Intercept: Hounsfield
units for CT), the header's VOI window in those units, and the pixel spacing in mm.
``Window``/``dicom_window`` give the header window converted into the array's own units (for reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.display import Rescale, VoiFunction
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


@dataclass(frozen=True)
class DicomHeader:
    """What the header says about showing and measuring ``read_dicom``'s array.

    ``rescale`` maps that array to modality units (it undoes the signed offset and the MONOCHROME1 inversion, so a
    window from the header applies as written); ``window`` is the header's first ``(WindowCenter, WindowWidth)``
    in modality units, None when absent or unusable; ``spacing`` is ``(row, column)`` mm per pixel (PixelSpacing,
    else ImagerPixelSpacing), None when absent."""

    modality: str = ""
    rescale: Rescale = Rescale()
    window: tuple[float, float] | None = None
    function: VoiFunction = "LINEAR"
    spacing: tuple[float, float] | None = None
    #: the pixels were floats or wider than 16 bits, so ``read_dicom`` scaled them min–max: no header window fits
    rescaled_min_max: bool = False


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        if value is None or isinstance(value, str | bytes) or len(value) != 2:
            return None
        a, b = float(value[0]), float(value[1])
    except Exception:  # header values of any VR reach here; a spacing that cannot be read is simply absent
        return None
    return (a, b) if all(math.isfinite(v) and v > 0 for v in (a, b)) else None


def dicom_header(path: Path) -> DicomHeader:
    """Display and measuring facts from the header only (no pixel data read)."""
    ds = _dcmread(path, pixels=False)
    try:
        modality = str(ds.get("Modality", "") or "")[:16].upper()
        slope = _first(ds.get("RescaleSlope"))
        intercept = _first(ds.get("RescaleIntercept")) or 0.0
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
        spacing = _pair(ds.get("PixelSpacing")) or _pair(ds.get("ImagerPixelSpacing"))
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))[:32]
    except Exception:  # a header element that fails to decode: no display facts, the image still shows
        return DicomHeader()
    slope = 1.0 if not slope else slope  # 0 or absent: the standard's identity
    signed = _header_int(ds, "PixelRepresentation", 0, path=path) == 1
    bits = _header_int(ds, "BitsAllocated", 16, path=path)
    wide = bits > 16  # 32-bit integers and float pixel data (read_dicom scales those min-max)
    offset = SIGNED_OFFSET if signed else 0
    # read_dicom's array a: a = stored + offset (MONOCHROME1: top - (stored + offset)); modality = slope*stored + b
    rescale = Rescale(slope, intercept - offset * slope, units="HU" if modality == "CT" else "")
    if wide:
        rescale = Rescale()
    elif photometric == "MONOCHROME1":
        top = 255 if bits <= 8 and not signed else 65535
        rescale = Rescale(-slope, slope * (top - offset) + intercept, invert=True, units=rescale.units)
    window = (center, width) if center is not None and width is not None and width >= 1 else None
    return DicomHeader(
        modality=modality,
        rescale=rescale,
        window=None if wide else window,
        function=function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",  # type: ignore[arg-type]
        spacing=spacing,
        rescaled_min_max=wide,
    )


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
