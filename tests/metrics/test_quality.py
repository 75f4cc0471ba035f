"""Label-suspicion checks on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segstudio.core.errors import UnknownKeyError
from segstudio.core.types import ClassSchema
from segstudio.metrics import QualityReport, assess_mask, get_check, shape_figures

SCHEMA = ClassSchema.from_names(["background", "organ", "other"])


def _square() -> np.ndarray:
    m = np.zeros((64, 64), np.uint8)
    m[10:40, 10:40] = 1
    return m


def test_clean_mask_is_not_suspicious() -> None:
    r = assess_mask(_square(), schema=SCHEMA)
    assert r.flags == () and r.score == 0.0
    q = r.per_class[0]
    assert (q.class_id, q.pixels, q.components, q.holes) == (1, 900, 1, 0)


def test_speck_is_a_tiny_island() -> None:
    m = _square()
    m[50, 50] = 1
    r = assess_mask(m, schema=SCHEMA)
    assert "tiny_islands" in r.flags and r.values["tiny_islands"] == 0.5
    m[55, 55] = 1
    assert assess_mask(m, schema=SCHEMA).values["tiny_islands"] == 0.75


def test_detached_piece_is_a_fragment_but_two_similar_regions_are_not() -> None:
    m = _square()
    m[50:55, 50:56] = 1  # 30 px: above the island size, under 10 % of the 900 px region
    r = assess_mask(m, schema=SCHEMA)
    assert r.flags == ("fragments",)
    two = np.zeros((64, 64), np.uint8)
    two[5:30, 5:25] = 1
    two[5:30, 35:58] = 1  # like two lungs
    assert assess_mask(two, schema=SCHEMA).flags == ()


def test_enclosed_background_is_a_hole_and_a_notch_is_not() -> None:
    m = _square()
    m[20:25, 20:25] = 0
    q = shape_figures(m == 1)
    assert (q.holes, q.hole_pixels) == (1, 25)
    notch = _square()
    notch[10:25, 20:25] = 0  # open to the outside
    assert shape_figures(notch == 1).holes == 0
    assert "holes" in assess_mask(m, schema=SCHEMA).flags


def test_disagreement_needs_a_prediction() -> None:
    m = _square()
    pred = np.zeros_like(m)
    pred[10:40, 25:55] = 1  # half overlap
    r = assess_mask(m, schema=SCHEMA, prediction=pred)
    assert r.values["disagreement"] == pytest.approx(0.5)
    assert "disagreement" in r.flags
    assert "disagreement" not in assess_mask(m, schema=SCHEMA).values


def test_unknown_values_are_flagged() -> None:
    m = _square()
    m[0, 0] = 9
    r = assess_mask(m, schema=SCHEMA)
    assert r.unknown_values == (9,) and "unknown_values" in r.flags and r.score == 1.0


def test_multilabel_masks_and_stray_bits() -> None:
    schema = ClassSchema.from_names(["a", "b"], multilabel=True)
    m = np.zeros((40, 40), np.uint64)
    m[5:20, 5:20] |= np.uint64(1)
    m[10:30, 10:30] |= np.uint64(2)
    m[35, 35] |= np.uint64(2)
    r = assess_mask(m, schema=schema)
    assert [q.components for q in r.per_class] == [1, 2]
    assert r.flags == ("tiny_islands",)
    m[0, 0] = np.uint64(1 << 50)
    assert assess_mask(m, schema=schema).unknown_values == (50,)


def test_check_registry_names_valid_keys() -> None:
    with pytest.raises(UnknownKeyError, match="tiny_islands"):
        get_check("nope")
    with pytest.raises(UnknownKeyError):
        assess_mask(_square(), schema=SCHEMA, checks=("holes", "nope"))
    r = assess_mask(_square(), schema=SCHEMA, checks=("holes",))
    assert set(r.values) == {"holes"}


def test_report_round_trips() -> None:
    m = _square()
    m[50, 50] = 1
    r = assess_mask(m, schema=SCHEMA, sample_id="s")
    assert QualityReport.from_dict(r.to_dict()) == r


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 16), st.integers(1, 16))))
def test_shape_figures_match_scipy_labelling(plane: np.ndarray) -> None:
    from scipy import ndimage

    q = shape_figures(plane, min_island_px=3)
    eight = np.ones((3, 3), bool)
    labels, n = ndimage.label(plane, structure=eight)
    assert q.components == n and q.pixels == int(plane.sum())
    areas = np.bincount(labels.ravel())[1:]
    assert q.tiny_islands == int(np.count_nonzero(areas < 3))
    holes = ndimage.binary_fill_holes(plane) & ~plane  # background 4-connected to the outside is not a hole
    assert q.hole_pixels == int(holes.sum())
    assert q.holes == ndimage.label(holes)[1]
