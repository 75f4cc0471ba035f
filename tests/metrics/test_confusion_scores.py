"""Hand-computed tiny cases for counts and scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.metrics import (
    class_counts,
    confusion_matrix,
    dice,
    hd95,
    iou,
    multilabel_counts,
    pixel_accuracy,
    precision,
    recall,
)

GT = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
PRED = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)
SCHEMA = ClassSchema.from_names(["background", "a", "b"])


def test_confusion_matrix_by_hand() -> None:
    m = confusion_matrix(GT, PRED, num_classes=3)
    assert m.tolist() == [[2, 0, 0], [0, 1, 1], [1, 0, 1]]


def test_counts_and_scores_by_hand() -> None:
    c = class_counts(GT, PRED, schema=SCHEMA)
    assert c.class_ids == (0, 1, 2)
    assert c.tp.tolist() == [2, 1, 1]
    assert c.fp.tolist() == [1, 0, 1]
    assert c.fn.tolist() == [0, 1, 1]
    assert c.tn.tolist() == [3, 4, 3]
    assert c.valid == 6
    np.testing.assert_allclose(dice(c), [4 / 5, 2 / 3, 1 / 2])
    np.testing.assert_allclose(iou(c), [2 / 3, 1 / 2, 1 / 3])
    np.testing.assert_allclose(precision(c), [2 / 3, 1.0, 1 / 2])
    np.testing.assert_allclose(recall(c), [1.0, 1 / 2, 1 / 2])
    assert pixel_accuracy(GT, PRED) == pytest.approx(4 / 6)


def test_ignore_index_pixels_are_not_counted() -> None:
    schema = ClassSchema.from_names(["background", "a"], ignore_index=255)
    gt = np.array([[1, 255, 0, 1]], np.uint8)
    pred = np.array([[1, 1, 1, 255]], np.uint8)
    c = class_counts(gt, pred, schema=schema)
    # only pixels 0 and 2 count: (1,1) and (0,1)
    assert c.valid == 2
    assert c.tp.tolist() == [0, 1]
    assert c.fp.tolist() == [0, 1]
    assert c.fn.tolist() == [1, 0]


def test_ignore_flagged_class_is_neither_scored_nor_counted() -> None:
    schema = ClassSchema(classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "a", (1, 1, 1)), ClassInfo(2, "void", (2, 2, 2), ignore=True)))
    gt = np.array([[1, 2, 0]], np.uint8)
    pred = np.array([[1, 1, 2]], np.uint8)
    c = class_counts(gt, pred, schema=schema)
    assert c.class_ids == (0, 1)
    assert c.valid == 1
    assert c.tp.tolist() == [0, 1]


def test_out_of_range_value_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\[7\]"):
        confusion_matrix(np.array([[0, 7]], np.uint8), np.array([[0, 1]], np.uint8), num_classes=3)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        class_counts(GT, PRED[:, :2], schema=SCHEMA)


def test_multilabel_counts_by_hand() -> None:
    gt = np.array([[0b01, 0b11], [0b10, 0]], np.uint64)
    pred = np.array([[0b01, 0b01], [0b11, 0b10]], np.uint64)
    c = multilabel_counts(gt, pred, class_ids=[0, 1])
    assert c.tp.tolist() == [2, 1]
    assert c.fp.tolist() == [1, 1]
    assert c.fn.tolist() == [0, 1]
    assert c.tn.tolist() == [1, 1]


def test_multilabel_high_bits_and_valid_mask() -> None:
    hi = np.uint64(1 << 63)
    mid = np.uint64(1 << 40)
    gt = np.array([[hi | mid, hi, 0]], np.uint64)
    pred = np.array([[hi, hi | mid, mid]], np.uint64)
    c = multilabel_counts(gt, pred, class_ids=[40, 63])
    assert c.tp.tolist() == [0, 2]
    assert c.fp.tolist() == [2, 0]
    assert c.fn.tolist() == [1, 0]
    cv = multilabel_counts(gt, pred, class_ids=[40, 63], valid=np.array([[True, False, True]]))
    assert cv.valid == 2
    assert cv.fp.tolist() == [1, 0]


def test_absent_class_scores_are_nan_not_one_or_zero() -> None:
    schema = ClassSchema.from_names(["background", "a", "b"])
    z = np.zeros((2, 2), np.uint8)
    c = class_counts(z, z, schema=schema)
    d = dice(c)
    assert d[0] == 1.0 and math.isnan(d[1]) and math.isnan(d[2])


def test_pooled_counts_add_up() -> None:
    a = class_counts(GT, PRED, schema=SCHEMA)
    b = class_counts(PRED, GT, schema=SCHEMA)
    s = a + b
    assert s.tp.tolist() == (a.tp + b.tp).tolist()
    assert s.valid == 12


def _hd95_brute(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    from scipy import ndimage

    def surf(m: np.ndarray) -> np.ndarray:
        return m & ~ndimage.binary_erosion(m, border_value=0)  # MONAI's surface: a 4-neighbour outside

    pa = np.argwhere(surf(a)) * np.asarray(spacing)
    pb = np.argwhere(surf(b)) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return float(max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95)))


def test_hd95_single_pixels_with_spacing() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0, 0] = True
    b[3, 4] = True
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, spacing=(2.0, 1.0)) == pytest.approx(math.sqrt(52.0))


def test_hd95_matches_brute_force_and_crop_is_exact() -> None:
    rng = np.random.default_rng(3)
    big_a = np.zeros((300, 300), bool)
    big_b = np.zeros((300, 300), bool)
    big_a[100:140, 120:170] = True
    big_a[150:152, 60:62] = True  # a far island changes the percentile
    big_b[105:150, 118:160] = True
    big_b[rng.integers(100, 150, 20), rng.integers(118, 160, 20)] = False
    assert hd95(big_a, big_b) == pytest.approx(_hd95_brute(big_a, big_b))
    assert hd95(big_a, big_b, spacing=(0.5, 2.0)) == pytest.approx(_hd95_brute(big_a, big_b, (0.5, 2.0)))


def test_hd95_empty_conventions() -> None:
    z = np.zeros((5, 5), bool)
    one = z.copy()
    one[2, 2] = True
    assert math.isnan(hd95(z, z))
    assert hd95(z, one) == math.inf
    assert hd95(one, one) == 0.0


def test_multilabel_counts_over_several_chunks_match_per_bit_counting() -> None:
    rng = np.random.default_rng(11)
    gt = np.zeros((700, 700), np.uint64)  # 490k pixels: two chunks, the first rows empty in both masks
    pred = np.zeros_like(gt)
    gt[400:] = rng.integers(0, 1 << 20, (300, 700), dtype=np.uint64)
    pred[380:690] = rng.integers(0, 1 << 20, (310, 700), dtype=np.uint64)
    ids = [0, 5, 17, 19]
    c = multilabel_counts(gt, pred, class_ids=ids)
    for k, b in enumerate(ids):
        g = (gt >> np.uint64(b)) & np.uint64(1) == 1
        p = (pred >> np.uint64(b)) & np.uint64(1) == 1
        assert (c.tp[k], c.fp[k], c.fn[k]) == (np.count_nonzero(g & p), np.count_nonzero(p & ~g), np.count_nonzero(g & ~p))
    assert c.valid == gt.size


def test_semantic_confusion_over_several_chunks() -> None:
    rng = np.random.default_rng(12)
    gt = rng.integers(0, 3, (600, 600)).astype(np.uint8)
    pred = rng.integers(0, 3, (600, 600)).astype(np.uint8)
    m = confusion_matrix(gt, pred, num_classes=3)
    for a in range(3):
        for b in range(3):
            assert m[a, b] == np.count_nonzero((gt == a) & (pred == b))
