"""Error maps and the per-sample summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segstudio.core.types import ClassSchema
from segstudio.metrics import ErrorCode, SampleComparison, compare_masks, error_counts, error_map

SCHEMA = ClassSchema.from_names(["background", "a", "b"], ignore_index=255)


def test_per_class_error_map_by_hand() -> None:
    gt = np.array([[0, 1, 1], [2, 2, 255]], np.uint8)
    pred = np.array([[1, 1, 0], [2, 1, 1]], np.uint8)
    codes = error_map(gt, pred, schema=SCHEMA, class_id=1)
    E = ErrorCode
    assert codes.tolist() == [[E.FP, E.TP, E.FN], [E.TN, E.FP, E.IGNORED]]
    assert codes.dtype == np.uint8


def test_all_classes_error_map_by_hand() -> None:
    gt = np.array([[0, 1, 1, 2, 0]], np.uint8)
    pred = np.array([[0, 1, 0, 1, 2]], np.uint8)
    E = ErrorCode
    assert error_map(gt, pred, schema=SCHEMA).tolist() == [[E.TN, E.TP, E.FN, E.CONFUSED, E.FP]]


def test_all_classes_multilabel_error_map_by_hand() -> None:
    schema = ClassSchema.from_names(["x", "y", "z"], multilabel=True)
    gt = np.array([[0, 0b011, 0b001, 0b001, 0b000, 0b1000]], np.uint64)
    pred = np.array([[0, 0b011, 0b011, 0b010, 0b100, 0b0000]], np.uint64)
    E = ErrorCode
    # last pixel: bit 3 belongs to no class, so it is not an error
    assert error_map(gt, pred, schema=schema).tolist() == [[E.TN, E.TP, E.FP, E.CONFUSED, E.FP, E.TN]]
    assert error_map(gt, pred, schema=schema, class_id=1).tolist() == [[E.TN, E.TP, E.FP, E.FP, E.TN, E.TN]]


def test_error_map_of_a_crop_equals_the_crop_of_the_error_map() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    pred = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    full = error_map(gt, pred, schema=SCHEMA)
    np.testing.assert_array_equal(error_map(gt[5:20, 7:30], pred[5:20, 7:30], schema=SCHEMA), full[5:20, 7:30])


def test_summary_by_hand_excludes_background_from_means() -> None:
    gt = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    pred = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)
    s = compare_masks(gt, pred, schema=SCHEMA, sample_id="x.png")
    assert s.scored_ids == (1, 2)
    assert s.mean_dice == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert s.mean_iou == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert s.pixel_accuracy == pytest.approx(4 / 6)
    assert s.score(0).dice == pytest.approx(4 / 5)
    with_bg = compare_masks(gt, pred, schema=SCHEMA, include_background=True)
    assert with_bg.mean_dice == pytest.approx((4 / 5 + 2 / 3 + 1 / 2) / 3)


def test_empty_vs_empty_is_perfect_and_absent_classes_do_not_drag_the_mean() -> None:
    z = np.zeros((4, 4), np.uint8)
    s = compare_masks(z, z, schema=SCHEMA)
    assert (s.mean_dice, s.mean_iou, s.pixel_accuracy) == (1.0, 1.0, 1.0)
    gt = z.copy()
    gt[0, 0] = 1
    s2 = compare_masks(gt, gt, schema=SCHEMA)  # class 2 absent in both: NaN, not in the mean
    assert s2.mean_dice == 1.0
    assert math.isnan(s2.score(2).dice)
    missed = compare_masks(gt, z, schema=SCHEMA)
    assert missed.mean_dice == 0.0


def test_worst_first_sorting_uses_mean_dice() -> None:
    gt = np.zeros((8, 8), np.uint8)
    gt[2:6, 2:6] = 1
    good = gt.copy()
    good[2, 2] = 0
    bad = np.zeros_like(gt)
    bad[0:3, 0:3] = 1
    comps = [compare_masks(gt, p, schema=SCHEMA, sample_id=n) for n, p in (("good", good), ("bad", bad), ("same", gt))]
    assert [c.sample_id for c in sorted(comps, key=lambda c: c.sort_key)] == ["bad", "good", "same"]


def test_summary_round_trips_through_json_with_nan_and_inf() -> None:
    gt = np.zeros((10, 10), np.uint8)
    gt[2:5, 2:5] = 1
    pred = np.zeros_like(gt)
    pred[6:8, 6:8] = 2
    s = compare_masks(gt, pred, schema=SCHEMA, with_hd95=True, sample_id="s")
    assert s.score(1).hd95 == math.inf
    back = SampleComparison.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.sample_id == "s" and back.scored_ids == s.scored_ids
    assert back.mean_dice == s.mean_dice and back.mean_hd95 == math.inf
    for x, y in zip(back.per_class, s.per_class, strict=True):
        assert x.tp == y.tp and x.fp == y.fp and x.fn == y.fn
        assert (math.isnan(x.dice) and math.isnan(y.dice)) or x.dice == y.dice


def test_hd95_in_summary_per_present_class() -> None:
    gt = np.zeros((20, 20), np.uint8)
    gt[5:10, 5:10] = 1
    pred = np.zeros_like(gt)
    pred[5:10, 8:13] = 1
    s = compare_masks(gt, pred, schema=SCHEMA, with_hd95=True)
    assert s.score(1).hd95 == pytest.approx(3.0)
    assert math.isnan(s.score(2).hd95)  # type: ignore[arg-type]
    assert s.mean_hd95 == pytest.approx(3.0)


def test_error_counts_lists_every_code() -> None:
    codes = np.array([[0, 1, 1, 255]], np.uint8)
    c = error_counts(codes)
    assert c[ErrorCode.TP] == 2 and c[ErrorCode.IGNORED] == 1 and c[ErrorCode.FP] == 0


@pytest.mark.parametrize("multilabel", [False, True])
def test_block_wise_error_map_of_a_large_mask_matches_the_counts(multilabel: bool) -> None:
    rng = np.random.default_rng(5)
    if multilabel:
        schema = ClassSchema.from_names(["x", "y", "z"], multilabel=True)
        gt = rng.integers(0, 8, (300, 400)).astype(np.uint64)
        pred = rng.integers(0, 8, (300, 400)).astype(np.uint64)
    else:
        schema = SCHEMA
        gt = rng.choice(np.array([0, 1, 2, 255], np.uint8), (300, 400))
        pred = rng.choice(np.array([0, 1, 2], np.uint8), (300, 400))
    from segstudio.metrics import class_counts

    c = class_counts(gt, pred, schema=schema)
    for k, cid in enumerate(c.class_ids):
        e = error_counts(error_map(gt, pred, schema=schema, class_id=cid))
        assert (e[ErrorCode.TP], e[ErrorCode.FP], e[ErrorCode.FN]) == (c.tp[k], c.fp[k], c.fn[k])
    full = error_map(gt, pred, schema=schema)
    np.testing.assert_array_equal(error_map(gt[37:250, 11:399], pred[37:250, 11:399], schema=schema), full[37:250, 11:399])
