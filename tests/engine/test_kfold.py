"""Out-of-fold predictions on the real Montgomery data: stratified, disjoint folds that cover every labelled image;
each fold's model trains without its fold and predicts exactly it, with probabilities in the schema's order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegstudioError
from segstudio.engine.events import RunStarted
from segstudio.engine.kfold import FoldPredicted, FoldStarted, OutOfFold, fold_ids, out_of_fold

from .conftest import tiny_config


@pytest.fixture(scope="module")
def lungs(montgomery: Path):
    from segstudio.datasets.registry import open_dataset

    return open_dataset(montgomery, format="class-folders")


def test_folds_are_disjoint_stratified_and_seeded(lungs) -> None:
    folds = fold_ids(lungs, 5, seed=3)
    flat = [i for f in folds for i in f]
    assert sorted(flat) == sorted(s.id for s in lungs.samples) and len(set(flat)) == 40
    assert [len(f) for f in folds] == [8] * 5
    assert fold_ids(lungs, 5, seed=3) == folds and fold_ids(lungs, 5, seed=4) != folds
    with pytest.raises(SegstudioError, match="at least 2 folds"):
        fold_ids(lungs, 1)
    with pytest.raises(SegstudioError, match="cannot make 41 folds"):
        fold_ids(lungs, 41)


def test_out_of_fold_predicts_every_image_with_the_model_that_did_not_see_it(lungs, tmp_path: Path) -> None:
    cfg = tiny_config("image_size=32", "max_steps_per_epoch=1", "device=cpu")
    events = list(out_of_fold(lungs, cfg, k=2, run_root=tmp_path, seed=0))
    result = events[-1]
    assert isinstance(result, OutOfFold) and not result.cancelled
    folds = result.folds
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [(e.train_samples, e.val_samples) for e in started] == [(40 - len(f), len(f)) for f in folds]
    assert [e.held_out for e in events if isinstance(e, FoldStarted)] == [len(f) for f in folds]
    assert [e.predicted for e in events if isinstance(e, FoldPredicted)] == [len(f) for f in folds]
    assert set(result.masks) == {s.id for s in lungs.samples} == set(result.probabilities)
    assert len(result.checkpoints) == 2 and all((c / "config.json").is_file() for c in result.checkpoints)
    # each fold's model is its own run, the last checkpoint (not the one its held-out fold liked best)
    for i in range(len(folds)):
        assert result.checkpoints[i] == tmp_path / f"fold-{i + 1}" / "checkpoints" / "last"
    sid = folds[0][0]
    probs = result.probs(sid)
    gt = lungs.load_gt(sid)
    assert probs.shape == (3, *gt.shape) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=0), 1.0, atol=0.02)  # softmax over the schema's three classes
    assert result.mask(sid).shape == gt.shape


def test_out_of_fold_leaves_out_what_the_labels_leave_out(lungs, tmp_path: Path) -> None:
    """Labels being judged (corrections, a corrupted copy) that have none for an image: it is in no fold, trained
    on by no model and predicted by none, instead of failing the run as a sample without ground truth."""
    dropped = {s.id for s in lungs.samples[:2]}

    def labels(sid: str) -> np.ndarray | None:
        return None if sid in dropped else lungs.load_gt(sid)

    cfg = tiny_config("image_size=32", "max_steps_per_epoch=1", "device=cpu")
    events = list(out_of_fold(lungs, cfg, k=2, run_root=tmp_path, seed=0, labels=labels))
    result = events[-1]
    assert isinstance(result, OutOfFold) and not result.cancelled
    flat = {i for f in result.folds for i in f}
    assert flat == {s.id for s in lungs.samples} - dropped
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [(e.train_samples, e.val_samples) for e in started] == [(38 - len(f), len(f)) for f in result.folds]
    assert set(result.masks) == flat


def test_out_of_fold_masks_are_the_checkpoints_recommended_inference(lungs, tmp_path: Path) -> None:
    """The fold models predict as the app and `segstudio predict` do: with the recipe's TTA and post-processing
    (here keep-largest: no class in more than one part), not a raw network output."""
    import cv2

    from segstudio.engine.infer import Prediction, predict
    from segstudio.engine.predictor import Predictor, recommended_options

    cfg = tiny_config("image_size=32", "max_steps_per_epoch=1", "device=cpu", 'infer.post=["keep_largest"]',
                      'infer.tta=["vflip"]')
    result = list(out_of_fold(lungs, cfg, k=2, run_root=tmp_path, seed=0))[-1]
    ckpt = result.checkpoints[0]
    held = list(result.folds[0][:3])
    options = recommended_options(ckpt, device="cpu", probabilities=True)
    assert options.tta == ("vflip",) and [s.name for s in options.post] == ["keep_largest"]
    again = {ev.sample_id: ev.mask for ev in predict(lungs, Predictor.load([ckpt], options=options), samples=held)
             if isinstance(ev, Prediction)}
    for sid in held:
        assert np.array_equal(result.mask(sid), again[sid])
        for cid in np.unique(result.mask(sid)):
            if cid:
                assert cv2.connectedComponents((result.mask(sid) == cid).astype(np.uint8))[0] - 1 <= 1



def test_quality_with_a_checkpoint_predicts_as_the_folds_do(lungs, montgomery: Path, tmp_path: Path,
                                                            monkeypatch) -> None:
    """`segstudio quality --checkpoint` predicts through the folds' function (the checkpoint's recommended
    inference, tested above), and its masks are what the model checks read."""
    import json

    import segstudio.engine.kfold as kfold
    from segstudio.cli import main

    victim = lungs.samples[4].id
    calls = []

    def fake(dataset, checkpoint, *, samples, device, masks, probabilities, cancel=None, progress=None):
        calls.append((Path(checkpoint), list(samples)))
        for sid in samples:
            m = dataset.load_gt(sid).copy()
            if sid == victim:
                m[m == 2] = 0  # the model misses a lung here
            masks[sid] = m
        return len(samples), 0

    monkeypatch.setattr(kfold, "predict_checkpoint", fake)
    out = tmp_path / "q.csv"
    assert main(["quality", str(montgomery), "--format", "class-folders", "--checkpoint", str(tmp_path / "ck"),
                 "--out", str(out), "--progress", "none", "--no-images"]) == 0
    assert calls == [(tmp_path / "ck", [s.id for s in lungs.samples])]
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["model"]["kind"] == "checkpoint"
    assert doc["samples"][0]["sample_id"] == victim
