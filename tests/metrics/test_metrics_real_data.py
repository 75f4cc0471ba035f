"""Metrics on the real Montgomery lung masks (read in place)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core.types import ClassSchema
from segstudio.metrics import ErrorCode, assess_mask, compare_masks, error_counts, error_map

SCHEMA = ClassSchema.from_names(["background", "left lung", "right lung"])


def _gt(root: Path, name: str) -> np.ndarray:
    left = cv2.imread(str(root / "leftMask" / name), cv2.IMREAD_GRAYSCALE) >= 128
    right = cv2.imread(str(root / "rightMask" / name), cv2.IMREAD_GRAYSCALE) >= 128
    gt = np.zeros(left.shape, np.uint8)
    gt[left] = 1
    gt[right] = 2
    return gt


def test_ground_truth_masks_look_clean_and_a_speck_is_caught(montgomery: Path) -> None:
    names = sorted(p.name for p in (montgomery / "leftMask").glob("*.png"))
    assert len(names) >= 10
    for name in names:
        report = assess_mask(_gt(montgomery, name), schema=SCHEMA, sample_id=name)
        # README: every mask is exactly two components, one lung each
        assert report.flags == (), (name, report)
        assert [q.components for q in report.per_class] == [1, 1]
    gt = _gt(montgomery, names[0])
    gt[5:7, 5:7] = 2
    assert "tiny_islands" in assess_mask(gt, schema=SCHEMA).flags


def test_eroded_prediction_scores_as_expected(montgomery: Path) -> None:
    name = sorted(p.name for p in (montgomery / "leftMask").glob("*.png"))[0]
    gt = _gt(montgomery, name)
    pred = cv2.erode(gt, np.ones((7, 7), np.uint8))  # every border pulled in by 3 pixels
    s = compare_masks(gt, pred, schema=SCHEMA, with_hd95=True, sample_id=name)
    assert 0.85 < s.mean_dice < 1.0
    for cid in (1, 2):
        c = s.score(cid)
        assert c.fp == 0 and c.fn > 0 and c.precision == 1.0
        assert c.hd95 is not None and 3.0 <= c.hd95 <= 3.0 * math.sqrt(2) + 1e-9
    codes = error_map(gt, pred, schema=SCHEMA)
    e = error_counts(codes)
    assert e[ErrorCode.FP] == 0 and e[ErrorCode.CONFUSED] == 0
    assert e[ErrorCode.FN] == sum(s.score(c).fn for c in (1, 2))
    assert compare_masks(gt, gt, schema=SCHEMA).mean_dice == 1.0


def test_union_mask_matches_left_plus_right(montgomery: Path) -> None:
    schema = ClassSchema.from_names(["background", "lung"])
    name = sorted(p.name for p in (montgomery / "masks").glob("*.png"))[0]
    union = (cv2.imread(str(montgomery / "masks" / name), cv2.IMREAD_GRAYSCALE) >= 128).astype(np.uint8)
    parts = (_gt(montgomery, name) > 0).astype(np.uint8)
    assert compare_masks(union, parts, schema=schema).mean_dice == pytest.approx(1.0)
