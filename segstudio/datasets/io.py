"""Safe image and mask reading: full bit depth kept, decompression bombs refused, broken files named.

Every reader raises ``DatasetError`` (or one of its subclasses below) whose message names the file, so that a
format can turn it into a ``Problem`` and go on with the rest of the dataset.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import Problem, ProblemKind
from segstudio.datasets.clamped_file import ClampedFile
from segstudio.datasets.problems import CorruptImageError, DatasetProblemError, ImageTooLargeError
from segstudio.datasets.problems import ReaderFailedError as ReaderFailedError  # re-exported (readers, tests)

log = logging.getLogger(__name__)

#: Largest image (width x height) decoded by default: 16k x 16k. Bigger headers are treated as decompression bombs.
DEFAULT_MAX_PIXELS = 16384 * 16384

#: File name extensions treated as images when listing folders (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".dcm", ".dicom"}
)
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})

# Our check runs first and names the file; PIL's own (warn above its limit, raise above twice that) stays on as a
# backstop for every other PIL user in the process, raised so that it never fires below our default.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < DEFAULT_MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The EXIF Orientation tag (1 = as stored; 2-8 = mirrored and/or rotated, see :func:`apply_orientation`).
EXIF_ORIENTATION = 0x0112


def is_file(path: Path) -> bool:
    """``path.is_file()`` that answers False instead of raising (a name too long, a NUL byte, a loop)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def problem_from_error(err: DatasetError, sample_id: str | None = None) -> Problem:
    """The ``Problem`` an error stands for (``OTHER`` unless it is a ``DatasetProblemError``)."""
    if isinstance(err, DatasetProblemError):
        return err.to_problem(sample_id)
    msg = err.message if not err.fix else f"{err.message} Fix: {err.fix}"
    return Problem(ProblemKind.OTHER, msg, path=err.path, sample_id=sample_id)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (no recursion, hidden files skipped)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted((p for p in entries if is_image_file(p) and p.is_file()), key=lambda p: p.name)


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"The image declares {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (a possible decompression bomb); it was not decoded.",
            path=path,
            fix="Check the file; if it is genuine, raise the pixel limit (max_pixels) when opening the dataset.",
        )


def _png_ihdr(path: Path) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a PNG header, or None for other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(29)
    except OSError:
        return None
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _pil_bomb(path: Path, err: Exception, max_pixels: int | None) -> ImageTooLargeError:
    """PIL refuses headers over twice its limit before we see the size; name the size where the header is PNG."""
    dims = _png_dims(path)
    if dims is not None:
        w, h = dims
        what = f"The image declares {w}x{h} = {w * h:,} pixels"
    else:
        what = f"The image is over PIL's limit ({err})"
    limit = f"the limit of {max_pixels:,}" if max_pixels is not None else "PIL's limit"
    return ImageTooLargeError(
        f"{what}, over {limit} (a possible decompression bomb); it was not decoded.",
        path=path,
        fix="Check the file; if it is genuine, raise the pixel limit (max_pixels, and PIL.Image.MAX_IMAGE_PIXELS).",
    )


def _png_dims(path: Path) -> tuple[int, int] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def exif_orientation(im: Image.Image) -> int:
    """The EXIF Orientation (1-8) of an opened image; 1 when it has none or an invalid one.

    Cheap: EXIF is parsed only where the file carries it. JPEG's APP1 (and WebP's, and a PNG ``eXIf`` chunk
    before the pixel data) is in ``im.info`` once opened; TIFF tags are parsed by opening; a PNG ``eXIf`` after
    the pixel data appears in ``im.info`` once the image is loaded. Other images are not looked at. (PIL and
    OpenCV turn a TIFF themselves while decoding it; PIL drops its tag then, and reports its size as shown.)"""
    try:
        if "exif" in im.info:
            value = im.getexif().get(EXIF_ORIENTATION)
        elif im.format == "TIFF":
            value = getattr(im, "tag_v2", {}).get(EXIF_ORIENTATION)
        else:
            return 1
    except Exception:  # a damaged EXIF block does not make the pixels unreadable: shown as stored
        log.debug("unreadable EXIF in %s", getattr(im, "filename", "?"), exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W[, C])`` stored pixels -> as shown (the EXIF Orientation applied as PIL's ``exif_transpose`` and
    every viewer does); 5-8 swap height and width."""
    if orientation == 2:
        out = arr[:, ::-1]
    elif orientation == 3:
        out = arr[::-1, ::-1]
    elif orientation == 4:
        out = arr[::-1]
    elif orientation == 5:
        out = arr.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(arr, k=-1)
    elif orientation == 7:
        out = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(arr, k=1)
    else:
        return arr
    return np.ascontiguousarray(out)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` as shown (EXIF Orientation applied), from the header only (no pixel decoding). Raises
    ``CorruptImageError``."""
    p = Path(path)
    if p.suffix.lower() in DICOM_EXTENSIONS:
        from segstudio.datasets.dicom_io import dicom_size

        return dicom_size(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # callers apply their own limit
            with ClampedFile(p) as f, Image.open(f) as im:  # type: ignore[arg-type]
                w, h = int(im.size[0]), int(im.size[1])
                # PIL reports a TIFF's size as shown already
                return (h, w) if im.format != "TIFF" and exif_orientation(im) >= 5 else (w, h)
    except Image.DecompressionBombError as e:
        dims = _png_dims(p)
        if dims is not None:
            return dims  # the caller compares the size with its own limit
        raise _pil_bomb(p, e, None) from e
    except DatasetError:
        raise
    except Exception as e:  # PIL's plugins raise assorted types (struct.error, IndexError, ...) on hostile headers
        raise CorruptImageError(
            f"Cannot read the image header ({type(e).__name__}: {str(e)[:200]}).", path=p,
            fix="Re-export or remove the file.",
        ) from e


def _decode_cv2(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)  # np.fromfile + imdecode copes with non-ASCII paths
    try:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as e:  # OpenCV asserts on some malformed inputs instead of returning None
        raise CorruptImageError(
            f"OpenCV could not decode the image ({str(e).strip()[-160:]}).", path=path, fix="Re-export or remove the file."
        ) from e
    if arr is None:
        raise CorruptImageError("OpenCV could not decode the image.", path=path, fix="Re-export or remove the file.")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
        elif arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr)


def _pil_array(im: Image.Image, *, keep_palette: bool, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("L", "RGB"):
        return np.asarray(im)
    if mode == "P":
        return np.asarray(im) if keep_palette else np.asarray(im.convert("RGB"))
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise CorruptImageError(
                f"32-bit integer image with values {arr.min()}..{arr.max()} does not fit 16 bits.",
                path=path,
                fix="Convert it to 16-bit.",
            )
        return arr.astype(np.uint16)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        # Float images have no fixed range; spread them over 16 bits so display windowing keeps the detail.
        scaled = (arr - lo) / (hi - lo) * 65535.0 if hi > lo else np.zeros_like(arr)
        return scaled.astype(np.uint16)
    if mode in ("LA", "La"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


def _wide_colour_tiff(im: Image.Image) -> bool:
    if im.format != "TIFF" or im.mode not in ("RGB", "RGBA", "RGBX"):
        return False
    bits: Any = getattr(im, "tag_v2", {}).get(258)  # BitsPerSample
    values = bits if isinstance(bits, tuple | list) else [bits]
    return any(isinstance(v, int) and v > 8 for v in values)


def _read_raster(path: Path, *, max_pixels: int | None, keep_palette: bool) -> np.ndarray:
    if not is_file(path):
        raise DatasetProblemError(
            "The file does not exist.", path=path, fix="Check the dataset folder.", kind=ProblemKind.MISSING_IMAGE
        )
    if path.suffix.lower() in DICOM_EXTENSIONS:
        from segstudio.datasets.dicom_io import read_dicom

        return read_dicom(path, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. TIFF tag warnings; errors still raise
            with ClampedFile(path) as f, Image.open(f) as im:  # type: ignore[arg-type]
                _check_pixels(path, im.size[0], im.size[1], max_pixels)
                ihdr = _png_ihdr(path)
                # PIL narrows 16-bit colour PNGs and TIFFs to 8 bits; OpenCV keeps them (after PIL proved the
                # file sound by loading it).
                wide_colour = (ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 6)) or _wide_colour_tiff(im)
                im.load()
                arr = _decode_cv2(path) if wide_colour else _pil_array(im, keep_palette=keep_palette, path=path)
                if im.format == "TIFF":
                    return arr  # PIL and OpenCV both turn a TIFF by its Orientation themselves
                # Shown as every viewer (and labelme, where polygons are drawn) shows it: the masks align with that.
                # After load, so that a PNG eXIf chunk behind the pixel data is seen too.
                return apply_orientation(arr, exif_orientation(im))
    except DatasetError:
        raise
    except Image.DecompressionBombError as e:
        raise _pil_bomb(path, e, max_pixels) from e
    except UnidentifiedImageError as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            # TIFF variants PIL lacks (e.g. 16-bit RGB) still decode with OpenCV.
            return _decode_cv2(path)
        raise CorruptImageError(
            "Not a readable image file (unknown or damaged format).", path=path, fix="Re-export or remove the file."
        ) from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise CorruptImageError(
            f"The image is corrupt or truncated ({str(e)[:200]}).", path=path, fix="Re-export or remove the file."
        ) from e
    except Exception as e:  # PIL's plugins raise assorted types (struct.error, IndexError, ...) on hostile files
        raise CorruptImageError(
            f"The image cannot be decoded ({type(e).__name__}: {str(e)[:200]}).", path=path,
            fix="Re-export or remove the file.",
        ) from e


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image for display and training.

    Returns ``(H, W)`` grayscale or ``(H, W, 3)`` RGB, ``uint8`` or ``uint16`` (16-bit PNG/TIFF/DICOM keep full
    depth). Alpha is dropped, palettes are expanded, 1-bit images become 0/255. An EXIF Orientation (JPEG, PNG,
    TIFF, WebP) is applied: the pixels are as viewers show them.
    Raises ``CorruptImageError`` / ``ImageTooLargeError`` / ``DatasetError`` naming the file.
    """
    return _read_raster(Path(path), max_pixels=max_pixels, keep_palette=False)


def read_mask(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a mask file without changing its values.

    Returns ``(H, W)`` ``uint8``/``uint16`` (index or binary masks; palette PNGs keep their indices; 1-bit
    images become 0/255) or ``(H, W, 3)`` ``uint8`` for colour-coded masks; an EXIF Orientation is applied as in
    ``read_image``. Raises like ``read_image``.
    """
    return _read_raster(Path(path), max_pixels=max_pixels, keep_palette=True)


def read_binary_mask(
    path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, foreground_value: int = 1
) -> np.ndarray:
    """A binary mask as ``(H, W) bool``: values above ``foreground_value // 2`` are foreground.

    The convention is the caller's, never this mask's own maximum (which lost a 0/1 mask with one stray 2): the
    default 1 makes any non-zero value foreground; 255 reads 0/255 masks with interpolated edges cleanly. 1-bit
    and 24-bit masks (PH2's) read as 0/255. Datasets decide the value once: ``segstudio.datasets.binary``.
    """
    arr = read_mask(path, max_pixels=max_pixels)
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    return arr > foreground_value // 2
