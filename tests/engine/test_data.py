from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import DatasetError
from segstudio.engine.config import DataConfig
from segstudio.engine.data import SegmentationData, balanced_class_weights, class_pixel_counts, split_samples
from segstudio.engine.task import IGNORE, resolve_task

from .conftest import make_dataset


def test_dataset_splits_are_used_and_test_never_trains():
    ds = make_dataset(n=6, splits=("train", "train", "train", "val", "test", "test"))
    s = split_samples(ds, DataConfig(), task=resolve_task(ds.schema))
    assert s.source == "dataset"
    assert [x.id for x in s.train] == ["img0.png", "img1.png", "img2.png"] and [x.id for x in s.val] == ["img3.png"]


def test_random_hold_out_is_seeded_and_disjoint():
    ds = make_dataset(n=10)
    task = resolve_task(ds.schema)
    a = split_samples(ds, DataConfig(val_fraction=0.3), task=task, seed=1)
    b = split_samples(ds, DataConfig(val_fraction=0.3), task=task, seed=1)
    c = split_samples(ds, DataConfig(val_fraction=0.3), task=task, seed=2)
    assert a == b and a.source == "random" and len(a.val) == 3
    assert {x.id for x in a.train}.isdisjoint({x.id for x in a.val})
    assert {x.id for x in a.val} != {x.id for x in c.val} or {x.id for x in a.train} != {x.id for x in c.train}


def test_kfold_partitions_and_stratifies_by_class_presence():
    ds = make_dataset(n=12, names=("background", "thing"))
    # half of the samples lose their foreground: two presence groups of six
    corrections = {f"img{i}.png": (lambda: np.zeros((32, 32), np.uint8)) for i in range(6)}
    task = resolve_task(ds.schema)
    vals = []
    for k in range(3):
        s = split_samples(ds, DataConfig(folds=3, fold=k), task=task, corrections=corrections)
        assert s.source == f"fold {k + 1}/3" and len(s.train) + len(s.val) == 12
        empty = sum(x.id in corrections for x in s.val)
        assert empty == 2 and len(s.val) == 4  # each fold gets its share of both groups
        vals.append({x.id for x in s.val})
    assert set.union(*vals) == {x.id for x in ds.samples}


def test_items_and_corrections_override_gt():
    ds = make_dataset(n=2, rgb=True)
    task = resolve_task(ds.schema)
    corr = {"img1.png": lambda: np.full((32, 32), 2, np.uint8)}
    data = SegmentationData(ds, ds.samples, task=task, image_size=16, in_channels=3, corrections=corr)
    x, y = data[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and y.shape == (16, 16) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) == {0, 1, 2}
    assert torch.all(data[1][1] == 2)
    gray = SegmentationData(ds, ds.samples, task=task, image_size=16, in_channels=1)
    assert gray[0][0].shape == (1, 16, 16)


def test_multilabel_items_are_planes():
    ds = make_dataset(n=2, names=("a", "b", "c"), multilabel=True)
    task = resolve_task(ds.schema)
    assert task.mode == "multilabel"
    x, y = SegmentationData(ds, ds.samples, task=task, image_size=32, in_channels=3)[0]
    assert y.shape == (3, 32, 32) and y.dtype == torch.uint8
    assert y[0].any() and y[1].any() and y[2].any() and (y.sum(0) > 1).any()  # overlaps survive


def test_ignore_classes_and_unknown_values_become_ignore():
    ds = make_dataset(n=1)
    from segstudio.core.types import ClassInfo, ClassSchema

    ds.schema = ClassSchema(
        (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "left", (1, 1, 1)), ClassInfo(2, "right", (2, 2, 2), ignore=True))
    )
    task = resolve_task(ds.schema)
    assert task.mode == "binary"
    t = task.target_from_gt(np.array([[0, 1, 2, 7]], np.uint8))
    assert t.tolist() == [[0, 1, IGNORE, IGNORE]]


def test_size_mismatch_names_the_sample():
    ds = make_dataset(n=1)
    corr = {"img0.png": lambda: np.zeros((8, 8), np.uint8)}
    data = SegmentationData(ds, ds.samples, task=resolve_task(ds.schema), image_size=16, in_channels=3, corrections=corr)
    with pytest.raises(DatasetError) as e:
        data[0]
    assert "img0.png" in str(e.value)


def test_cache_is_bounded():
    ds = make_dataset(n=4)
    data = SegmentationData(ds, ds.samples, task=resolve_task(ds.schema), image_size=32, in_channels=3, cache_mb=0)
    data[0]
    assert data.cache == {}
    data = SegmentationData(ds, ds.samples, task=resolve_task(ds.schema), image_size=32, in_channels=3)
    data[0]
    assert list(data.cache) == [0]


def test_balanced_weights_favour_rare_classes():
    ds = make_dataset(n=4)
    data = SegmentationData(ds, ds.samples, task=resolve_task(ds.schema), image_size=32, in_channels=3)
    counts = class_pixel_counts(data)
    assert counts.sum() == 4 * 32 * 32
    w = balanced_class_weights(counts)
    assert np.isclose(w.mean(), 1.0) and w[0] < w[1] and w[0] < w[2]


@pytest.mark.parametrize("name,size", [("montgomery", 256), ("camvid", 96)])
def test_targets_shrunk_before_the_lookup_equal_the_lookup_shrunk(name, size, request):
    """On real masks (Montgomery's left/right lungs, CamVid's 12 classes with its unlabelled void), a class-index
    mask resized before its ids become indices gives exactly the target that the lookup at full size, then the
    nearest-neighbour resize, gives: the shortcut changes the cost, not the target."""
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.augment import resize_pair

    root = request.getfixturevalue(name)
    ds = open_dataset(root)
    task = resolve_task(ds.schema)
    samples = ds.samples[:4]
    data = SegmentationData(ds, samples, task=task, image_size=size, in_channels=3, cache_mb=0)
    for i, s in enumerate(samples):
        gt = ds.load_gt(s)
        assert gt.dtype in (np.uint8, np.uint16) and gt.shape != (size, size)
        full = task.target_from_gt(gt).astype(np.int16)
        _, expected = resize_pair(np.zeros((*gt.shape, 3), np.uint8), full, size)
        _, target = data.load_pair(i)
        assert target.dtype == np.int16 and target.shape == (size, size)
        np.testing.assert_array_equal(target, expected)
        if name == "camvid":
            assert (target == IGNORE).any()  # the void pixels stay ignored


def test_a_content_crop_trains_on_the_picture_without_its_bands():
    plain, padded = make_dataset(n=3), make_dataset(n=3)
    read_i, read_g = padded.read_image, padded.read_gt

    def pad(a):  # black bands: 16 rows below, 4 columns either side
        out = np.zeros((48, 40, *a.shape[2:]), a.dtype)
        out[:32, 4:36] = a
        return out

    padded.read_image = lambda d, s: pad(read_i(d, s))
    padded.read_gt = lambda d, s: pad(read_g(d, s))
    task = resolve_task(plain.schema)
    ref = SegmentationData(plain, plain.samples, task=task, image_size=16, in_channels=1)
    cropped = SegmentationData(padded, padded.samples, task=task, image_size=16, in_channels=1, crop="content")
    whole = SegmentationData(padded, padded.samples, task=task, image_size=16, in_channels=1)
    for i in range(3):
        (ia, ta), (ib, tb) = ref.load_pair(i), cropped.load_pair(i)
        np.testing.assert_array_equal(ib, ia)
        np.testing.assert_array_equal(tb, ta)
        assert not np.array_equal(whole.load_pair(i)[1], ta)  # uncropped, the bands squeeze the picture
