import numpy as np
import pytest

from segstudio.masks.geometry import BBox
from segstudio.masks.history import History, Patch, Step


def test_uniform_patch_stores_only_bits_and_toggles_exactly():
    a = np.zeros((10, 10), np.uint64)
    a[2:5, 2:5] = 3
    before = a.copy()
    changed = np.zeros((6, 6), bool)
    changed[1:3, 1:4] = True
    p = Patch.from_change(BBox(1, 1, 7, 7), changed, 1 << 40, dtype=np.dtype(np.uint64))
    assert p is not None and p.uniform and p.count == 6
    assert p.bbox == BBox(2, 2, 4, 5)  # tightened to the changed pixels
    assert p.delta.nbytes == 8
    p.apply_to(a)
    assert (a != before).sum() == 6 and (a[2:4, 2:5] == before[2:4, 2:5] | np.uint64(1 << 40)).all()
    p.apply_to(a)
    assert np.array_equal(a, before)


def test_dense_and_sparse_forms_roundtrip():
    rng = np.random.default_rng(0)
    for density in (0.9, 0.05):
        a = rng.integers(0, 4, (30, 30)).astype(np.uint8)
        new = a.copy()
        where = rng.random((30, 30)) < density
        new[where] = rng.integers(0, 4, where.sum())
        built = Patch.from_dense(BBox(0, 0, 30, 30), a ^ new)
        assert built is not None
        p, _ = built
        assert p.dense == (density > 0.5)
        b = a.copy()
        p.apply_to(b)
        assert np.array_equal(b, new)
        p.apply_to(b)
        assert np.array_equal(b, a)


def test_from_change_rejects_misaligned_delta():
    with pytest.raises(ValueError):
        Patch.from_change(BBox(0, 0, 2, 2), np.ones((2, 2), bool), np.arange(3), dtype=np.dtype(np.uint8))


def _patch(n_bytes_side: int) -> Step:
    changed = np.ones((n_bytes_side, 8), bool)
    p = Patch.from_change(BBox(0, 0, n_bytes_side, 8), changed, np.arange(changed.size) % 7 + 1,
                          dtype=np.dtype(np.uint8))
    assert p is not None
    return Step((p,), serial=1)


def test_history_drops_oldest_steps_over_budget_and_push_clears_redo():
    p = _patch(100)
    h = History(budget_bytes=3 * p.nbytes + 10)
    for _ in range(5):
        h.push(_patch(100))
    assert h.undo_count == 3 and h.nbytes <= h.budget_bytes
    assert h.pop_undo() is not None and h.can_redo
    h.push(_patch(100))
    assert not h.can_redo and h.undo_count == 3


def test_history_keeps_a_single_step_larger_than_the_budget():
    h = History(budget_bytes=10)
    h.push(_patch(50))
    assert h.undo_count == 1
    h.push(_patch(50))
    assert h.undo_count == 1


def test_lowering_the_budget_evicts():
    h = History()
    for _ in range(4):
        h.push(_patch(100))
    h.budget_bytes = _patch(100).nbytes
    assert h.undo_count == 1


def test_a_step_of_overlapping_patches_toggles_in_any_order():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, (20, 20)).astype(np.uint8)
    start = a.copy()
    parts = []
    for y0 in (0, 5, 8):
        new = a.copy()
        new[y0 : y0 + 8, 2:15] = rng.integers(0, 5, (8, 13))
        built = Patch.from_dense(BBox(0, 0, 20, 20), a ^ new)
        assert built is not None
        parts.append(built[0])
        a = new
    end = a.copy()
    step = Step(tuple(reversed(parts)), serial=7)
    assert step.bbox.contains(BBox(0, 2, 16, 15))
    step.apply_to(a)
    assert np.array_equal(a, start)
    step.apply_to(a)
    assert np.array_equal(a, end)
