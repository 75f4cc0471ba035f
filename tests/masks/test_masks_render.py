import numpy as np
import pytest

from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.masks import BBox, OverlayRenderer, OverlayStyle

SEM = ClassSchema(
    classes=(ClassInfo(0, "bg", (0, 0, 0)), ClassInfo(1, "a", (255, 0, 0)), ClassInfo(2, "b", (0, 0, 255))),
    ignore_index=255,
)
ML = ClassSchema(
    classes=(ClassInfo(0, "x", (200, 0, 0)), ClassInfo(1, "y", (0, 100, 0)), ClassInfo(40, "z", (0, 0, 50))),
    multilabel=True,
)


def test_semantic_fill_colours_opacity_and_hidden_background():
    a = np.array([[0, 1], [2, 255]], np.uint8)
    out = OverlayRenderer(SEM, OverlayStyle.default_for(SEM, opacity=0.4)).render(a)
    assert out.shape == (2, 2, 4) and out.dtype == np.uint8
    assert tuple(out[0, 1]) == (255, 0, 0, 102) and tuple(out[1, 0]) == (0, 0, 255, 102)
    assert out[0, 0, 3] == 0 and out[1, 1, 3] == 0  # background hidden, ignore value has no class


def test_hidden_classes_and_colour_overrides():
    a = np.array([[1, 2]], np.uint8)
    r = OverlayRenderer(SEM, OverlayStyle(hidden=frozenset({2}), colours=((1, (1, 2, 3)),), opacity=1.0))
    out = r.render(a)
    assert tuple(out[0, 0]) == (1, 2, 3, 255) and out[0, 1, 3] == 0


def test_semantic_contour_only_marks_borders():
    a = np.zeros((9, 9), np.uint8)
    a[2:7, 2:7] = 1
    out = OverlayRenderer(SEM, OverlayStyle.default_for(SEM, mode="contour")).render(a)
    alpha = out[..., 3] > 0
    want = np.zeros((9, 9), bool)
    want[2:7, 2:7] = True
    want[3:6, 3:6] = False
    assert np.array_equal(alpha, want)


def test_multilabel_overlap_shows_mean_colour_of_visible_classes():
    a = np.zeros((1, 4), np.uint64)
    a[0, 1] = 1
    a[0, 2] = 0b11
    a[0, 3] = np.uint64(1 << 40) | np.uint64(1)
    out = OverlayRenderer(ML, OverlayStyle(opacity=1.0)).render(a)
    assert out[0, 0, 3] == 0
    assert tuple(out[0, 1]) == (200, 0, 0, 255)
    assert tuple(out[0, 2]) == (100, 50, 0, 255)
    assert tuple(out[0, 3]) == (100, 0, 25, 255)
    hidden = OverlayRenderer(ML, OverlayStyle(opacity=1.0, hidden=frozenset({0}))).render(a)
    assert hidden[0, 1, 3] == 0 and tuple(hidden[0, 3]) == (0, 0, 50, 255)


def test_multilabel_contour_per_plane():
    a = np.zeros((7, 7), np.uint64)
    a[1:6, 1:6] = 1
    a[2:5, 2:5] |= np.uint64(2)  # class 1 nested inside class 0: its border is a contour of class 1 only
    out = OverlayRenderer(ML, OverlayStyle(mode="contour")).render(a)
    assert tuple(out[2, 2, :3]) == (0, 100, 0) and out[3, 3, 3] == 0 and tuple(out[1, 1, :3]) == (200, 0, 0)


@pytest.mark.parametrize("schema,dtype", [(SEM, np.uint8), (ML, np.uint64)])
@pytest.mark.parametrize("mode", ["fill", "contour", "fill_contour"])
def test_render_into_a_region_matches_a_full_render(schema, dtype, mode):
    rng = np.random.default_rng(1)
    if schema.multilabel:
        a = (rng.integers(0, 4, (30, 40)).astype(np.uint64)) | (rng.integers(0, 2, (30, 40)).astype(np.uint64) << 40)
    else:
        a = rng.integers(0, 3, (30, 40)).astype(np.uint8)
    r = OverlayRenderer(schema, OverlayStyle(mode=mode))
    full = r.render(a)
    target = np.zeros_like(full)
    for box in (BBox(0, 0, 10, 10), BBox(5, 7, 30, 40), BBox(29, 39, 30, 40), BBox(0, 0, 30, 40)):
        target[:] = 0
        drawn = r.render_into(a, target, box)
        assert np.array_equal(target[drawn.slices], full[box.slices])
        outside = np.ones(a.shape, bool)
        outside[drawn.slices] = False
        assert not target[outside].any()


def test_dirty_box_widens_for_contours():
    r = OverlayRenderer(SEM, OverlayStyle(mode="contour"))
    assert r.dirty_box(BBox(5, 5, 8, 8), (20, 20)) == BBox(4, 4, 9, 9)
    r.style = OverlayStyle(mode="fill")
    assert r.dirty_box(BBox(5, 5, 8, 8), (20, 20)) == BBox(5, 5, 8, 8)


def test_style_validation():
    with pytest.raises(ValueError):
        OverlayStyle(mode="outline")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OverlayStyle(opacity=1.5)


def test_per_class_opacity_semantic_and_multilabel_mean():
    a = np.array([[1, 2]], np.uint8)
    out = OverlayRenderer(SEM, OverlayStyle(opacity=1.0, opacities=((2, 0.2),))).render(a)
    assert out[0, 0, 3] == 255 and out[0, 1, 3] == 51
    b = np.zeros((1, 4), np.uint64)
    b[0, 0] = 0b1  # class 0 alone
    b[0, 1] = 0b11  # classes 0 and 1, same lane
    b[0, 2] = np.uint64(1 << 40) | np.uint64(1)  # classes 0 and 40, two lanes: the summed path
    style = OverlayStyle(opacity=1.0, opacities=((0, 0.2), (40, 0.6)))
    out = OverlayRenderer(ML, style).render(b)
    assert out[0, 0, 3] == 51
    assert out[0, 1, 3] == (51 + 255) // 2
    assert out[0, 2, 3] == (51 + 153) // 2
    assert out[0, 3, 3] == 0
    with pytest.raises(ValueError):
        OverlayStyle(opacities=((1, 2.0),))
