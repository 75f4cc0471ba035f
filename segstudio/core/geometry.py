"""Annotation geometry: COCO-style polygons and run-length encodings to and from pixel masks.

Polygons are rasterised with pycocotools, the reference COCO implementation, so a mask decoded here equals what
COCO tooling (``annToMask``) produces for the same annotation. Points may lie outside the image (the shape is
clipped); polygons with fewer than three points cover no pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class GeometryError(ValueError):
    """An annotation shape that cannot be rasterised (non-finite coordinates, malformed or mis-sized RLE)."""


def _mask_utils() -> Any:
    from pycocotools import mask as mask_utils  # compiled extension: import only when shapes are decoded

    return mask_utils


def flatten_points(points: Sequence[Sequence[float]]) -> list[float]:
    """``[[x, y], ...]`` -> ``[x1, y1, x2, y2, ...]`` (the COCO polygon form)."""
    out: list[float] = []
    for p in points:
        if len(p) < 2:
            raise GeometryError(f"A point needs x and y, got {list(p)!r}.")
        out.extend((float(p[0]), float(p[1])))
    return out


def polygon_to_mask(coords: Sequence[float], *, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon ``[x1, y1, x2, y2, ...]`` (pixel coordinates) to an ``(height, width) bool`` mask.

    Fewer than three points give an empty mask; points outside the image are clipped by the rasteriser.
    Raises ``GeometryError`` for an odd number of values or non-finite coordinates.
    """
    if len(coords) % 2:
        raise GeometryError(f"A polygon needs x, y pairs; got {len(coords)} values.")
    if not all(math.isfinite(float(v)) for v in coords):
        raise GeometryError("A polygon has a non-finite coordinate (NaN or infinity).")
    if height <= 0 or width <= 0 or len(coords) < 6:
        return np.zeros((max(height, 0), max(width, 0)), bool)
    return runs_to_mask(segmentation_runs([list(coords)], height=height, width=width), height=height, width=width)


def polygons_to_mask(polygons: Sequence[Sequence[float]], *, height: int, width: int) -> np.ndarray:
    """Union of several polygons (one COCO annotation may have many parts) as ``(height, width) bool``."""
    return runs_to_mask(segmentation_runs([list(p) for p in polygons], height=height, width=width), height=height, width=width)


def rle_to_mask(rle: Mapping[str, Any], *, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (``counts`` as a list = uncompressed, or a string = compressed) to ``(H, W) bool``.

    Raises ``GeometryError`` when the RLE's ``size`` differs from ``(height, width)`` or its counts do not add up.
    """
    try:
        size = [int(v) for v in rle["size"]]
        rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise GeometryError("An RLE needs 'size' [height, width] and 'counts'.") from e
    if size != [height, width]:
        raise GeometryError(f"The RLE is {size[1]}x{size[0]} but the image is {width}x{height}.")
    return runs_to_mask(segmentation_runs(rle, height=height, width=width), height=height, width=width)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """``(H, W) bool`` -> compressed COCO RLE ``{"size": [H, W], "counts": str}``."""
    mu = _mask_utils()
    rle = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_to_uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """``(H, W) bool`` -> uncompressed COCO RLE (column-major runs, starting with a background run)."""
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def segmentation_to_mask(segmentation: Any, *, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (list of polygons, or an RLE dict) as ``(height, width) bool``."""
    if isinstance(segmentation, Mapping):
        return rle_to_mask(segmentation, height=height, width=width)
    if isinstance(segmentation, list):
        if segmentation and all(isinstance(v, int | float) for v in segmentation):
            return polygon_to_mask(segmentation, height=height, width=width)  # a bare polygon, seen in the wild
        polys = []
        for poly in segmentation:
            if not isinstance(poly, list) or not all(isinstance(v, int | float) for v in poly):
                raise GeometryError("A polygon must be a flat list of numbers [x1, y1, x2, y2, ...].")
            polys.append(poly)
        return polygons_to_mask(polys, height=height, width=width)
    raise GeometryError(f"Unknown segmentation type {type(segmentation).__name__}: expected polygons or an RLE.")


# --- run-length painting: decoding a 1024² annotation to a full mask costs ~6 ms; painting its runs costs its area.


def decode_rle_string(counts: str | bytes) -> np.ndarray:
    """COCO's compressed RLE string (LEB128-like, deltas from two back) -> run lengths ``(N,) int64``."""
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    cnts: list[int] = []
    p, n = 0, len(data)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise GeometryError("The compressed RLE string ends in the middle of a number.")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    arr = np.asarray(cnts, np.int64)
    if (arr < 0).any():
        raise GeometryError("The compressed RLE has a negative run.")
    return arr


def segmentation_runs(segmentation: Any, *, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground runs ``(starts, lengths)``, both ``(K,) int64``, in column-major (Fortran) pixel order.

    Same pixels as ``segmentation_to_mask`` (polygons go through pycocotools' RLE), without the full-image decode.
    """
    if isinstance(segmentation, Mapping):
        counts = segmentation.get("counts")
        try:
            size = [int(v) for v in segmentation["size"]]
        except (KeyError, TypeError, ValueError) as e:
            raise GeometryError("An RLE needs 'size' [height, width] and 'counts'.") from e
        if size != [height, width]:
            raise GeometryError(f"The RLE is {size[1]}x{size[0]} but the image is {width}x{height}.")
        if isinstance(counts, list):
            if any((not isinstance(c, int)) or c < 0 for c in counts):
                raise GeometryError("Uncompressed RLE counts must be non-negative integers.")
            runs = np.asarray(counts, np.int64)
        elif isinstance(counts, str | bytes):
            runs = decode_rle_string(counts)
        else:
            raise GeometryError(f"RLE counts must be a list or a string, not {type(counts).__name__}.")
        if int(runs.sum()) != height * width:
            raise GeometryError(f"The RLE counts add up to {int(runs.sum())}, not {height}x{width} = {height * width}.")
    elif isinstance(segmentation, list):
        polys = [segmentation] if segmentation and all(isinstance(v, int | float) for v in segmentation) else segmentation
        good = []
        for poly in polys:
            if not isinstance(poly, list) or not all(isinstance(v, int | float) for v in poly):
                raise GeometryError("A polygon must be a flat list of numbers [x1, y1, x2, y2, ...].")
            if len(poly) % 2:
                raise GeometryError(f"A polygon needs x, y pairs; got {len(poly)} values.")
            if not all(math.isfinite(float(v)) for v in poly):
                raise GeometryError("A polygon has a non-finite coordinate (NaN or infinity).")
            if len(poly) >= 6:
                good.append([float(v) for v in poly])
        if not good or height <= 0 or width <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        mu = _mask_utils()
        rle = mu.merge(mu.frPyObjects(good, height, width))
        runs = decode_rle_string(rle["counts"])
    else:
        raise GeometryError(f"Unknown segmentation type {type(segmentation).__name__}: expected polygons or an RLE.")
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = slice(1, None, 2)  # runs alternate background, foreground, ... starting with background
    keep = runs[fg] > 0
    return starts[fg][keep], runs[fg][keep]


def run_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat (column-major) pixel indices covered by the runs, ``(sum(lengths),) int64``."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def runs_to_mask(runs: tuple[np.ndarray, np.ndarray], *, height: int, width: int) -> np.ndarray:
    """``(height, width) bool`` from column-major foreground runs."""
    flat = np.zeros(height * width, bool)
    flat[run_indices(*runs)] = True
    return flat.reshape((width, height)).T.copy()
