import cv2
import numpy as np
import pytest

from segstudio.masks import (
    BBox,
    EditGuard,
    LabelMask,
    copy_prediction,
    dilate,
    erode,
    fill_holes,
    keep_largest,
    remove_islands,
    replace_class,
)


def ring(shape, centre, r_out, r_in, value, dtype=np.uint8):
    a = np.zeros(shape, dtype)
    cv2.circle(a, centre, r_out, value, -1)
    cv2.circle(a, centre, r_in, 0, -1)
    return a


def test_fill_holes_fills_enclosed_pixels_only(sem_mask):
    a = ring(sem_mask.shape, (20, 20), 10, 4, 1)
    a[0:3, 40:50] = 1  # an open shape at the border has no hole
    sem_mask.set_array(a)
    box = fill_holes(sem_mask, class_id=1)
    assert box is not None and sem_mask.array[20, 20] == 1
    disc = np.zeros(a.shape, np.uint8)
    cv2.circle(disc, (20, 20), 10, 1, -1)
    assert (sem_mask.array == 1).sum() == disc.sum() + 30
    assert sem_mask.history.undo_count == 1
    sem_mask.undo()
    assert np.array_equal(sem_mask.array, a)


def test_fill_holes_keeps_a_locked_class_inside(sem_mask):
    a = ring(sem_mask.shape, (20, 20), 10, 4, 1)
    a[20, 20] = 2
    sem_mask.set_array(a)
    fill_holes(sem_mask, class_id=1, guard=EditGuard(locked=frozenset({2})))
    assert sem_mask.array[20, 20] == 2 and sem_mask.array[19, 20] == 1


def test_fill_holes_multilabel_only_sets_its_bit(ml_mask):
    plane = ring(ml_mask.shape, (20, 20), 10, 4, 1).astype(np.uint64)
    a = (plane << np.uint64(3)) | np.uint64(1 << 60)
    ml_mask.set_array(a)
    fill_holes(ml_mask, class_id=3)
    assert ml_mask.plane(3)[20, 20] and ml_mask.plane(60).all()
    assert not ((ml_mask.array ^ a) & ~np.uint64(1 << 3)).any()


def test_remove_islands_and_keep_largest(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[2:12, 2:12] = 1  # 100 px
    a[20:28, 20:28] = 1  # 64 px
    a[35:37, 45:47] = 1  # 4 px
    a[30:33, 5:8] = 2  # another class is never touched
    sem_mask.set_array(a)
    remove_islands(sem_mask, class_id=1, min_size=10, erase_value=255)
    assert (sem_mask.array[35:37, 45:47] == 255).all() and (sem_mask.array == 1).sum() == 164
    keep_largest(sem_mask, class_id=1, k=1)
    assert (sem_mask.array == 1).sum() == 100 and (sem_mask.array == 2).sum() == 9
    assert keep_largest(sem_mask, class_id=1, k=2) is None  # already at most 2 components
    sem_mask.undo()
    sem_mask.undo()
    assert np.array_equal(sem_mask.array, a)


def test_keep_largest_two_lungs(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[5:35, 3:20] = 1
    a[5:35, 28:47] = 1
    a[0:2, 22:24] = 1
    sem_mask.set_array(a)
    keep_largest(sem_mask, class_id=1, k=2)
    assert (sem_mask.array == 1).sum() == 30 * 17 + 30 * 19


def test_dilate_and_erode_by_radius(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[20, 25] = 1
    sem_mask.set_array(a)
    dilate(sem_mask, class_id=1, radius=3)
    yy, xx = np.mgrid[:40, :50]
    want = (yy - 20) ** 2 + (xx - 25) ** 2 <= 9
    assert np.array_equal(sem_mask.array == 1, want)
    erode(sem_mask, class_id=1, radius=3)
    assert (sem_mask.array == 1).sum() == 1
    assert dilate(sem_mask, class_id=1, radius=0) is None
    assert dilate(sem_mask, class_id=2, radius=2) is None  # class absent


def test_erode_does_not_eat_from_the_image_border(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[:, :10] = 1
    sem_mask.set_array(a)
    erode(sem_mask, class_id=1, radius=2)
    assert (sem_mask.array[:, :8] == 1).all() and not (sem_mask.array[:, 8:] == 1).any()


def test_dilate_respects_locked_neighbours(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[10:20, 10:20] = 1
    a[10:20, 20:30] = 2
    sem_mask.set_array(a)
    dilate(sem_mask, class_id=1, radius=4, guard=EditGuard(locked=frozenset({2})))
    assert ((sem_mask.array == 2) == (a == 2)).all() and sem_mask.array[8, 15] == 1


def test_replace_class_semantic_and_multilabel(sem_mask, ml_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[:5] = 1
    a[5:10] = 2
    sem_mask.set_array(a)
    replace_class(sem_mask, source=1, target=3)
    assert (sem_mask.array[:5] == 3).all() and (sem_mask.array[5:10] == 2).all()
    b = np.zeros(ml_mask.shape, np.uint64)
    b[:5] = np.uint64(0b0011)
    ml_mask.set_array(b)
    replace_class(ml_mask, source=0, target=2)
    assert (ml_mask.array[:5] == np.uint64(0b0110)).all() and not ml_mask.array[5:].any()
    assert replace_class(ml_mask, source=0, target=0) is None


def test_copy_prediction_region_all_values(sem_mask):
    pred = np.full(sem_mask.shape, 2, np.uint8)
    region = np.zeros(sem_mask.shape, bool)
    region[5:10, 5:10] = True
    box = copy_prediction(sem_mask, pred, region=region)
    assert box == BBox(5, 5, 10, 10) and (sem_mask.array == 2).sum() == 25
    assert sem_mask.history.undo_count == 1


def test_copy_prediction_one_class_semantic(sem_mask):
    a = np.zeros(sem_mask.shape, np.uint8)
    a[:, :10] = 1
    a[:, 40:] = 3
    sem_mask.set_array(a)
    pred = np.zeros_like(a)
    pred[:, 5:20] = 1
    pred[:, 40:] = 2
    copy_prediction(sem_mask, pred, class_id=1)
    got = sem_mask.array
    assert (got[:, 5:20] == 1).all() and (got[:, :5] == 0).all() and (got[:, 40:] == 3).all()


def test_copy_prediction_one_plane_multilabel_in_bbox(ml_mask):
    pred = np.full(ml_mask.shape, np.uint64(0b111), np.uint64)
    copy_prediction(ml_mask, pred, bbox=BBox(0, 0, 10, 10), class_id=1)
    assert (ml_mask.array[:10, :10] == np.uint64(0b010)).all() and not ml_mask.array[10:].any()


def test_copy_prediction_rejects_mismatched_inputs(sem_mask):
    with pytest.raises(ValueError):
        copy_prediction(sem_mask, np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError):
        copy_prediction(sem_mask, np.zeros(sem_mask.shape, np.uint16))


def test_ops_on_uint16_masks(sem_schema):
    a = np.zeros((30, 30), np.uint16)
    a[5:25, 5:25] = 700
    a[10:15, 10:15] = 0
    m = LabelMask(a, sem_schema)
    fill_holes(m, class_id=700)
    assert (m.array[5:25, 5:25] == 700).all()
