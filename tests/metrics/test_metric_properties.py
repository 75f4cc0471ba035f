"""Hypothesis properties: Dice/IoU bounds and symmetry, identity, error maps agreeing with the counts."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segstudio.core.types import ClassSchema
from segstudio.metrics import ErrorCode, class_counts, compare_masks, dice, error_counts, error_map, hd95, iou

SEM = ClassSchema.from_names(["background", "a", "b", "c"], ignore_index=255)
ML = ClassSchema.from_names([f"c{i}" for i in range(5)], multilabel=True)

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))
sem_values = st.sampled_from([0, 1, 2, 3, 255])


@st.composite
def sem_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(shapes)
    return draw(arrays(np.uint8, shape, elements=sem_values)), draw(arrays(np.uint8, shape, elements=sem_values))


@st.composite
def ml_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(shapes)
    # bits 0..4 are classes; bit 40 belongs to none and must never be counted
    words = st.integers(0, 31).map(lambda v: v | (1 << 40) if v % 7 == 0 else v)
    return draw(arrays(np.uint64, shape, elements=words)), draw(arrays(np.uint64, shape, elements=words))


def _nan_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@settings(max_examples=60, deadline=None)
@given(sem_pair())
def test_semantic_dice_symmetric_bounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    g, p = pair
    d1 = dice(class_counts(g, p, schema=SEM))
    d2 = dice(class_counts(p, g, schema=SEM))
    assert _nan_equal(d1, d2)
    fin = d1[~np.isnan(d1)]
    assert np.all((fin >= 0) & (fin <= 1))
    j = iou(class_counts(g, p, schema=SEM))
    assert np.all(j[~np.isnan(j)] <= d1[~np.isnan(d1)] + 1e-12)  # IoU never exceeds Dice
    s = compare_masks(g, p, schema=SEM)
    assert 0.0 <= s.mean_dice <= 1.0 and 0.0 <= s.pixel_accuracy <= 1.0


@settings(max_examples=60, deadline=None)
@given(sem_pair())
def test_identical_masks_score_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    g, _ = pair
    s = compare_masks(g, g, schema=SEM)
    assert s.mean_dice == 1.0 and s.mean_iou == 1.0 and s.pixel_accuracy == 1.0
    for c in s.per_class:
        assert c.fp == 0 and c.fn == 0
        assert (c.dice == 1.0) if c.present else math.isnan(c.dice)


@settings(max_examples=60, deadline=None)
@given(sem_pair())
def test_semantic_error_map_counts_equal_confusion_counts(pair: tuple[np.ndarray, np.ndarray]) -> None:
    g, p = pair
    c = class_counts(g, p, schema=SEM)
    for k, cid in enumerate(c.class_ids):
        e = error_counts(error_map(g, p, schema=SEM, class_id=cid))
        assert (e[ErrorCode.TP], e[ErrorCode.FP], e[ErrorCode.FN], e[ErrorCode.TN]) == (c.tp[k], c.fp[k], c.fn[k], c.tn[k])
        assert e[ErrorCode.IGNORED] == g.size - c.valid
    # all-classes map: TP = agreeing foreground pixels, FN = foreground predicted as background, …
    a = error_counts(error_map(g, p, schema=SEM))
    fg = [k for k, cid in enumerate(c.class_ids) if cid != 0]
    assert a[ErrorCode.TP] == sum(int(c.tp[k]) for k in fg)
    assert a[ErrorCode.TN] == int(c.tp[0])
    assert a[ErrorCode.FN] == int(c.fp[0])  # predicted background where GT is foreground
    assert a[ErrorCode.FP] == int(c.fn[0])
    assert a[ErrorCode.TP] + a[ErrorCode.TN] + a[ErrorCode.FP] + a[ErrorCode.FN] + a[ErrorCode.CONFUSED] == c.valid


@settings(max_examples=60, deadline=None)
@given(ml_pair())
def test_multilabel_error_map_counts_equal_counts_and_dice_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    g, p = pair
    c = class_counts(g, p, schema=ML)
    for k, cid in enumerate(c.class_ids):
        e = error_counts(error_map(g, p, schema=ML, class_id=cid))
        assert (e[ErrorCode.TP], e[ErrorCode.FP], e[ErrorCode.FN], e[ErrorCode.TN]) == (c.tp[k], c.fp[k], c.fn[k], c.tn[k])
        plane_g = (g >> np.uint64(cid)) & np.uint64(1)
        plane_p = (p >> np.uint64(cid)) & np.uint64(1)
        assert c.tp[k] == int(np.count_nonzero(plane_g & plane_p))
    assert _nan_equal(dice(c), dice(class_counts(p, g, schema=ML)))


@settings(max_examples=40, deadline=None)
@given(sem_pair())
def test_semantic_equals_its_one_hot_multilabel_encoding(pair: tuple[np.ndarray, np.ndarray]) -> None:
    g, p = pair
    keep = (g != 255) & (p != 255)
    sem = class_counts(g, p, schema=SEM, valid=keep)
    ml_schema = ClassSchema.from_names(list(SEM.names), multilabel=True)
    one = np.uint64(1)
    gm = np.where(keep, one << g.astype(np.uint64) % np.uint64(64), 0).astype(np.uint64)
    pm = np.where(keep, one << p.astype(np.uint64) % np.uint64(64), 0).astype(np.uint64)
    ml = class_counts(gm, pm, schema=ml_schema, valid=keep)
    assert sem.tp.tolist() == ml.tp.tolist() and sem.fp.tolist() == ml.fp.tolist() and sem.fn.tolist() == ml.fn.tolist()


@settings(max_examples=40, deadline=None)
@given(arrays(bool, (9, 11)), arrays(bool, (9, 11)))
def test_hd95_symmetric_and_zero_on_identical(a: np.ndarray, b: np.ndarray) -> None:
    h1, h2 = hd95(a, b), hd95(b, a)
    assert (math.isnan(h1) and math.isnan(h2)) or h1 == h2
    if a.any():
        assert hd95(a, a) == 0.0


@settings(max_examples=40, deadline=None)
@given(sem_pair(), st.sampled_from([None, 0, 1, 2, 3]))
def test_8bit_fast_paths_equal_the_general_16bit_paths(pair: tuple[np.ndarray, np.ndarray], class_id: int | None) -> None:
    g, p = pair
    g16, p16 = g.astype(np.uint16), p.astype(np.uint16)
    assert np.array_equal(error_map(g, p, schema=SEM, class_id=class_id), error_map(g16, p16, schema=SEM, class_id=class_id))
    c8, c16 = class_counts(g, p, schema=SEM), class_counts(g16, p16, schema=SEM)
    assert (c8.tp.tolist(), c8.fp.tolist(), c8.fn.tolist(), c8.valid) == (c16.tp.tolist(), c16.fp.tolist(), c16.fn.tolist(), c16.valid)
