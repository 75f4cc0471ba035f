"""Property tests of polygon and RLE rasterisation (segstudio.core.geometry) against pycocotools and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mu

from segstudio.core.geometry import (
    GeometryError,
    decode_rle_string,
    mask_to_rle,
    mask_to_uncompressed_rle,
    polygon_to_mask,
    polygons_to_mask,
    rle_to_mask,
    run_indices,
    runs_to_mask,
    segmentation_runs,
    segmentation_to_mask,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

sizes = st.integers(min_value=1, max_value=24)
coord = st.floats(min_value=-40, max_value=70, allow_nan=False, allow_infinity=False)
polygon = st.lists(st.tuples(coord, coord), min_size=0, max_size=8).map(lambda pts: [v for p in pts for v in p])


@settings(max_examples=150, deadline=None)
@given(h=sizes, w=sizes, poly=polygon)
def test_polygon_matches_pycocotools_and_clips(h: int, w: int, poly: list[float]) -> None:
    m = polygon_to_mask(poly, height=h, width=w)
    assert m.shape == (h, w) and m.dtype == bool
    if len(poly) < 6:
        assert not m.any()  # empty or degenerate (1-2 points): no pixels
    else:
        ref = mu.decode(mu.merge(mu.frPyObjects([poly], h, w))).astype(bool)
        np.testing.assert_array_equal(m, ref)
    # The run-length path used by the COCO reader gives the same pixels.
    np.testing.assert_array_equal(polygons_to_mask([poly], height=h, width=w), m)


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes, x=coord, y=coord)
def test_collinear_and_repeated_points_cover_no_area(h: int, w: int, x: float, y: float) -> None:
    line = [x, y, x + 5, y + 5, x + 10, y + 10]
    same = [x, y, x, y, x, y, x, y]
    assert polygon_to_mask(same, height=h, width=w).sum() == 0
    assert polygon_to_mask(line, height=h, width=w).sum() <= max(h, w) * 3  # a line at most, never an area


@settings(max_examples=50, deadline=None)
@given(h=sizes, w=sizes)
def test_polygon_covering_everything_and_fully_outside(h: int, w: int) -> None:
    big = [-100, -100, 500, -100, 500, 500, -100, 500]
    assert polygon_to_mask(big, height=h, width=w).all()
    outside = [w + 5, 0, w + 20, 0, w + 20, h, w + 5, h]
    assert not polygon_to_mask(outside, height=h, width=w).any()


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 20).flatmap(lambda h: st.integers(1, 20).flatmap(lambda w: arrays(bool, (h, w)))))
def test_rle_round_trips_compressed_and_uncompressed(m: np.ndarray) -> None:
    h, w = m.shape
    for rle in (mask_to_rle(m), mask_to_uncompressed_rle(m)):
        np.testing.assert_array_equal(rle_to_mask(rle, height=h, width=w), m)
        np.testing.assert_array_equal(runs_to_mask(segmentation_runs(rle, height=h, width=w), height=h, width=w), m)
    assert decode_rle_string(mask_to_rle(m)["counts"]).sum() == h * w
    assert len(run_indices(*segmentation_runs(mask_to_rle(m), height=h, width=w))) == m.sum()


def test_rle_errors_are_geometry_errors() -> None:
    with pytest.raises(GeometryError, match="10x5"):
        rle_to_mask({"size": [5, 10], "counts": [50]}, height=4, width=10)
    with pytest.raises(GeometryError, match="add up"):
        segmentation_runs({"size": [2, 2], "counts": [1, 1]}, height=2, width=2)
    with pytest.raises(GeometryError, match="non-finite"):
        polygon_to_mask([0, 0, float("nan"), 1, 2, 2], height=3, width=3)
    with pytest.raises(GeometryError, match="pairs"):
        segmentation_to_mask([[0, 0, 1]], height=3, width=3)
    with pytest.raises(GeometryError, match="Unknown segmentation"):
        segmentation_to_mask("nope", height=3, width=3)
    with pytest.raises(GeometryError):
        decode_rle_string("P")  # a continuation bit with nothing after it
