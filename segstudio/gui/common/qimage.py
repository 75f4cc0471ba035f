"""numpy ⇄ QImage without copies where Qt allows it. The returned QImage keeps its array alive."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def to_display_uint8(image: np.ndarray) -> np.ndarray:
    """Full-range min/max stretch of 16-bit (or float) images to ``uint8`` for display; ``uint8`` passes through."""
    if image.dtype == np.uint8:
        return image
    a = image.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(image.shape, np.uint8)
    return ((a - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def array_to_qimage(arr: np.ndarray) -> QImage:
    """``(H, W)`` uint8 grayscale, ``(H, W, 3)`` uint8 RGB or ``(H, W, 4)`` uint8 RGBA (straight alpha) → QImage."""
    a = np.ascontiguousarray(arr)
    if a.dtype != np.uint8:
        a = to_display_uint8(a)
    h, w = a.shape[:2]
    if a.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif a.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    elif a.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    else:
        raise ValueError(f"cannot display an array of shape {a.shape}")
    img = QImage(a.data, w, h, a.strides[0], fmt)
    img._keepalive = a  # type: ignore[attr-defined]  # QImage does not own the buffer
    return img


def qimage_to_array(img: QImage) -> np.ndarray:
    """QImage → ``(H, W, 4)`` uint8 RGBA copy (used by tests and screenshots)."""
    rgba = img.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = rgba.width(), rgba.height()
    buf = np.frombuffer(rgba.constBits(), np.uint8, count=rgba.sizeInBytes())
    return buf.reshape(h, rgba.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()
