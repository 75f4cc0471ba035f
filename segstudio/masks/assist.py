"""Classic assisted-annotation tools (ring 1, OpenCV/numpy): GrabCut, live-wire, magic wand, refine edge, smooth.

Every tool is a pure function (or, for live-wire, a small object holding one image's edge map) that takes an
image and explicit prompts and returns a ``bool (H, W)`` proposal; nothing here edits a :class:`LabelMask`. The
proposal layer decides what to do with the result (respect locks and "paint only inside", accept as one undo
step).

Conventions:

- ``image``: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha ignored), any integer or float dtype.
  Tools that compare intensities work on the *display* image, ``to_display(image, window=...)``: ``uint8`` after
  the window/level the user sees, so a 16-bit X-ray behaves as it looks.
- ``window``: ``(low, high)`` in the image's own units; ``low`` maps to 0 and ``high`` to 255. None: ``uint8``
  images as they are, any other dtype its own min..max.
- Points are ``(x, y)`` = (column, row) pixel indices; boxes are :class:`~segstudio.masks.geometry.BBox`
  (half-open rows/columns); radii and distances are in native image pixels.
- Latency: every call stays under the 200 ms interaction budget (DESIGN §5) on images up to ~0.5 MP and grows
  slowly beyond: GrabCut works at a bounded resolution (``max_work_pixels``) and refines at native size in a thin
  band; live-wire maps are built on a bounded window around each anchor. See docs/assist.md for measured figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from segstudio.masks.flood import FloodFiller
from segstudio.masks.geometry import BBox

Window = tuple[float, float]
Point = tuple[float, float]

#: Work size of GrabCut, in pixels of the (down-scaled) crop: <= ~0.15 s for 2-3 rounds on a slow 2-core CPU.
DEFAULT_WORK_PIXELS = 20_000
#: Gaussian sigma (work pixels) applied at the work resolution: hair and skin texture stop splitting the colour
#: models (PH2 box IoU 0.857 -> 0.881).
_WORK_BLUR_SIGMA = 1.0
_GC_BGD, _GC_FGD, _GC_PR_BGD, _GC_PR_FGD = cv2.GC_BGD, cv2.GC_FGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD


# ----------------------------------------------------------------------------------------------- validation


def _check_image(image: np.ndarray) -> np.ndarray:
    """The image as ``(H, W)`` or ``(H, W, 3)`` (alpha and a singleton channel dropped)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype == np.bool_ or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image must have an integer or float dtype, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {image.shape[:2]}")
    return image


def _check_mask(mask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """``mask`` as ``bool (H, W)``; integer masks count non-zero pixels as inside."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {mask.shape}, the image is {shape}")
    if mask.dtype == np.bool_:
        return mask
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"{name} must be bool or integer (non-zero = inside), got {mask.dtype}")
    return mask != 0


def check_point(point: Point, shape: tuple[int, int], name: str = "point") -> tuple[int, int]:
    try:
        x, y = (int(math.floor(float(v))) for v in point)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an (x, y) pair of numbers, got {point!r}") from None
    if not (0 <= x < shape[1] and 0 <= y < shape[0]):
        raise ValueError(f"{name} ({x}, {y}) lies outside the {shape[1]}x{shape[0]} image")
    return x, y


def _check_box(box: BBox, shape: tuple[int, int]) -> BBox:
    if not isinstance(box, BBox):
        raise ValueError(f"box must be a BBox(y0, x0, y1, x1), got {type(box).__name__}")
    if box.height < 2 or box.width < 2:
        raise ValueError(f"box {box} is smaller than 2x2 pixels")
    if box.y0 < 0 or box.x0 < 0 or box.y1 > shape[0] or box.x1 > shape[1]:
        raise ValueError(f"box {box} is not inside the {shape[1]}x{shape[0]} image")
    return box


def check_radius(radius: float, name: str = "radius") -> None:
    if not (isinstance(radius, (int, float)) and radius > 0 and math.isfinite(radius)):
        raise ValueError(f"{name} must be a positive number of pixels, got {radius!r}")


# ------------------------------------------------------------------------------------------------- display


def to_display(image: np.ndarray, *, window: Window | None = None) -> np.ndarray:
    """The image as the user sees it: ``uint8 (H, W)`` or ``uint8 (H, W, 3)`` after window/level.

    ``window=(low, high)`` in the image's units maps ``low`` to 0 and ``high`` to 255 linearly, clipping outside.
    None keeps ``uint8`` images unchanged and stretches any other dtype over its own finite min..max.
    """
    img = _check_image(image)
    if window is None:
        if img.dtype == np.uint8:
            return img
        finite = img[np.isfinite(img)] if np.issubdtype(img.dtype, np.floating) else img
        if finite.size == 0:
            return np.zeros(img.shape, np.uint8)
        low, high = float(finite.min()), float(finite.max())
        if high <= low:
            high = low + 1.0
    else:
        try:
            low, high = (float(v) for v in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be a (low, high) pair, got {window!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"window (low, high) needs finite low < high, got {window!r}")
    scale = 255.0 / (high - low)
    out = (img.astype(np.float32) - np.float32(low)) * np.float32(scale)
    np.nan_to_num(out, copy=False, nan=0.0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _colour(disp: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(disp, cv2.COLOR_GRAY2BGR) if disp.ndim == 2 else disp)


# -------------------------------------------------------------------------------------------- mask helpers


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background component that does not reach the border filled."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    ff = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, ff, (0, 0), 1, 0, 0, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    return np.asarray(mask | (ff[2:-2, 2:-2] == 0))


def _keep_components(mask: np.ndarray, *, min_fraction: float, touching: np.ndarray | None = None) -> np.ndarray:
    """The 8-connected components of ``mask`` at least ``min_fraction`` of the largest one's area, or (with
    ``touching``) the components that overlap ``touching``."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    if touching is not None and touching.any():
        keep = np.zeros(n, np.bool_)
        keep[np.unique(labels[touching])] = True
    else:
        keep = areas >= max(1.0, min_fraction * areas.max())
    keep[0] = False
    return np.asarray(keep[labels])


# ------------------------------------------------------------------------------------------------- GrabCut


def _downscale_labels(labels: np.ndarray, size: tuple[int, int], *, thin_hard: bool) -> np.ndarray:
    """GrabCut labels resized to ``size`` (w, h): each pixel takes the label covering most of it; with
    ``thin_hard`` any trace of a hard label (a 1-px scribble) survives."""
    fracs = np.stack([cv2.resize((labels == v).astype(np.float32), size, interpolation=cv2.INTER_AREA)
                      for v in (_GC_BGD, _GC_FGD, _GC_PR_BGD, _GC_PR_FGD)])
    out = np.array([_GC_BGD, _GC_FGD, _GC_PR_BGD, _GC_PR_FGD], np.uint8)[fracs.argmax(axis=0)]
    if thin_hard:
        bg, fg = fracs[0] > 0, fracs[1] > 0
        out[bg & ~(fg & (fracs[1] >= fracs[0]))] = _GC_BGD
        out[fg & (fracs[1] >= fracs[0])] = _GC_FGD
    return out


def _gmm_loglik(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Log-likelihood of ``float32 (N, 3)`` pixels under an OpenCV GrabCut GMM (``(1, 65)``: 5 weights, 5x3 means,
    5x3x3 covariances)."""
    k = 5
    m = model.reshape(-1)
    weights, means, covs = m[:k], m[k : 4 * k].reshape(k, 3), m[4 * k :].reshape(k, 3, 3)
    total = np.zeros(len(pixels), np.float64)
    for w, mu, cov in zip(weights, means, covs, strict=True):
        if w <= 0:
            continue
        cov = cov + np.eye(3) * 1e-2
        inv = np.linalg.inv(cov)
        d = pixels - mu
        maha = np.einsum("ni,ij,nj->n", d, inv, d)
        total += w / math.sqrt(max(np.linalg.det(cov), 1e-12)) * np.exp(-0.5 * maha)
    return np.log(total + 1e-300)


def _grabcut(
    colour: np.ndarray, labels: np.ndarray, *, iterations: int, max_work_pixels: int, thin_hard: bool
) -> np.ndarray:
    """Run GrabCut on ``colour`` (``uint8 (h, w, 3)``) from ``labels`` (GrabCut codes, same size) at a bounded
    resolution; returns ``bool (h, w)`` at native size.

    When the crop is larger than ``max_work_pixels`` it is down-scaled, segmented, up-sampled, and the pixels
    within one work pixel of the up-sampled outline are re-decided at native size by the colour models GrabCut
    learnt, weighed against the up-sampled result.
    """
    h, w = labels.shape
    scale = min(1.0, math.sqrt(max_work_pixels / float(h * w)))
    if scale < 1.0:
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        small = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
        small_labels = _downscale_labels(labels, size, thin_hard=thin_hard)
    else:
        small, small_labels = colour, labels.copy()
    small = cv2.GaussianBlur(small, (0, 0), _WORK_BLUR_SIGMA)
    fg_seen = np.isin(small_labels, (_GC_FGD, _GC_PR_FGD)).any()
    bg_seen = np.isin(small_labels, (_GC_BGD, _GC_PR_BGD)).any()
    if not (fg_seen and bg_seen):
        raise ValueError("GrabCut needs both foreground and background pixels to learn from")
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(small, small_labels, (0, 0, 1, 1), bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)  # rect unused
    fg_small = (small_labels == _GC_FGD) | (small_labels == _GC_PR_FGD)
    if scale >= 1.0:
        return fg_small
    soft = cv2.resize(fg_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    result = soft >= 0.5
    # re-decide the band the up-sampling blurred: pixels whose soft value is not 0 or 1
    band = (soft > 0.02) & (soft < 0.98)
    band &= (labels == _GC_PR_BGD) | (labels == _GC_PR_FGD)
    if band.any():
        pix = colour[band].astype(np.float64)
        llr = _gmm_loglik(fgd, pix) - _gmm_loglik(bgd, pix)
        prior = np.log(np.clip(soft[band], 0.02, 0.98) / np.clip(1.0 - soft[band], 0.02, 0.98))
        decided = np.zeros((h, w), np.float32)
        decided[band] = np.clip(llr, -4.0, 4.0) + 2.0 * prior
        # a 3x3 vote keeps the per-pixel colour decision from leaving speckle on the outline
        vote = np.where(band, decided, np.where(result, 4.0, -4.0)).astype(np.float32)
        smoothed = cv2.blur(vote, (3, 3))
        result = np.where(band, smoothed > 0, result)
    result[labels == _GC_FGD] = True
    result[labels == _GC_BGD] = False
    return result


def grabcut_box(
    image: np.ndarray,
    box: BBox,
    *,
    window: Window | None = None,
    iterations: int = 2,
    max_work_pixels: int = DEFAULT_WORK_PIXELS,
    ring: int = 8,
    min_component_fraction: float = 0.2,
    fill_holes: bool = True,
) -> np.ndarray:
    """Segment the object inside ``box`` with GrabCut; returns ``bool (H, W)``, False outside the box.

    ``image`` is windowed to the display (``window``, see :func:`to_display`). GrabCut learns the background from
    a ring ``ring`` px wide around the box (clipped to the image; a wide ring or the whole image drags in look-alike
    objects, e.g. the other lung, and collapsed Montgomery to IoU 0; when the box covers nearly the whole image, a
    thin frame just inside the box is taken as probable background too) and runs ``iterations`` rounds (2-3
    measured better than 5 or 8 on PH2) on a crop down-scaled to at most ``max_work_pixels`` pixels and lightly
    blurred, then re-decides the up-sampled outline at native size with the learnt colour models.
    Components smaller than ``min_component_fraction`` of the largest are dropped (a box around both lungs keeps
    both) and, with ``fill_holes``, enclosed holes are filled.
    """
    disp = to_display(image, window=window)
    shape = disp.shape[:2]
    box = _check_box(box, shape)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if max_work_pixels < 1_000:
        raise ValueError(f"max_work_pixels must be >= 1000, got {max_work_pixels}")
    if ring < 1:
        raise ValueError(f"ring must be >= 1 px, got {ring}")
    crop = box.pad(int(ring)).clip(shape)
    labels = np.full(crop.shape, _GC_BGD, np.uint8)
    inner = BBox(box.y0 - crop.y0, box.x0 - crop.x0, box.y1 - crop.y0, box.x1 - crop.x0)
    labels[inner.slices] = _GC_PR_FGD
    if (labels == _GC_BGD).sum() < 0.05 * labels.size:
        t = max(2, round(0.03 * min(box.height, box.width)))
        frame = labels[inner.slices]
        frame[:t], frame[-t:], frame[:, :t], frame[:, -t:] = _GC_PR_BGD, _GC_PR_BGD, _GC_PR_BGD, _GC_PR_BGD
    fg = _grabcut(_colour(disp[crop.slices]), labels, iterations=iterations, max_work_pixels=max_work_pixels,
                  thin_hard=False)
    fg &= labels != _GC_BGD
    if fill_holes:
        fg = _fill_holes(fg)
    fg = _keep_components(fg, min_fraction=min_component_fraction)
    out = np.zeros(shape, np.bool_)
    out[crop.slices] = fg
    return out


def grabcut_scribbles(
    image: np.ndarray,
    fg_scribbles: np.ndarray,
    bg_scribbles: np.ndarray,
    *,
    init_mask: np.ndarray | None = None,
    window: Window | None = None,
    iterations: int = 2,
    max_work_pixels: int = DEFAULT_WORK_PIXELS,
    margin: int = 16,
) -> np.ndarray:
    """Segment from foreground/background scribbles with GrabCut; returns ``bool (H, W)``.

    ``fg_scribbles`` / ``bg_scribbles`` are ``bool (H, W)`` (rasterised strokes; fixed labels, at least one
    foreground pixel). ``init_mask`` (``bool (H, W)``, e.g. the current label or an earlier proposal) is the
    starting guess; without it, each unmarked pixel starts on the side of the nearer scribble. Work is confined to
    the box around the scribbles and ``init_mask`` padded by ``margin`` px; outside it the result is ``init_mask``
    (or False). Only components that touch a foreground scribble or overlap ``init_mask`` are kept.
    """
    disp = to_display(image, window=window)
    shape = disp.shape[:2]
    fg_s = _check_mask(fg_scribbles, shape, "fg_scribbles")
    bg_s = _check_mask(bg_scribbles, shape, "bg_scribbles")
    init = None if init_mask is None else _check_mask(init_mask, shape, "init_mask")
    if not fg_s.any():
        raise ValueError("fg_scribbles is empty: mark at least one foreground pixel")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 px, got {margin}")
    marks = fg_s | bg_s if init is None else fg_s | bg_s | init
    bbox = BBox.of_nonzero(marks)
    assert bbox is not None
    crop = bbox.pad(margin).clip(shape)
    f, b = fg_s[crop.slices], bg_s[crop.slices] & ~fg_s[crop.slices]
    if init is not None:
        start = init[crop.slices]
    else:
        # unmarked pixels start with the nearer scribble (the background defaults to the crop's border)
        seeds_bg = b.copy()
        if not seeds_bg.any():
            seeds_bg[[0, -1], :] = True
            seeds_bg[:, [0, -1]] = True
        d_fg = cv2.distanceTransform((~f).view(np.uint8), cv2.DIST_L2, 3)
        d_bg = cv2.distanceTransform((~seeds_bg).view(np.uint8), cv2.DIST_L2, 3)
        start = d_fg < d_bg
    labels = np.where(start, _GC_PR_FGD, _GC_PR_BGD).astype(np.uint8)
    labels[b] = _GC_BGD
    labels[f] = _GC_FGD
    if not np.isin(labels, (_GC_BGD, _GC_PR_BGD)).any():
        labels[[0, -1], :] = np.where(labels[[0, -1], :] == _GC_FGD, _GC_FGD, _GC_PR_BGD)
    fg = _grabcut(_colour(disp[crop.slices]), labels, iterations=iterations, max_work_pixels=max_work_pixels,
                  thin_hard=True)
    touching = f if init is None else f | (start & fg)
    fg = _keep_components(fg, min_fraction=0.0, touching=touching)
    out = np.zeros(shape, np.bool_) if init is None else init.copy()
    out[crop.slices] = fg
    return out


# ------------------------------------------------------------------------------------------------ live-wire


def polygon_mask(polygon: np.ndarray | Sequence[Point], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a closed polygon of pixel indices ``(x, y)`` (``(N, 2)``, N >= 3) to ``bool shape``; the
    outline's own pixels are inside (a live-wire path runs on the object's edge)."""
    pts = np.asarray(polygon, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"polygon must be (N, 2) (x, y) points with N >= 3, got shape {pts.shape}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W), got {shape}")
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.rint(pts).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return out.view(np.bool_)




# ------------------------------------------------------------------------------------------- region growing


def region_grow(
    image: np.ndarray,
    seed: Point,
    *,
    tolerance: float,
    window: Window | None = None,
    connectivity: int = 4,
    limit_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Magic wand: the connected pixels around ``seed`` (``(x, y)``) whose display intensity is within
    ``tolerance`` of the seed's (per channel); returns ``bool (H, W)``.

    ``tolerance`` is in display units (0-255 after ``window``, see :func:`to_display`), so a 16-bit image grows as
    it looks: pixels clipped to black or white by the window are all alike. ``connectivity`` 4 or 8.
    ``limit_mask`` (``bool (H, W)``) confines the region (e.g. "paint only inside" or unlocked pixels); a seed
    outside it gives an empty region. Uses :class:`~segstudio.masks.flood.FloodFiller`'s wand.
    """
    disp = to_display(image, window=window)
    shape = disp.shape[:2]
    x, y = check_point(seed, shape, "seed")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance <= 255):
        raise ValueError(f"tolerance must be in 0..255 display units, got {tolerance!r}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if limit_mask is None:
        labels = np.zeros(shape, np.uint8)
    else:
        limit = _check_mask(limit_mask, shape, "limit_mask")
        if not limit[y, x]:
            return np.zeros(shape, np.bool_)
        labels = limit.view(np.uint8)
    if not disp.flags.writeable:
        disp = disp.copy()  # cv2.floodFill takes its source as an in/out argument even in mask-only mode
    found = FloodFiller().region(labels, x, y, connectivity=connectivity, image=disp, tolerance=float(tolerance))
    out = np.zeros(shape, np.bool_)
    if found is not None:
        out[found.bbox.slices] = found.region
    return out


# ------------------------------------------------------------------------------------------ outline editing


def _band(mask: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels within ``radius`` px of the outline, signed distance: > 0 outside, <= 0 inside)."""
    m8 = mask.view(np.uint8)
    d_out = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 5)
    d_in = cv2.distanceTransform(m8, cv2.DIST_L2, 5)
    signed = np.where(mask, 1.0 - d_in, d_out)
    return np.abs(signed - 0.5) <= radius, signed


def refine_edge(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    radius: int = 8,
    window: Window | None = None,
    iterations: int = 3,
    max_work_pixels: int = DEFAULT_WORK_PIXELS,
) -> np.ndarray:
    """Move the outline of ``mask`` (``bool (H, W)``) onto the image's edges within ``radius`` px; returns
    ``bool (H, W)``.

    Pixels deeper than ``radius`` px inside the mask are fixed foreground, pixels farther than ``radius`` px
    outside fixed background, and GrabCut (colour models of the two sides, an edge-aware smoothness term that
    puts the cut on strong edges) decides the band in between, which starts as probable foreground. Works at the
    bounded resolution of :func:`grabcut_box` (``max_work_pixels``) and re-decides the outline at native size. No
    pixel farther than ``radius`` px from the original outline changes; an empty or full mask comes back as is.
    ``iterations``: GrabCut rounds.
    """
    disp = to_display(image, window=window)
    shape = disp.shape[:2]
    m = _check_mask(mask, shape, "mask")
    check_radius(radius)
    r = int(math.ceil(radius))
    box = BBox.of_nonzero(m)
    if box is None or m.all():
        return m.copy()
    crop = box.pad(r + max(8, r)).clip(shape)
    mc = np.ascontiguousarray(m[crop.slices])
    band, _ = _band(mc, r)
    labels = np.where(mc, _GC_FGD, _GC_BGD).astype(np.uint8)
    # the whole band starts as probable foreground: measured on PH2 and Montgomery, starting from the mask
    # itself leaves an eroded lesion where it was (GrabCut keeps a consistent start), this lets it grow back
    labels[band] = _GC_PR_FGD
    if not ((labels == _GC_FGD).any() or (labels == _GC_PR_FGD).any()):
        return m.copy()
    fg = _grabcut(_colour(disp[crop.slices]), labels, iterations=iterations, max_work_pixels=max_work_pixels,
                  thin_hard=False)
    fg = np.where(band, fg, mc)
    out = m.copy()
    out[crop.slices] = fg
    return out


def smooth_outline(mask: np.ndarray, *, radius: float = 3.0) -> np.ndarray:
    """Smooth the outline of ``mask`` (``bool (H, W)``): a Gaussian blur of sigma ``radius`` px thresholded at
    one half. Bumps and dents narrower than about ``radius`` go, the area changes little (a smooth shape keeps it
    within a few %), islands and holes much smaller than ``radius`` disappear; returns ``bool (H, W)``."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D array, got {getattr(mask, 'shape', type(mask).__name__)}")
    m = _check_mask(mask, mask.shape, "mask")
    check_radius(radius)
    box = BBox.of_nonzero(m)
    if box is None:
        return m.copy()
    pad = int(math.ceil(3 * radius)) + 1
    crop = box.pad(pad).clip(m.shape)
    soft = cv2.GaussianBlur(m[crop.slices].astype(np.float32), (0, 0), float(radius), borderType=cv2.BORDER_REPLICATE)
    out = m.copy()
    out[crop.slices] = soft >= 0.5
    return out
