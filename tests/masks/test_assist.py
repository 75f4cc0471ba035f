"""Classic assisted tools (segstudio.masks.assist) on real PH2 lesions and Montgomery lungs, plus small synthetic
cases for the wand's tolerance / window / connectivity / limit rules."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.masks.assist import (
    grabcut_box,
    grabcut_scribbles,
    polygon_mask,
    refine_edge,
    region_grow,
    smooth_outline,
    to_display,
)
from segstudio.masks.geometry import BBox
from segstudio.masks.livewire import LiveWire


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def boundary_distance(gt: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the GT's outline."""
    edge = gt ^ cv2.erode(gt.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return cv2.distanceTransform((~edge).view(np.uint8), cv2.DIST_L2, 5)


@pytest.fixture(scope="module")
def ph2_cases(ph2: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from segstudio.datasets.registry import open_dataset

    ds = open_dataset(ph2)
    out = []
    for i in (0, 3, 9, 14):
        img, gt = ds.load_image(ds[i]), ds.load_gt(ds[i])
        assert gt is not None
        out.append((img, gt > 0))
    return out


@pytest.fixture(scope="module")
def lung_cases(montgomery: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from segstudio.datasets.registry import open_dataset

    ds = open_dataset(montgomery, format="class-folders")
    out = []
    for i in (0, 1):
        img, gt = ds.load_image(ds[i]), ds.load_gt(ds[i])
        assert gt is not None
        out.append((img, gt == 1))  # one lung
    return out


# --------------------------------------------------------------------------------------------------- GrabCut


def test_grabcut_box_segments_ph2_lesions(ph2_cases):
    ious = []
    for img, gt in ph2_cases:
        box = BBox.of_nonzero(gt)
        out = grabcut_box(img, box)
        assert out.shape == gt.shape and out.dtype == np.bool_
        outside = np.ones(gt.shape, bool)
        outside[box.slices] = False
        assert not (out & outside).any()  # never leaves the box
        ious.append(iou(out, gt))
    assert np.mean(ious) >= 0.8, ious
    assert min(ious) >= 0.6, ious


def test_grabcut_box_on_16bit_follows_window(lung_cases):
    img, gt = lung_cases[0]
    wide = img.astype(np.uint16) * 200 + 1000  # a 16-bit X-ray whose display window maps back to the original
    box = BBox.of_nonzero(gt)
    a = grabcut_box(img, box)
    b = grabcut_box(wide, box, window=(1000, 1000 + 255 * 200))
    assert iou(a, b) > 0.98
    assert iou(b, gt) > 0.6


def test_grabcut_scribbles_from_gt(ph2_cases):
    rng = np.random.default_rng(0)
    ious = []
    for img, gt in ph2_cases[:3]:
        inner = cv2.erode(gt.view(np.uint8), disk(15)).astype(bool)
        ys, xs = np.nonzero(inner)
        fg = np.zeros(gt.shape, np.uint8)
        for _ in range(3):
            i, j = rng.integers(0, len(ys), 2)
            cv2.line(fg, (int(xs[i]), int(ys[i])), (int(xs[j]), int(ys[j])), 1, 3)
        b = BBox.of_nonzero(gt).pad(15).clip(gt.shape)
        bg = np.zeros(gt.shape, np.uint8)
        cv2.rectangle(bg, (b.x0, b.y0), (b.x1 - 1, b.y1 - 1), 1, 3)
        fg_b, bg_b = fg.astype(bool) & inner, bg.astype(bool) & ~gt
        out = grabcut_scribbles(img, fg_b, bg_b)
        assert out[fg_b].all() and not out[bg_b].any()  # scribbles are hard constraints
        ious.append(iou(out, gt))
    assert np.mean(ious) >= 0.7, ious


def test_grabcut_scribbles_with_init_mask_keeps_outside_and_improves(ph2_cases):
    img, gt = ph2_cases[0]
    init = cv2.erode(gt.view(np.uint8), disk(12)).astype(bool)
    fg = cv2.erode(gt.view(np.uint8), disk(40)).astype(bool)
    bg = ~cv2.dilate(gt.view(np.uint8), disk(25)).astype(bool)
    bg[:, : img.shape[1] // 2] = False  # only part of the background is scribbled
    out = grabcut_scribbles(img, fg, bg, init_mask=init, margin=4)
    assert iou(out, gt) > iou(init, gt)


def test_grabcut_validation(ph2_cases):
    img, gt = ph2_cases[0]
    with pytest.raises(ValueError, match="not inside"):
        grabcut_box(img, BBox(0, 0, img.shape[0] + 5, 10))
    with pytest.raises(ValueError, match="smaller than 2x2"):
        grabcut_box(img, BBox(3, 3, 3, 40))
    with pytest.raises(ValueError, match="BBox"):
        grabcut_box(img, (0, 0, 10, 10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        grabcut_scribbles(img, np.zeros(gt.shape, bool), gt)
    with pytest.raises(ValueError, match="shape"):
        grabcut_scribbles(img, gt[:-1], gt)
    with pytest.raises(ValueError, match="bool or integer"):
        grabcut_scribbles(img, gt.astype(np.float32), gt)
    with pytest.raises(ValueError, match="dtype"):
        to_display(gt)


# ------------------------------------------------------------------------------------------------- live-wire


def test_livewire_follows_a_lung_outline_and_closes(lung_cases):
    img, gt = lung_cases[0]
    contours, _ = cv2.findContours(gt.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=len).reshape(-1, 2)
    anchors = [tuple(int(v) for v in c[k]) for k in np.linspace(0, len(c), 12, endpoint=False).astype(int)]
    wire = LiveWire(img)
    with pytest.raises(ValueError, match="set_anchor"):
        wire.path_to(anchors[0])
    wire.set_anchor(anchors[0])
    preview = wire.path_to(anchors[1])
    assert tuple(preview[0]) == anchors[0] and tuple(preview[-1]) == anchors[1]
    assert np.abs(np.diff(preview, axis=0)).max() <= 1  # 8-connected pixel path
    for a in anchors[1:]:
        wire.set_anchor(a)
    assert len(wire.anchors) == 12
    poly = wire.close()
    assert poly.dtype == np.int32 and poly.shape[1] == 2
    dist = boundary_distance(gt)[poly[:, 1], poly[:, 0]]
    assert np.mean(dist <= 3) >= 0.8, np.percentile(dist, [50, 80, 95])
    assert iou(polygon_mask(poly, gt.shape), gt) >= 0.9
    # undo drops the last anchor and its segment
    n = len(wire.path)
    wire.undo_anchor()
    assert len(wire.anchors) == 11 and len(wire.path) < n


def test_livewire_windowed_large_image_reaches_far_targets(lung_cases):
    img, _ = lung_cases[0]
    wire = LiveWire(img, max_side=128)  # a window smaller than the image, as for a huge image
    wire.set_anchor((100, 100))
    path = wire.path_to((400, 400))
    assert tuple(path[0]) == (100, 100) and tuple(path[-1]) == (400, 400)
    assert np.abs(np.diff(path, axis=0)).max() <= 1
    with pytest.raises(ValueError, match="outside"):
        wire.path_to((600, 10))
    with pytest.raises(ValueError, match="N >= 3"):
        polygon_mask(np.zeros((2, 2)), (10, 10))


# ---------------------------------------------------------------------------------------------- region grow


def test_region_grow_tolerance_connectivity_limit():
    img = np.zeros((20, 20), np.uint8)
    img[5:10, 5:10] = 100
    img[10:15, 10:15] = 110  # touches the first square only at a corner
    img[5:10, 0:5] = 130  # beside the first square, on the other side
    seed = (6, 6)
    r = region_grow(img, seed, tolerance=5)
    assert r.sum() == 25
    r8 = region_grow(img, seed, tolerance=15, connectivity=8)
    assert r8.sum() == 50  # corner neighbour joins with 8-connectivity
    r4 = region_grow(img, seed, tolerance=15, connectivity=4)
    assert r4.sum() == 25
    assert region_grow(img, seed, tolerance=30).sum() == 25 + 25  # the 130 square joins, not the corner one
    limit = np.zeros(img.shape, bool)
    limit[5:8, :] = True
    assert region_grow(img, seed, tolerance=5, limit_mask=limit).sum() == 15
    assert not region_grow(img, (0, 19), tolerance=5, limit_mask=limit).any()
    with pytest.raises(ValueError, match="outside"):
        region_grow(img, (20, 0), tolerance=5)
    with pytest.raises(ValueError, match="0..255"):
        region_grow(img, seed, tolerance=300)
    with pytest.raises(ValueError, match="connectivity"):
        region_grow(img, seed, tolerance=5, connectivity=6)


def test_region_grow_tolerance_is_in_display_units_after_window():
    img = np.full((10, 30), 20000, np.uint16)
    img[:, 10:20] = 20400  # 400 raw units apart
    img[:, 20:] = 60000
    seed = (2, 5)
    # full-range window: 400 raw units are 400/257 ~ 1.6 display levels, within tolerance 3
    assert region_grow(img, seed, tolerance=3, window=(0, 65535)).sum() == 200
    # a narrow window makes the same step 400/1000*255 ~ 102 display levels: not joined
    assert region_grow(img, seed, tolerance=3, window=(19500, 20500)).sum() == 100
    # the window clips 60000 and 20400 alike to white: they join each other
    assert region_grow(img, (25, 5), tolerance=0, window=(19500, 20300)).sum() == 200


def test_region_grow_on_a_real_lung(lung_cases):
    img, gt = lung_cases[0]
    ys, xs = np.nonzero(cv2.erode(gt.view(np.uint8), disk(20)))
    seed = (int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    small = region_grow(img, seed, tolerance=5)
    big = region_grow(img, seed, tolerance=25)
    assert small.sum() < big.sum()
    assert (small & ~big).sum() == 0
    limited = region_grow(img, seed, tolerance=25, limit_mask=gt)
    assert limited.sum() > 0 and not (limited & ~gt).any()


# ---------------------------------------------------------------------------------------- refine and smooth


@pytest.mark.parametrize("kind", ["eroded", "dilated"])
def test_refine_edge_improves_damaged_masks_within_radius(ph2_cases, lung_cases, kind):
    radius = 12
    gains = []
    for img, gt in [ph2_cases[1], ph2_cases[3], *lung_cases]:
        op = cv2.erode if kind == "eroded" else cv2.dilate
        damaged = op(gt.view(np.uint8), disk(10)).astype(bool)
        out = refine_edge(img, damaged, radius=radius)
        changed = out ^ damaged
        if changed.any():
            far = boundary_distance(damaged)[changed]
            assert far.max() <= radius + 1.5  # distance to the damaged outline, not the GT's
        gains.append(iou(out, gt) - iou(damaged, gt))
    assert np.mean(gains) >= 0.05, gains
    assert min(gains) > -0.02, gains


def test_refine_edge_edge_cases(ph2_cases):
    img, gt = ph2_cases[0]
    empty = np.zeros(gt.shape, bool)
    assert not refine_edge(img, empty).any()
    with pytest.raises(ValueError, match="radius"):
        refine_edge(img, gt, radius=0)
    with pytest.raises(ValueError, match="shape"):
        refine_edge(img, gt[:, :-1])


def test_smooth_outline_keeps_area_and_smooths(lung_cases, ph2_cases):
    for _, gt in [lung_cases[0], ph2_cases[0]]:
        rng = np.random.default_rng(1)
        noisy = gt.copy()
        edge = boundary_distance(gt) <= 1
        flip = edge & (rng.random(gt.shape) < 0.5)
        noisy[flip] = ~noisy[flip]
        out = smooth_outline(noisy, radius=3)
        assert abs(int(out.sum()) - int(noisy.sum())) / noisy.sum() < 0.03
        perimeter = lambda m: len(max(cv2.findContours(m.view(np.uint8), cv2.RETR_EXTERNAL,  # noqa: E731
                                                       cv2.CHAIN_APPROX_NONE)[0], key=len))
        assert perimeter(out) < perimeter(noisy)
        assert iou(out, gt) > iou(noisy, gt) - 0.005
    with pytest.raises(ValueError, match="2-D"):
        smooth_outline(np.zeros((3, 3, 3), bool))
    dot = np.zeros((40, 40), bool)
    dot[20, 20] = True
    assert not smooth_outline(dot, radius=3).any()  # an island far smaller than the radius goes
