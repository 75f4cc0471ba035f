"""Class-folders format: bundled sample, Montgomery left/right lungs, overlaps, missing masks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.datasets.base import ProblemKind
from segstudio.datasets.registry import detect, get_format, open_dataset


def _independent_semantic(left: Path, right: Path) -> np.ndarray:
    out = np.zeros(np.asarray(Image.open(left)).shape[:2], np.uint8)
    out[np.asarray(Image.open(left).convert("L")) > 127] = 1
    out[np.asarray(Image.open(right).convert("L")) > 127] = 2
    return out


def test_bundled_sample_opens_with_classes_json(sample_dataset_path: Path) -> None:
    ds = open_dataset(sample_dataset_path)
    assert ds.format_name == "class-folders"
    assert ds.schema.names == ("background", "left lung", "right lung")
    assert ds.schema.by_id(1).colour == (64, 160, 255)
    assert len(ds) == 8 and not ds.all_problems()
    s = ds[0]
    gt = ds.load_gt(s)
    stem = Path(s.id).name
    expected = _independent_semantic(sample_dataset_path / "leftMask" / stem, sample_dataset_path / "rightMask" / stem)
    np.testing.assert_array_equal(gt, expected)
    assert ds.load_image(s).shape == gt.shape


def test_montgomery_left_right_lungs(montgomery: Path) -> None:
    found = detect(montgomery)
    assert found[0].name == "class-folders"
    ds = open_dataset(montgomery)
    assert ds.schema.names == ("background", "left lung", "right lung")
    assert len(ds) == 40 and ds.split_counts() == {"unassigned": 40}
    assert not ds.all_problems()
    for s in ds.samples[:3]:
        stem = Path(s.id).name
        expected = _independent_semantic(montgomery / "leftMask" / stem, montgomery / "rightMask" / stem)
        np.testing.assert_array_equal(ds.load_gt(s), expected)
        assert set(np.unique(expected)) == {0, 1, 2}


def test_montgomery_multilabel_bits(montgomery: Path) -> None:
    ds = open_dataset(montgomery, format="class-folders", multilabel=True)
    assert ds.schema.multilabel and ds.schema.names == ("left lung", "right lung")
    s = ds[0]
    stem = Path(s.id).name
    gt = ds.load_gt(s)
    assert gt.dtype == np.uint64
    left = np.asarray(Image.open(montgomery / "leftMask" / stem)) > 127
    np.testing.assert_array_equal((gt & 1).astype(bool), left)


def _make(tmp: Path, *, overlap: bool, drop_right: str | None = None) -> Path:
    for d in ("images", "cat", "dog"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    for k in range(2):
        Image.fromarray(np.full((8, 10), 50 * k, np.uint8)).save(tmp / "images" / f"im{k}.png")
        cat = np.zeros((8, 10), np.uint8)
        cat[1:5, 1:5] = 255
        dog = np.zeros((8, 10), np.uint8)
        dog[3:7, (3 if overlap else 6) : 9] = 255
        Image.fromarray(cat).save(tmp / "cat" / f"im{k}.png")
        if drop_right != f"im{k}":
            Image.fromarray(dog).save(tmp / "dog" / f"im{k}.png")
    return tmp


def test_overlap_is_reported_in_semantic_view_and_kept_in_multilabel(tmp_path: Path) -> None:
    root = _make(tmp_path, overlap=True)
    ds = open_dataset(root)
    assert ds.schema.names == ("background", "cat", "dog")
    gt = ds.load_gt(ds[0])
    assert gt[3, 3] == 2  # later class wins ...
    probs = [p for p in ds.all_problems() if p.kind == ProblemKind.OVERLAP]
    assert len(probs) == 1 and "'dog' overlaps" in probs[0].message and probs[0].sample_id == ds[0].id  # ... reported
    ml = open_dataset(root, multilabel=True)
    g = ml.load_gt(ml[0])
    assert int(g[3, 3]) == 0b11 and int(g[1, 1]) == 0b01 and int(g[6, 8]) == 0b10
    assert not ml.all_problems()


def test_no_overlap_no_problem(tmp_path: Path) -> None:
    ds = open_dataset(_make(tmp_path, overlap=False))
    ds.load_gt(ds[0])
    assert not ds.all_problems()


def test_missing_class_mask_is_reported_and_taken_as_empty(tmp_path: Path) -> None:
    ds = open_dataset(_make(tmp_path, overlap=False, drop_right="im1"))
    s = ds.get("images/im1.png")
    assert [p.kind for p in s.problems] == [ProblemKind.MISSING_MASK]
    assert "dog/" in s.problems[0].message
    assert 2 not in np.unique(ds.load_gt(s))
    assert not ds.get("images/im0.png").problems


def test_mask_without_image_is_reported(tmp_path: Path) -> None:
    root = _make(tmp_path, overlap=False)
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(root / "cat" / "orphan.png")
    ds = open_dataset(root)
    assert len(ds) == 2
    assert [(p.kind, p.path.name) for p in ds.problems] == [(ProblemKind.MISSING_IMAGE, "orphan.png")]


def test_size_mismatch_raises_named_problem(tmp_path: Path) -> None:
    root = _make(tmp_path, overlap=False)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "dog" / "im0.png")
    ds = open_dataset(root)
    from segstudio.datasets.io import DatasetProblemError

    with pytest.raises(DatasetProblemError) as e:
        ds.load_gt(ds.get("images/im0.png"))
    assert e.value.kind == ProblemKind.SIZE_MISMATCH and e.value.path == root / "dog" / "im0.png"
    assert "4x4" in str(e.value) and "10x8" in str(e.value)


def test_opening_decodes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segstudio.datasets.io as io

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("decoded during open")

    monkeypatch.setattr(io, "_read_raster", boom)
    ds = get_format("class-folders").open(_make(tmp_path, overlap=False))
    assert len(ds) == 2


def _gt_in_a_forked_child(path: str, sample_id: str, queue) -> None:
    ds = open_dataset(path)
    queue.put(ds.load_gt(ds.get(sample_id)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_process_reads_masks_after_its_parent_did(sample_dataset_path: Path) -> None:
    # a DataLoader worker is forked from a process that has already read masks (the app, a resident run): it
    # inherits the decoding pool without its threads, and used to wait forever on its first two-class sample
    import multiprocessing as mp

    ds = open_dataset(sample_dataset_path)
    sample = ds[0]
    parent = ds.load_gt(sample)  # the parent's decoding threads now exist
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_gt_in_a_forked_child, args=(str(sample_dataset_path), sample.id, queue))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(got, parent)
    assert child.exitcode == 0
