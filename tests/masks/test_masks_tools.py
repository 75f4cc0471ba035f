import numpy as np
import pytest

from segstudio.core.errors import UnknownKeyError
from segstudio.masks import (
    TOOLS,
    Buttons,
    FillTool,
    LabelMask,
    Modifiers,
    PointerEvent,
    PolygonTool,
    ToolContext,
    create_tool,
)


def ev(x, y, **kw):
    return PointerEvent(float(x), float(y), **kw)


def stroke(tool, pts, **kw):
    tool.press(ev(*pts[0], **kw))
    for p in pts[1:-1]:
        tool.move(ev(*p, **kw))
    return tool.release(ev(*pts[-1], **kw))


def test_registry_lists_valid_tools_on_unknown_name(sem_mask):
    assert set(TOOLS) == {"brush", "eraser", "polygon", "lasso", "rectangle", "fill"}
    with pytest.raises(UnknownKeyError) as err:
        create_tool("spray", sem_mask)
    assert "brush" in str(err.value) and "spray" in str(err.value)


def test_brush_stroke_is_one_step_and_leaves_no_gaps(sem_mask):
    tool = create_tool("brush", sem_mask, ToolContext(class_id=2, size=3))
    box = stroke(tool, [(2.5, 5.5), (45.5, 5.5)])  # one fast move across the image
    assert box is not None and sem_mask.history.undo_count == 1
    row = sem_mask.array[5]
    assert (row[2:46] == 2).all()
    sem_mask.undo()
    assert not sem_mask.array.any()


def test_hover_moves_do_not_paint(sem_mask):
    tool = create_tool("brush", sem_mask, ToolContext(class_id=1))
    assert tool.move(ev(10, 10)) is None and not sem_mask.array.any()


def test_square_brush_paints_a_square(sem_mask):
    tool = create_tool("brush", sem_mask, ToolContext(class_id=1, size=4, brush="square"))
    stroke(tool, [(10.0, 10.0), (10.0, 10.0)])
    ys, xs = np.nonzero(sem_mask.array)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 11, 8, 11) and len(ys) == 16


def test_pressure_scales_the_brush_when_enabled(sem_mask):
    ctx = ToolContext(class_id=1, size=20, use_pressure=True)
    tool = create_tool("brush", sem_mask, ctx)
    stroke(tool, [(20.5, 20.5), (20.5, 20.5)], pressure=0.25)
    small = int(sem_mask.array.sum())
    sem_mask.undo()
    tool.context = ctx.with_(use_pressure=False)
    stroke(tool, [(20.5, 20.5), (20.5, 20.5)], pressure=0.25)
    assert small < sem_mask.array.sum()


def test_right_button_erases_and_eraser_swaps_buttons(sem_mask):
    sem_mask.set_array(np.full(sem_mask.shape, 3, np.uint8))
    brush = create_tool("brush", sem_mask, ToolContext(class_id=1, size=5, erase_value=255))
    stroke(brush, [(10, 10), (20, 10)], buttons=Buttons.RIGHT)
    assert (sem_mask.array[10, 10:20] == 255).all()
    eraser = create_tool("eraser", sem_mask, ToolContext(class_id=1, size=5, erase_value=0))
    stroke(eraser, [(10, 30), (20, 30)])
    assert (sem_mask.array[30, 10:20] == 0).all()
    stroke(eraser, [(10, 35), (20, 35)], buttons=Buttons.RIGHT)
    assert (sem_mask.array[35, 10:20] == 1).all()


def test_shift_press_draws_a_line_from_the_previous_stroke_end(sem_mask):
    tool = create_tool("brush", sem_mask, ToolContext(class_id=1, size=1))
    stroke(tool, [(5.5, 5.5), (5.5, 5.5)])
    stroke(tool, [(30.5, 5.5), (30.5, 5.5)], modifiers=Modifiers.SHIFT)
    assert (sem_mask.array[5, 5:31] == 1).all()


def test_cancel_reverts_the_stroke(sem_mask):
    tool = create_tool("brush", sem_mask, ToolContext(class_id=1, size=5))
    tool.press(ev(10, 10))
    tool.move(ev(20, 20))
    assert sem_mask.array.any()
    tool.cancel()
    assert not sem_mask.array.any() and not tool.active and not sem_mask.can_undo


def test_multilabel_brush_acts_on_the_selected_plane_only(ml_mask):
    base = np.zeros(ml_mask.shape, np.uint64)
    base[:, :25] = np.uint64(0b101)
    ml_mask.set_array(base)
    tool = create_tool("brush", ml_mask, ToolContext(class_id=1, size=8))
    stroke(tool, [(5, 20), (45, 20)])
    diff = ml_mask.array ^ base
    assert diff.any() and not (diff & ~np.uint64(0b10)).any()
    eraser = create_tool("eraser", ml_mask, ToolContext(class_id=2, size=8))
    stroke(eraser, [(5, 5), (45, 5)])
    assert not (ml_mask.plane(2)[3:8, 5:20]).any() and ml_mask.plane(2)[3:8, :1].all() and ml_mask.plane(0)[5, :25].all()


def test_polygon_click_vertices_then_close_near_first(sem_mask):
    tool = PolygonTool(sem_mask, ToolContext(class_id=2, close_distance=3))
    for p in [(5, 5), (25, 5), (25, 20), (5, 20)]:
        assert tool.press(ev(*p)) is None
    assert len(tool.outline()) == 4 and tool.active
    box = tool.press(ev(6, 6))  # near the first vertex: closes
    assert box is not None and not tool.active
    assert (sem_mask.array[6:19, 6:24] == 2).all() and sem_mask.history.undo_count == 1


def test_polygon_double_click_and_backspace_and_erase(sem_mask):
    sem_mask.set_array(np.full(sem_mask.shape, 1, np.uint8))
    tool = PolygonTool(sem_mask, ToolContext(class_id=1))
    tool.press(ev(2, 2, buttons=Buttons.RIGHT))
    tool.press(ev(30, 2, buttons=Buttons.RIGHT))
    tool.press(ev(40, 40, buttons=Buttons.RIGHT))
    tool.remove_last_vertex()
    tool.press(ev(30, 30, buttons=Buttons.RIGHT, clicks=2))
    assert sem_mask.array[10, 25] == 0 and sem_mask.array[35, 38] == 1


def test_lasso_fills_the_freehand_outline(sem_mask):
    tool = create_tool("lasso", sem_mask, ToolContext(class_id=3))
    angles = np.linspace(0, 2 * np.pi, 40)
    pts = [(25 + 10 * np.cos(a), 20 + 10 * np.sin(a)) for a in angles]
    stroke(tool, pts)
    area = (sem_mask.array == 3).sum()
    assert abs(area - np.pi * 100) < 25 and sem_mask.array[20, 25] == 3


def test_rectangle_tool(sem_mask):
    tool = create_tool("rectangle", sem_mask, ToolContext(class_id=1))
    tool.press(ev(30.2, 20.7))
    tool.move(ev(12, 12))
    assert len(tool.outline()) == 4
    tool.release(ev(10.4, 5.6))
    ys, xs = np.nonzero(sem_mask.array)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (5, 20, 10, 30)


def test_fill_tool_fills_the_clicked_region_only(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[10, :] = 1  # a wall splits the image
    sem_mask.set_array(a)
    tool = FillTool(sem_mask, ToolContext(class_id=2))
    box = tool.press(ev(5, 3))
    assert box is not None and (sem_mask.array[:10] == 2).all() and (sem_mask.array[11:] == 0).all()
    sem_mask.undo()
    assert np.array_equal(sem_mask.array, a)


def test_fill_connectivity_8_crosses_diagonals(sem_mask):
    a = np.ones((10, 10), np.uint8)
    np.fill_diagonal(a, 0)
    m = LabelMask(a, sem_mask.schema)
    FillTool(m, ToolContext(class_id=3, connectivity=4)).press(ev(0.5, 0.5))
    assert (m.array == 3).sum() == 1
    m.undo()
    FillTool(m, ToolContext(class_id=3, connectivity=8)).press(ev(0.5, 0.5))
    assert (m.array == 3).sum() == 10


def test_magic_wand_limits_fill_by_image_intensity(sem_mask):
    img = np.zeros(sem_mask.shape, np.uint8)
    img[:, 25:] = 200
    img[:, 20:25] = 10
    tool = FillTool(sem_mask, ToolContext(class_id=1, tolerance=15), image=img)
    tool.press(ev(2, 2))
    assert (sem_mask.array[:, :25] == 1).all() and not sem_mask.array[:, 25:].any()
    # without a tolerance the wand is off: the whole label region fills
    tool.context = tool.context.with_(tolerance=None, class_id=2)
    tool.press(ev(40, 2))
    assert (sem_mask.array[:, 25:] == 2).all()


def test_multilabel_fill_value_and_plane_scope(ml_mask):
    a = np.zeros(ml_mask.shape, np.uint64)
    a[:, 20] = np.uint64(1 << 5)  # a wall of class 5
    a[:5, :] |= np.uint64(1 << 7)
    ml_mask.set_array(a)
    FillTool(ml_mask, ToolContext(class_id=9)).press(ev(2, 10))
    filled = ml_mask.plane(9)
    assert filled[10, :20].all() and not filled[10, 21:].any() and not filled[:5].any()
    ml_mask.undo()
    FillTool(ml_mask, ToolContext(class_id=9, fill_scope="plane")).press(ev(2, 10))
    # plane scope ignores the other classes: everything without bit 9 is one region
    assert ml_mask.plane(9).all()
    assert np.array_equal(ml_mask.array & ~np.uint64(1 << 9), a)


def test_locked_selected_class_makes_every_tool_a_no_op(sem_mask):
    ctx = ToolContext(class_id=1, locked=frozenset({1}), size=6)
    for name in TOOLS:
        tool = create_tool(name, sem_mask, ctx)
        if name == "polygon":
            for p in [(2, 2), (30, 2), (30, 30)]:
                tool.press(ev(*p))
            tool.finish()
        else:
            stroke(tool, [(2, 2), (30, 30)])
    # the eraser wrote erase_value 0 onto background: nothing changed either
    assert not sem_mask.array.any() and not sem_mask.can_undo


def test_paint_inside_applies_to_the_fill_tool(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[:, 25:] = 3
    sem_mask.set_array(a)
    tool = FillTool(sem_mask, ToolContext(class_id=1, paint_inside=3))
    assert tool.press(ev(5, 5)) is None
    assert tool.press(ev(30, 5)) is not None and (sem_mask.array[:, 25:] == 1).all()


def test_flood_region_returns_an_owned_copy_and_repeats(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[:, 20] = 2
    sem_mask.set_array(a)
    first = sem_mask.flood_region(3, 3)
    second = sem_mask.flood_region(3, 3)
    assert first is not None and second is not None
    assert first.value == 0 and first.bbox.x1 == 20
    assert first.region.all() and np.array_equal(first.region, second.region)
    right = sem_mask.flood_region(30, 3)
    assert right is not None and right.bbox.x0 == 21 and right.region.all()
    assert sem_mask.flood_region(-1, 3) is None and not sem_mask.can_undo


@pytest.mark.parametrize("kind", ["rgb", "float"])
def test_magic_wand_on_rgb_and_float_images(sem_mask, kind):
    img = np.zeros((*sem_mask.shape, 3), np.uint8)
    img[:, 25:, 0] = 200  # only the red channel differs
    if kind == "float":
        img = img[..., 0].astype(np.float64) / 255.0
        tol = 0.1
    else:
        tol = 20
    FillTool(sem_mask, ToolContext(class_id=2, tolerance=tol), image=img).press(ev(1, 1))
    assert (sem_mask.array[:, :25] == 2).all() and not sem_mask.array[:, 25:].any()


def test_right_click_fill_erases_in_semantic_and_multilabel(sem_mask, ml_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[5:15, 5:15] = 3
    sem_mask.set_array(a)
    FillTool(sem_mask, ToolContext(class_id=1, erase_value=255)).press(ev(7, 7, buttons=Buttons.RIGHT))
    assert (sem_mask.array[5:15, 5:15] == 255).all() and (sem_mask.array == 0).sum() == a.size - 100
    b = np.zeros(ml_mask.shape, np.uint64)
    b[5:15, 5:15] = np.uint64(0b110)
    ml_mask.set_array(b)
    FillTool(ml_mask, ToolContext(class_id=2)).press(ev(7, 7, buttons=Buttons.RIGHT))
    assert (ml_mask.array[5:15, 5:15] == np.uint64(0b010)).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_fill_matches_an_independent_connected_component_oracle(sem_schema, dtype, connectivity):
    from scipy import ndimage

    rng = np.random.default_rng(connectivity)
    a = (rng.random((60, 70)) < 0.45).astype(dtype) * 2
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    for y, x in rng.integers(0, 60, (6, 2)):
        m = LabelMask(a, sem_schema)
        FillTool(m, ToolContext(class_id=3, connectivity=connectivity)).press(ev(x + 0.5, y + 0.5))
        labels, _ = ndimage.label(a == a[y, x], structure=structure)
        want = np.where(labels == labels[y, x], 3, a)
        assert np.array_equal(m.array, want)
        m.undo()
        assert np.array_equal(m.array, a)


@pytest.mark.parametrize(
    "bad", [{"brush": "star"}, {"fill_scope": "all"}, {"connectivity": 6}, {"size": 0}, {"tolerance": -1.0}]
)
def test_tool_context_rejects_invalid_settings(bad):
    with pytest.raises(ValueError):
        ToolContext(**bad)
