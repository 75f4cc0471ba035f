"""Annotation geometry: COCO-style polygons and run-length encodings to and from pixel masks.

Polygons are rasterised with pycocotools, the reference COCO implementation, so a mask decoded here equals what
COCO tooling (``annToMask``) produces for the same annotation. Points may lie outside the image (the shape is
clipped); polygons with fewer than three points cover no pixels.

Everything is bounded and validated here, before the native rasteriser sees it (issue 13, case 1): pycocotools
walks each polygon edge in 1/5-pixel steps into ``int`` arrays, so one coordinate of 1e8 makes it allocate
gigabytes and 1e9 overflows its counters and segfaults. Coordinates must be finite and lie within
``SANE_MULTIPLE`` image sizes of the image (plus ``REACH_SLACK_PX``); the outline one mask may ask for is capped
(``MAX_OUTLINE_PX``); RLE sizes and counts must be whole, non-negative and add up to ``height * width``. Shapes
within those bounds go to pycocotools unchanged, so the pixels stay those of COCO tooling: clipping polygons to
the image first would bound nothing more and changes a few pixels along clipped edges (measured: 1-30 px in a
fifth of far-reaching polygons), since the rasteriser's steps depend on the edge's end points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class GeometryError(ValueError):
    """An annotation shape that cannot be rasterised (non-finite or far-out coordinates, malformed or mis-sized
    RLE, an outline too long to draw)."""


#: Coordinates further outside the image than this many times its larger side are not a plausible annotation.
SANE_MULTIPLE = 8
#: Absolute slack (px) added to that reach, so that tiny images keep annotations that spill a little.
REACH_SLACK_PX = 1024
#: Most polygon outline (px, summed over the polygons of one mask) drawn: ~1 s and ~160 MB of pycocotools work.
MAX_OUTLINE_PX = 4_000_000
#: Largest mask (pixels) rasterised here: pycocotools counts runs in 32-bit integers.
MAX_RASTER_PIXELS = 2**31 - 1
#: pycocotools draws at 5 steps per pixel.
_STEPS_PER_PX = 5


class OutlineBudget:
    """The outline (px) still allowed for one mask; shared by the polygons painted into it."""

    def __init__(self, px: int = MAX_OUTLINE_PX) -> None:
        self.left = px

    def spend(self, px: float) -> None:
        self.left -= int(px) + 1
        if self.left < 0:
            raise GeometryError(
                f"The polygons of this image have an outline of more than {MAX_OUTLINE_PX:,} px, too long to draw "
                "(coordinates far outside the image, or a polygon that zig-zags across it millions of times)."
            )


def _mask_utils() -> Any:
    from pycocotools import mask as mask_utils  # compiled extension: import only when shapes are decoded

    return mask_utils


def check_raster_size(height: Any, width: Any) -> tuple[int, int]:
    """``(height, width)`` as ints after checking they are whole, non-negative and not too many pixels."""
    try:
        h, w = _whole(height), _whole(width)
    except (TypeError, ValueError, OverflowError) as e:
        raise GeometryError(f"An image size must be two whole numbers, not {_short(height)} x {_short(width)}.") from e
    if h < 0 or w < 0 or h * w > MAX_RASTER_PIXELS:
        raise GeometryError(f"A mask of {w}x{h} pixels cannot be drawn (0 to {MAX_RASTER_PIXELS:,} pixels).")
    return h, w


def _whole(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise TypeError(type(v).__name__)
    f = float(v)
    if not np.isfinite(f) or f != int(f):
        raise ValueError(v)
    return int(v)


def _short(v: Any) -> str:
    """A value for a message, never long (hostile documents hold megabyte strings and deep lists)."""
    if isinstance(v, int | float | np.number) and not isinstance(v, bool):
        text = repr(v)
        return text if len(text) <= 24 else text[:20] + "..."
    return f"a {type(v).__name__}"


def flatten_points(points: Sequence[Sequence[float]]) -> list[float]:
    """``[[x, y], ...]`` -> ``[x1, y1, x2, y2, ...]`` (the COCO polygon form)."""
    if not isinstance(points, list | tuple):
        raise GeometryError(f"Points must be a list of [x, y] pairs, not {_short(points)}.")
    out: list[Any] = []
    for p in points:
        if not isinstance(p, list | tuple) or len(p) < 2:
            raise GeometryError(f"A point needs x and y, got {_short(p)}.")
        out.extend((p[0], p[1]))
    return _coords(out)


def _coords(values: Any) -> list[float]:
    """Numbers of a polygon as floats; raises ``GeometryError`` for anything else (strings, bools, huge ints)."""
    if not isinstance(values, list | tuple) or any(
        isinstance(v, bool) or not isinstance(v, int | float) for v in values
    ):
        raise GeometryError("A polygon must be a flat list of numbers [x1, y1, x2, y2, ...].")
    try:
        return [float(v) for v in values]
    except OverflowError as e:  # an integer with hundreds of digits
        raise GeometryError("A polygon has a coordinate too large to be a number of pixels.") from e


def polygon_to_mask(coords: Sequence[float], *, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon ``[x1, y1, x2, y2, ...]`` (pixel coordinates) to an ``(height, width) bool`` mask.

    Fewer than three points give an empty mask; points outside the image are clipped.
    Raises ``GeometryError`` for an odd number of values, non-finite or far-out coordinates.
    """
    if height <= 0 or width <= 0:
        _checked_polygon(coords, height=max(height, 0), width=max(width, 0))
        return np.zeros((max(height, 0), max(width, 0)), bool)
    return runs_to_mask(segmentation_runs([list(coords)], height=height, width=width), height=height, width=width)


def polygons_to_mask(polygons: Sequence[Sequence[float]], *, height: int, width: int) -> np.ndarray:
    """Union of several polygons (one COCO annotation may have many parts) as ``(height, width) bool``."""
    return runs_to_mask(segmentation_runs([list(p) for p in polygons], height=height, width=width), height=height, width=width)


def rle_to_mask(rle: Mapping[str, Any], *, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (``counts`` as a list = uncompressed, or a string = compressed) to ``(H, W) bool``.

    Raises ``GeometryError`` when the RLE's ``size`` differs from ``(height, width)`` or its counts do not add up.
    """
    if not isinstance(rle, Mapping) or "counts" not in rle:
        raise GeometryError("An RLE needs 'size' [height, width] and 'counts'.")
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
    return runs_to_mask(segmentation_runs(segmentation, height=height, width=width), height=height, width=width)


# --- run-length painting: decoding a 1024² annotation to a full mask costs ~6 ms; painting its runs costs its area.

#: Continuation groups of 5 bits one compressed count may use (enough for 2^64): more is a hostile string.
_MAX_RLE_GROUPS = 13


def decode_rle_string(counts: str | bytes, *, total: int | None = None) -> np.ndarray:
    """COCO's compressed RLE string (LEB128-like, deltas from two back) -> run lengths ``(N,) int64``.

    ``total``: the ``height * width`` the runs must cover; counts are checked against it while decoding, so a
    hostile string cannot build huge numbers or arrays.
    """
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except UnicodeEncodeError as e:
        raise GeometryError("The compressed RLE string holds characters that are not ASCII.") from e
    if total is not None and len(data) > _MAX_RLE_GROUPS * (total + 1):
        raise GeometryError(f"The compressed RLE string is longer ({len(data):,} characters) than its size allows.")
    cnts: list[int] = []
    covered = 0
    p, n = 0, len(data)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise GeometryError("The compressed RLE string ends in the middle of a number.")
            if k >= _MAX_RLE_GROUPS:
                raise GeometryError("The compressed RLE string holds a number too large to be a run length.")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise GeometryError(f"The compressed RLE string holds an invalid character {chr(data[p])!r}.")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        if x < 0:
            raise GeometryError("The compressed RLE has a negative run.")
        covered += x
        if total is not None and covered > total:
            raise GeometryError(f"The compressed RLE counts add up to more than {total:,} pixels (its size).")
        cnts.append(x)
    return np.asarray(cnts, np.int64)


def _rle_runs(rle: Mapping[str, Any], *, height: int, width: int) -> np.ndarray:
    """Run lengths of a COCO RLE, checked: its size is the image's, counts are whole, >= 0 and cover it exactly."""
    size = rle.get("size")
    if not isinstance(size, list | tuple) or len(size) != 2:
        raise GeometryError("An RLE needs 'size' [height, width] and 'counts'.")
    try:
        rh, rw = _whole(size[0]), _whole(size[1])
    except (TypeError, ValueError, OverflowError) as e:
        raise GeometryError(f"An RLE size must be two whole numbers, not {_short(size[0])} x {_short(size[1])}.") from e
    if (rh, rw) != (height, width):
        raise GeometryError(f"The RLE is {_short(rw)}x{_short(rh)} but the image is {width}x{height}.")
    total = height * width
    counts = rle.get("counts")
    if isinstance(counts, list):
        if len(counts) > total + 1:
            raise GeometryError(f"The RLE has {len(counts):,} counts, more than its {total:,} pixels allow.")
        if any(isinstance(c, bool) or not isinstance(c, int) for c in counts):
            raise GeometryError("Uncompressed RLE counts must be non-negative integers.")
        if any(c < 0 or c > total for c in counts):  # Python ints: no overflow before the check
            raise GeometryError("Uncompressed RLE counts must be non-negative integers no larger than the image.")
        runs = np.asarray(counts, np.int64)
    elif isinstance(counts, str | bytes):
        runs = decode_rle_string(counts, total=total)
    else:
        raise GeometryError(f"RLE counts must be a list or a string, not {_short(counts)}.")
    covered = int(runs.sum())  # every count <= total and at most total + 1 of them: no int64 overflow
    if covered != total:
        raise GeometryError(f"The RLE counts add up to {covered:,}, not {width}x{height} = {total:,}.")
    return runs


def _checked_polygon(poly: Any, *, height: int, width: int) -> np.ndarray:
    """``(N, 2) float64`` vertices of one flat polygon, after the checks: pairs, finite, near the image."""
    values = _coords(poly)
    if len(values) % 2:
        raise GeometryError(f"A polygon needs x, y pairs; got {len(values)} values.")
    pts = np.asarray(values, np.float64).reshape(-1, 2)
    if pts.size and not np.isfinite(pts).all():
        raise GeometryError("A polygon has a non-finite coordinate (NaN or infinity).")
    reach = SANE_MULTIPLE * max(height, width) + REACH_SLACK_PX
    if pts.size and (pts.min() < -reach or pts[:, 0].max() > width + reach or pts[:, 1].max() > height + reach):
        worst = pts.ravel()[np.argmax(np.abs(pts.ravel()))]
        raise GeometryError(
            f"A polygon has a coordinate ({worst:.6g}) more than {SANE_MULTIPLE} image sizes outside the "
            f"{width}x{height} image: not a plausible annotation."
        )
    return pts


def outline_px(pts: np.ndarray) -> float:
    """The closed polygon's outline as pycocotools walks it: the longer axis of each edge, summed (px)."""
    if len(pts) < 2:
        return 0.0
    d = np.abs(np.diff(pts, axis=0, append=pts[:1]))
    return float(d.max(axis=1).sum())


def segmentation_runs(
    segmentation: Any, *, height: int, width: int, budget: OutlineBudget | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground runs ``(starts, lengths)``, both ``(K,) int64``, in column-major (Fortran) pixel order.

    Same pixels as ``segmentation_to_mask`` (polygons go through pycocotools' RLE), without the full-image decode.
    ``budget``: the outline still allowed for the mask these runs go into (default: ``MAX_OUTLINE_PX`` for this
    segmentation alone). Raises ``GeometryError`` for anything malformed, far out or too long to draw.
    """
    height, width = check_raster_size(height, width)
    if isinstance(segmentation, Mapping):
        runs = _rle_runs(segmentation, height=height, width=width)
    elif isinstance(segmentation, list):
        bare = bool(segmentation) and all(not isinstance(v, list | tuple | Mapping) for v in segmentation)
        polys = [segmentation] if bare else segmentation  # a bare flat polygon is seen in the wild
        budget = budget if budget is not None else OutlineBudget()
        good = []
        for poly in polys:
            pts = _checked_polygon(poly, height=height, width=width)
            if len(pts) < 3:
                continue
            budget.spend(outline_px(pts) + 1)
            good.append(pts.ravel().tolist())
        if not good or height <= 0 or width <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        mu = _mask_utils()
        rle = mu.merge(mu.frPyObjects(good, height, width))
        runs = decode_rle_string(rle["counts"])
    else:
        raise GeometryError(f"Unknown segmentation type {_short(segmentation)}: expected polygons or an RLE.")
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
