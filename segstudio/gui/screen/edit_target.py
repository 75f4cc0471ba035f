"""What the editor edits (:class:`EditTarget`) and the overlays drawn for it ahead of time (:func:`prepare_layers`,
in a prefetch worker): the label overlay, the error map against the prediction, the pixel counts per class. Pure
NumPy and OpenCV, safe in any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core.types import ClassSchema
from segstudio.masks import OverlayRenderer, OverlayStyle
from segstudio.metrics.compare import ErrorCode, error_map

#: RGBA of each error code: FP red, FN blue, confused yellow. Agreement (TP, TN) and ignored pixels stay clear,
#: so the GT colours show through where the two agree and only the disagreement is painted.
ERROR_COLOURS: dict[int, tuple[int, int, int, int]] = {
    ErrorCode.FP: (240, 50, 50, 255),
    ErrorCode.FN: (40, 120, 255, 255),
    ErrorCode.CONFUSED: (250, 210, 0, 255),
}


def _error_lut() -> np.ndarray:
    """code → RGBA packed in one uint32, so colouring a map is one 4-byte gather per pixel."""
    lut = np.zeros((256, 4), np.uint8)
    for code, rgba in ERROR_COLOURS.items():
        lut[int(code)] = rgba
    return lut.view(np.uint32).ravel()


_ERROR_LUT = _error_lut()


def colour_errors(codes: np.ndarray) -> np.ndarray:
    """``uint8 (h, w)`` error codes → ``uint8 (h, w, 4)`` RGBA."""
    return _ERROR_LUT[codes].view(np.uint8).reshape(*codes.shape, 4)



_DRAW_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segstudio-draw")


def pixel_counts(mask: np.ndarray, schema: ClassSchema) -> dict[int, int]:
    """Pixels per class id of a mask (index map or uint64 bitmask)."""
    if schema.multilabel:
        return {c.id: int(np.count_nonzero(mask & np.uint64(1 << c.id))) for c in schema}
    if mask.dtype == np.uint8:  # a histogram is far faster than bincount on 2048² (no int64 copy)
        counts = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(mask.ravel(), minlength=schema.max_id + 1)
    return {c.id: int(counts[c.id]) if c.id < counts.size else 0 for c in schema}


@dataclass(frozen=True)
class PreparedLayers:
    """Overlays drawn ahead of time (in a prefetch worker) for one base mask, style and error-map class."""

    style: OverlayStyle
    error_class: int | None
    gt_rgba: np.ndarray
    err_rgba: np.ndarray | None
    counts: dict[int, int]


def prepare_layers(*, base: np.ndarray, prediction: np.ndarray | None, schema: ClassSchema, style: OverlayStyle,
                   error_class: int | None) -> PreparedLayers:
    """Draw the GT/correction overlay and the error map of a sample (pure numpy: safe in any thread).

    The overlay is drawn in a helper thread while this one draws the error map: NumPy releases the GIL in both,
    so a cold 2048² sample waits for the slower of the two, not their sum.
    """
    gt_future = _DRAW_POOL.submit(OverlayRenderer(schema, style).render, base)
    err = None
    try:
        if prediction is not None and prediction.shape == base.shape:
            err = colour_errors(error_map(base, prediction, schema=schema, class_id=error_class))
        counts = pixel_counts(base, schema)
    finally:
        gt_rgba = gt_future.result()
    return PreparedLayers(style, error_class, gt_rgba, err, counts)


@dataclass(frozen=True)
class EditTarget:
    """What the editor edits: the sample, its decoded arrays and where its current mask came from.

    ``base``: the mask editing starts from (latest saved version, a recovered journal, or the GT);
    ``base_version``: its workspace version (0 = the dataset's GT).
    """

    sample_id: str
    image: np.ndarray
    gt: np.ndarray | None
    prediction: np.ndarray | None
    base: np.ndarray
    base_version: int
    schema: ClassSchema
    layers: PreparedLayers | None = None
