"""Evaluation of checkpoints and prediction folders: figures checked against direct pixel counting."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.engine.cancel import CancelToken
from segstudio.engine.evaluate import (
    Evaluation,
    SampleEvaluated,
    Unreadable,
    evaluate_checkpoint,
    evaluate_folder,
    iter_evaluation,
    run_to_end,
    select_samples,
)
from segstudio.engine.infer import InferenceOptions, Predictor, predict
from segstudio.engine.outputs import PredictionWriter

from .conftest import make_dataset
from .inferkit import train_tiny


def _dice(g: np.ndarray, p: np.ndarray) -> float:
    return 2.0 * np.logical_and(g, p).sum() / (g.sum() + p.sum())


def _iou(g: np.ndarray, p: np.ndarray) -> float:
    return np.logical_and(g, p).sum() / np.logical_or(g, p).sum()


def _memory_dataset(gts: dict[str, np.ndarray], schema: ClassSchema) -> Dataset:
    samples = [Sample(k, Path("/mem") / k, gt=k) for k in gts]
    return Dataset(root=Path("/mem"), format_name="test", schema=schema, samples=samples,
                   read_image=lambda d, s: np.zeros(gts[s.id].shape, np.uint8), read_gt=lambda d, s: gts[s.id])


def test_pooled_and_per_sample_figures_match_direct_counting():
    rng = np.random.default_rng(0)
    gts = {f"s{i}.png": rng.integers(0, 3, (20, 30)).astype(np.uint8) for i in range(4)}
    preds = {k: np.where(rng.random(g.shape) < 0.8, g, rng.integers(0, 3, g.shape)).astype(np.uint8) for k, g in gts.items()}
    ds = _memory_dataset(gts, ClassSchema.from_names(("background", "left", "right")))
    events = list(iter_evaluation(ds, iter(preds.items()), total=4))
    assert [type(e) for e in events] == [SampleEvaluated] * 4 + [Evaluation]
    ev = events[-1]
    g_all = np.concatenate([g.ravel() for g in gts.values()])
    p_all = np.concatenate([preds[k].ravel() for k in gts])
    per = {c.name: c for c in ev.summary.per_class}
    for cid, name in ((1, "left"), (2, "right")):
        assert per[name].dice == pytest.approx(_dice(g_all == cid, p_all == cid))
        assert per[name].iou == pytest.approx(_iou(g_all == cid, p_all == cid))
    # background is reported but not in the means
    assert ev.dice == pytest.approx(np.mean([_dice(g_all == c, p_all == c) for c in (1, 2)]))
    assert ev.pixel_accuracy == pytest.approx((g_all == p_all).mean())
    sample_means = [np.mean([_dice(gts[k] == c, preds[k] == c) for c in (1, 2)]) for k in gts]
    assert ev.sample_dice == pytest.approx(np.mean(sample_means))
    doc = ev.to_dict(per_sample=True)
    assert [c["scored"] for c in doc["per_class"]] == [False, True, True]
    assert len(doc["per_sample"]) == 4 and doc["samples"] == 4


def test_ignore_index_leaves_pixels_out():
    g = np.array([[0, 1, 1, 9], [0, 1, 9, 9]], np.uint8)
    p = np.array([[0, 1, 0, 1], [1, 1, 1, 1]], np.uint8)
    schema = ClassSchema.from_names(("background", "fg"))
    ds = _memory_dataset({"a.png": g}, schema)
    # 9 is no class: the sample is left out and reported, not scored (alone, nothing is left to score)
    with pytest.raises(DatasetError, match="outside"):
        run_to_end(iter_evaluation(ds, iter([("a.png", p)]), total=1))
    ev = run_to_end(iter_evaluation(ds, iter([("a.png", p)]), total=1, ignore_index=9))
    keep = g != 9
    assert ev.dice == pytest.approx(_dice(g[keep] == 1, p[keep] == 1))
    assert ev.summary.valid_pixels == keep.sum()


def test_multilabel_figures_per_bit():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 8, (16, 16)).astype(np.uint64)
    p = rng.integers(0, 8, (16, 16)).astype(np.uint64)
    ds = _memory_dataset({"a.png": g}, ClassSchema.from_names(("a", "b", "c"), multilabel=True))
    ev = run_to_end(iter_evaluation(ds, iter([("a.png", p)]), total=1))
    for bit, c in enumerate(ev.summary.per_class):
        gb, pb = (g >> np.uint64(bit)) & np.uint64(1), (p >> np.uint64(bit)) & np.uint64(1)
        assert c.dice == pytest.approx(_dice(gb == 1, pb == 1))
    assert ev.dice == pytest.approx(np.mean([c.dice for c in ev.summary.per_class]))


def test_missing_predictions_are_skipped_and_nothing_raises():
    g = np.ones((4, 4), np.uint8)
    ds = _memory_dataset({"a.png": g, "b.png": g}, ClassSchema.from_names(("background", "fg")))
    ev = run_to_end(iter_evaluation(ds, iter([("a.png", g), ("b.png", None)]), total=2))
    assert ev.skipped == ("b.png",) and len(ev.samples) == 1 and ev.dice == 1.0
    with pytest.raises(DatasetError):
        run_to_end(iter_evaluation(ds, iter([("a.png", None)]), total=1))


def test_checkpoint_and_written_folder_score_the_same(tmp_path):
    torch.set_num_threads(1)
    ckpt = train_tiny(tmp_path / "run", size=32, epochs=3)
    ds = make_dataset(n=5, size=40, seed=3)
    pred = Predictor.load([ckpt], options=InferenceOptions(device="cpu"))
    direct = run_to_end(evaluate_checkpoint(ds, pred))
    writer = PredictionWriter(tmp_path / "out", ds)
    for r in predict(ds, pred):
        writer.write(r.sample_id, r.mask)
    folder = run_to_end(evaluate_folder(ds, tmp_path / "out"))
    assert folder.to_dict()["per_class"] == direct.to_dict()["per_class"]
    assert folder.dice == direct.dice and not math.isnan(direct.dice)
    # cancelling after the first sample still reports the samples scored so far
    token = CancelToken()
    events = []
    for e in evaluate_folder(ds, tmp_path / "out", cancel=token):
        events.append(e)
        token.cancel()
    assert isinstance(events[-1], Evaluation) and len(events[-1].samples) == 1


def test_select_samples_splits():
    ds = make_dataset(n=6, splits=("train", "train", "train", "val", "val", "test"))
    assert [s.id for s in select_samples(ds, "val")] == ["img3.png", "img4.png"]
    assert len(select_samples(ds, "all")) == 6 and len(select_samples(ds, None)) == 6
    with pytest.raises(DatasetError, match="no split named"):
        select_samples(ds, "holdout")


def test_a_checkpoint_of_other_classes_is_refused():
    from .inferkit import pointwise_checkpoint

    ds = make_dataset(n=2, names=("background", "lesion"))
    pred = Predictor([pointwise_checkpoint(("background", "left", "right"))], options=InferenceOptions(device="cpu"))
    with pytest.raises(DatasetError, match="not the dataset's"):
        run_to_end(evaluate_checkpoint(ds, pred))


def test_one_unreadable_gt_is_skipped_and_reported_not_fatal():
    """Issue 13, case 8: one corrupt GT mask must not abort a whole evaluation."""
    g = np.ones((4, 4), np.uint8)
    schema = ClassSchema.from_names(("background", "fg"))

    def read_gt(ds, s):
        if s.id == "bad.png":
            raise DatasetError("Not a readable image file.", path=Path("/mem/masks/bad.png"), fix="Re-export it.")
        return g

    samples = [Sample(id=k, image=Path("/mem") / k, gt=k) for k in ("a.png", "bad.png", "c.png")]
    ds = Dataset(root=Path("/mem"), format_name="test", schema=schema, samples=samples,
                 read_image=lambda d, s: np.zeros((4, 4), np.uint8), read_gt=read_gt)
    preds = iter([("a.png", g), ("bad.png", g), ("c.png", Unreadable(message="the image is damaged", path="/mem/c.png"))])
    ev = run_to_end(iter_evaluation(ds, preds, total=3))
    assert len(ev.samples) == 1 and ev.dice == 1.0
    doc = ev.to_dict()
    assert [(p["sample_id"], p["path"]) for p in doc["problems"]] == [("bad.png", "/mem/masks/bad.png"),
                                                                       ("c.png", "/mem/c.png")]
    assert "Not a readable image file" in doc["problems"][0]["message"]


def test_a_prediction_of_another_size_is_reported_not_fatal():
    g = np.ones((4, 4), np.uint8)
    ds = _memory_dataset({"a.png": g, "b.png": g}, ClassSchema.from_names(("background", "fg")))
    ev = run_to_end(iter_evaluation(ds, iter([("a.png", g), ("b.png", np.ones((2, 2), np.uint8))]), total=2))
    assert len(ev.samples) == 1 and ev.problems[0].sample_id == "b.png" and "2x2" in ev.problems[0].message
