import numpy as np
import pytest

from segstudio.masks import BBox, EditGuard, LabelMask, Patch, PointerEvent, ToolContext, create_tool


def box_region(shape, fill=True):
    return np.full(shape, fill, bool)


def test_rejects_wrong_dtype_and_rank(sem_schema, ml_schema):
    with pytest.raises(ValueError):
        LabelMask(np.zeros((4, 4), np.int32), sem_schema)
    with pytest.raises(ValueError):
        LabelMask(np.zeros((4, 4), np.uint8), ml_schema)
    with pytest.raises(ValueError):
        LabelMask(np.zeros((4, 4, 1), np.uint8), sem_schema)


def test_array_is_read_only_and_owned(sem_schema):
    src = np.zeros((5, 5), np.uint8)
    m = LabelMask(src, sem_schema)
    with pytest.raises(ValueError):
        m.array[0, 0] = 1
    m.paint(BBox(0, 0, 1, 1), box_region((1, 1)), class_id=2)
    assert src[0, 0] == 0 and m.value_at(0, 0) == 2


def test_semantic_paint_erase_undo_redo_and_events(sem_mask):
    boxes, dirty = [], []
    sem_mask.events.region_changed.connect(boxes.append)
    sem_mask.events.dirty.connect(dirty.append)
    got = sem_mask.paint(BBox(2, 3, 6, 9), box_region((4, 6)), class_id=2)
    assert got == BBox(2, 3, 6, 9) and (sem_mask.array[2:6, 3:9] == 2).all()
    assert boxes == [got] and dirty == [True] and sem_mask.can_undo
    # erasing only the selected class leaves other classes alone
    sem_mask.paint(BBox(0, 0, 40, 5), box_region((40, 5)), class_id=1)
    sem_mask.paint(BBox(0, 0, 40, 50), box_region((40, 50)), class_id=2, erase=True, erase_value=255)
    assert (sem_mask.array[:, :5] == 1).all() and (sem_mask.array[2:6, 5:9] == 255).all()
    sem_mask.undo()
    sem_mask.undo()
    assert (sem_mask.array[2:6, 3:9] == 2).all() and (sem_mask.array == 2).sum() == 24
    sem_mask.undo()
    assert not sem_mask.array.any() and dirty[-1] is False and not sem_mask.dirty
    sem_mask.redo()
    assert (sem_mask.array == 2).sum() == 24 and sem_mask.dirty


def test_paint_that_changes_nothing_records_nothing(sem_mask):
    sem_mask.paint(BBox(0, 0, 3, 3), box_region((3, 3)), class_id=1)
    assert sem_mask.paint(BBox(0, 0, 3, 3), box_region((3, 3)), class_id=1) is None
    assert sem_mask.history.undo_count == 1


def test_multilabel_paint_touches_one_plane(ml_mask):
    ml_mask.paint(BBox(0, 0, 10, 10), box_region((10, 10)), class_id=63)
    ml_mask.paint(BBox(5, 5, 15, 15), box_region((10, 10)), class_id=0)
    a = ml_mask.array
    assert a[7, 7] == (np.uint64(1) << np.uint64(63)) | np.uint64(1)
    assert ml_mask.plane(63).sum() == 100 and ml_mask.plane(0).sum() == 100
    ml_mask.paint(BBox(0, 0, 40, 50), box_region((40, 50)), class_id=63, erase=True)
    assert ml_mask.plane(63).sum() == 0 and ml_mask.plane(0).sum() == 100


def test_guard_locked_and_paint_inside_semantic(sem_mask):
    sem_mask.paint(BBox(0, 0, 10, 10), box_region((10, 10)), class_id=1)
    sem_mask.paint(BBox(0, 10, 10, 20), box_region((10, 10)), class_id=3)
    before = sem_mask.array.copy()
    sem_mask.paint(BBox(0, 0, 20, 30), box_region((20, 30)), class_id=2, guard=EditGuard(locked=frozenset({1})))
    a = sem_mask.array
    assert np.array_equal(a == 1, before == 1) and (a[:, 10:20][:10] == 2).all()
    # painting a locked class is refused too: the set of its pixels must not grow
    assert sem_mask.paint(BBox(30, 30, 35, 35), box_region((5, 5)), class_id=1,
                          guard=EditGuard(locked=frozenset({1}))) is None
    sem_mask.undo()
    sem_mask.paint(BBox(0, 0, 40, 50), box_region((40, 50)), class_id=2, guard=EditGuard(paint_inside=3))
    assert np.array_equal(sem_mask.array == 2, before == 3)


def test_guard_multilabel_paint_inside(ml_mask):
    ml_mask.paint(BBox(0, 0, 10, 10), box_region((10, 10)), class_id=4)
    ml_mask.paint(BBox(0, 0, 40, 50), box_region((40, 50)), class_id=5, guard=EditGuard(paint_inside=4))
    assert np.array_equal(ml_mask.plane(5), ml_mask.plane(4))
    assert ml_mask.paint(BBox(0, 0, 5, 5), box_region((5, 5)), class_id=4,
                         guard=EditGuard(locked=frozenset({4})), erase=True) is None


def test_assign_respects_locked_bits_in_multilabel(ml_mask):
    ml_mask.paint(BBox(0, 0, 10, 10), box_region((10, 10)), class_id=2)
    values = np.full((10, 10), np.uint64(0b11000), np.uint64)
    ml_mask.assign(BBox(0, 0, 10, 10), values, guard=EditGuard(locked=frozenset({2, 3})))
    assert (ml_mask.array[:10, :10] == np.uint64(0b10100)).all()


def test_a_stroke_is_one_undo_step_and_cancel_restores(sem_mask):
    sem_mask.begin_stroke()
    for i in range(10):
        sem_mask.paint(BBox(i, i, i + 3, i + 3), box_region((3, 3)), class_id=1 + i % 2)
    assert sem_mask.in_stroke and sem_mask.array.any()
    box = sem_mask.end_stroke()
    assert sem_mask.history.undo_count == 1 and box == BBox(0, 0, 12, 12)
    after = sem_mask.array.copy()
    sem_mask.undo()
    assert not sem_mask.array.any()
    sem_mask.redo()
    assert np.array_equal(sem_mask.array, after)
    sem_mask.begin_stroke()
    sem_mask.paint(BBox(20, 20, 30, 30), box_region((10, 10)), class_id=3)
    sem_mask.cancel_stroke()
    assert np.array_equal(sem_mask.array, after) and sem_mask.history.undo_count == 1


def test_undo_during_a_stroke_ends_it_first(sem_mask):
    sem_mask.begin_stroke()
    sem_mask.paint(BBox(0, 0, 3, 3), box_region((3, 3)), class_id=1)
    sem_mask.undo()
    assert not sem_mask.in_stroke and not sem_mask.array.any() and sem_mask.can_redo


def test_dirty_tracks_the_saved_state_through_undo_and_redo(sem_mask):
    sem_mask.paint(BBox(0, 0, 3, 3), box_region((3, 3)), class_id=1)
    sem_mask.mark_clean()
    assert not sem_mask.dirty
    sem_mask.paint(BBox(5, 5, 8, 8), box_region((3, 3)), class_id=1)
    assert sem_mask.dirty
    sem_mask.undo()
    assert not sem_mask.dirty
    sem_mask.undo()
    assert sem_mask.dirty


def test_dirty_stays_true_when_evicted_steps_make_the_start_unreachable(sem_schema):
    m = LabelMask.empty((40, 50), sem_schema, history_budget_bytes=1)
    for i in range(3):
        m.paint(BBox(i, 0, i + 1, 50), box_region((1, 50)), class_id=1)
    while m.undo() is not None:
        pass
    assert m.array.any() and m.dirty


def test_set_array_resets_history_and_emits_full_box(sem_mask):
    boxes = []
    sem_mask.events.region_changed.connect(boxes.append)
    sem_mask.paint(BBox(0, 0, 3, 3), box_region((3, 3)), class_id=1)
    sem_mask.set_array(np.full((40, 50), 2, np.uint8))
    assert not sem_mask.can_undo and not sem_mask.dirty and boxes[-1] == BBox(0, 0, 40, 50)


def test_paint_region_partly_outside_is_clipped(sem_mask):
    got = sem_mask.paint(BBox(-2, -2, 3, 3), box_region((5, 5)), class_id=1)
    assert got == BBox(0, 0, 3, 3) and sem_mask.array.sum() == 9


def test_uint16_semantic_masks_work(sem_schema):
    m = LabelMask(np.zeros((70, 80), np.uint16), sem_schema)
    m.paint(BBox(0, 0, 70, 80), box_region((70, 80)), class_id=1000)
    assert (m.array == 1000).all()
    m.undo()
    assert not m.array.any()


def test_a_long_stroke_is_one_step_of_several_neighbourhood_patches(sem_schema):
    rng = np.random.default_rng(2)
    start = rng.integers(0, 3, (600, 700)).astype(np.uint8)
    m = LabelMask(start, sem_schema)
    tool = create_tool("brush", m, ToolContext(class_id=3, size=21))
    pts = [(10 + 1.7 * i, 300 + 250 * np.sin(i / 40)) for i in range(400)]
    tool.press(PointerEvent(*pts[0]))
    for p in pts[1:]:
        tool.move(PointerEvent(*p))
    # a loop back over the start: overlapping neighbourhoods must still compose exactly
    for p in reversed(pts[::7]):
        tool.move(PointerEvent(p[0], p[1] + 5))
    tool.release(PointerEvent(*pts[0]))
    end = m.array.copy()
    step = m.history._undo[-1]
    assert m.history.undo_count == 1 and len(step.patches) > 1
    assert step.bbox == BBox.of_nonzero(end != start)
    m.undo()
    assert np.array_equal(m.array, start)
    m.redo()
    assert np.array_equal(m.array, end)
    # cancelling a long stroke reverts every neighbourhood
    tool.press(PointerEvent(*pts[0], buttons=2))
    for p in pts[1:]:
        tool.move(PointerEvent(*p, buttons=2))
    tool.cancel()
    assert np.array_equal(m.array, end) and m.history.undo_count == 1


def test_apply_records_an_external_patch_as_one_step(sem_mask):
    changed = np.zeros((4, 4), bool)
    changed[1:3, 1:3] = True
    patch = Patch.from_change(BBox(10, 10, 14, 14), changed, 3, dtype=np.dtype(np.uint8))
    assert patch is not None
    assert sem_mask.apply(patch) == BBox(11, 11, 13, 13)
    assert (sem_mask.array == 3).sum() == 4 and sem_mask.history.undo_count == 1
    sem_mask.undo()
    assert not sem_mask.array.any()
