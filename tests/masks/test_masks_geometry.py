import numpy as np
import pytest

from segstudio.masks.geometry import (
    BBox,
    polygon_footprint,
    rectangle_footprint,
    segment_footprint,
)


def paste(shape, bbox, fp):
    out = np.zeros(shape, bool)
    out[bbox.slices] = fp
    return out


def test_bbox_union_intersect_clip_and_offsets():
    a, b = BBox(0, 0, 10, 10), BBox(5, 5, 20, 30)
    assert a.union(b) == BBox(0, 0, 20, 30)
    assert a.intersect(b) == BBox(5, 5, 10, 10)
    assert BBox(-3, -2, 50, 60).clip((40, 50)) == BBox(0, 0, 40, 50)
    assert BBox(5, 5, 10, 10).offset_within(BBox(2, 3, 20, 20)) == BBox(3, 2, 8, 7)
    assert BBox(0, 0, 0, 5).is_empty and BBox(3, 3, 1, 1).area == 0
    assert a.union(None) == a and BBox(0, 0, 0, 0).union(b) == b


def test_of_nonzero_gives_tight_box_in_image_coordinates():
    m = np.zeros((10, 12), bool)
    m[3:5, 7] = True
    assert BBox.of_nonzero(m) == BBox(3, 7, 5, 8)
    assert BBox.of_nonzero(m, origin=BBox(100, 200, 110, 212)) == BBox(103, 207, 105, 208)
    assert BBox.of_nonzero(np.zeros((4, 4), np.uint64)) is None


def test_round_footprint_is_a_disc_of_the_given_diameter():
    bbox, fp = segment_footprint((20.5, 20.5), (20.5, 20.5), size=9, brush="round", shape=(40, 40))
    full = paste((40, 40), bbox, fp)
    yy, xx = np.mgrid[:40, :40]
    want = (xx + 0.5 - 20.5) ** 2 + (yy + 0.5 - 20.5) ** 2 <= 4.5**2
    assert np.array_equal(full, want)


def test_square_footprint_is_a_square_and_stays_wide_on_diagonals():
    bbox, fp = segment_footprint((10.5, 10.5), (10.5, 10.5), size=5, brush="square", shape=(40, 40))
    full = paste((40, 40), bbox, fp)
    assert full[8:13, 8:13].all() and full.sum() == 25
    bbox, fp = segment_footprint((5.5, 5.5), (30.5, 30.5), size=5, brush="square", shape=(40, 40))
    full = paste((40, 40), bbox, fp)
    # every pixel within Chebyshev distance 2 of a diagonal sample is covered
    for t in np.linspace(0, 1, 50):
        c = int(5 + 25 * t)
        assert full[c - 2 : c + 3, c - 2 : c + 3].all()


@pytest.mark.parametrize("brush", ["round", "square"])
def test_fast_stroke_leaves_no_gap_even_with_a_1px_brush(brush):
    bbox, fp = segment_footprint((0.2, 0.3), (39.7, 17.1), size=1, brush=brush, shape=(20, 40))
    full = paste((20, 40), bbox, fp)
    # every column between the ends is painted, and the painted pixels form one 8-connected piece
    assert full.any(axis=0).all()
    import cv2

    n, _ = cv2.connectedComponents(full.view(np.uint8), connectivity=8)
    assert n == 2


def test_footprint_is_clipped_at_the_image_border():
    bbox, fp = segment_footprint((-3.0, -3.0), (2.0, 2.0), size=6, brush="round", shape=(10, 10))
    assert bbox.y0 == 0 and bbox.x0 == 0 and fp.shape == bbox.shape and fp.any()


def test_polygon_footprint_covers_pixel_centres_inside():
    bbox, fp = polygon_footprint([(2, 2), (12, 2), (12, 8), (2, 8)], shape=(20, 20))
    full = paste((20, 20), bbox, fp)
    assert full[2:8, 2:12].all()
    assert not full[9:].any() and not full[:, 13:].any()


def test_rectangle_footprint_includes_both_corner_pixels_in_any_drag_direction():
    bbox, fp = rectangle_footprint((7.9, 6.2), (3.1, 2.6), shape=(20, 20))
    full = paste((20, 20), bbox, fp)
    assert full[6, 7] and full[2, 3]
    assert full.sum() == (6 - 2 + 1) * (7 - 3 + 1)
