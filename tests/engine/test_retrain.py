"""Fine-tuning from a checkpoint, fixed validation splits, reviewed-sample weights and the retrain round."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from segstudio.core.errors import SegstudioError
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import ConfigError
from segstudio.engine.evaluate import iter_evaluation, run_to_end
from segstudio.engine.events import BatchEnd, Finished, RunStarted
from segstudio.engine.retrain import (
    RetrainCompared,
    RetrainProgress,
    fine_tune_config,
    retrain,
    validation_ids,
)
from segstudio.engine.train import _Trainer, train

from .conftest import make_dataset, tiny_config


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    ds = make_dataset(n=8)
    run = tmp_path_factory.mktemp("base")
    events = list(train(tiny_config("epochs=2"), ds, run_dir=run))
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.last_checkpoint is not None
    return ds, fin.last_checkpoint


def _conv_weights(path):
    return {k: v for k, v in load_file(str(path / "model.safetensors")).items() if "running" not in k and "num_batches" not in k}


def test_fine_tune_starts_from_the_base_weights(base_run, tmp_path):
    ds, base = base_run
    cfg = tiny_config("epochs=1", "max_steps_per_epoch=1", "optim.lr=1e-9", "optim.weight_decay=0")
    fin = list(train(cfg, ds, run_dir=tmp_path, init_from=base))[-1]
    before, after = _conv_weights(base), _conv_weights(fin.last_checkpoint)
    assert all(torch.allclose(before[k], after[k], atol=1e-5) for k in before)
    # and a fresh run from the same seed does not: the weights really came from the checkpoint
    fresh = list(train(cfg, ds, run_dir=tmp_path / "fresh"))[-1]
    assert not all(torch.allclose(before[k], _conv_weights(fresh.last_checkpoint)[k], atol=1e-5) for k in before)


def test_fine_tune_refuses_another_architecture(base_run, tmp_path):
    ds, base = base_run
    with pytest.raises(ConfigError, match="Cannot fine-tune"):
        list(train(tiny_config("model.encoder_depth=4"), ds, run_dir=tmp_path, init_from=base))


def test_fixed_validation_split(tmp_path):
    ds = make_dataset(n=6)
    started = next(iter(train(tiny_config(), ds, run_dir=tmp_path, val_ids=["img0.png", "img3.png", "gone.png"])))
    assert isinstance(started, RunStarted)
    assert (started.val_samples, started.train_samples, started.split_source) == (2, 4, "fixed")


def test_fixed_split_with_nothing_left_to_train_is_an_error(tmp_path):
    ds = make_dataset(n=3)
    with pytest.raises(SegstudioError, match="nothing is left to train"):
        list(train(tiny_config(), ds, run_dir=tmp_path, val_ids=[s.id for s in ds.samples]))


def test_sample_weights_draw_reviewed_samples_more_often(tmp_path):
    ds = make_dataset(n=8)
    trainer = _Trainer(tiny_config("batch_size=1"), ds, run_dir=tmp_path, cancel=None, corrections=None, resume=False,
                       val_ids=["img7.png"], sample_weights={"img2.png": 50.0})
    drawn = trainer.batches.sampler.order(0).tolist()
    favourite = [s.id for s in trainer.train_data.samples].index("img2.png")
    assert len(drawn) == len(trainer.train_data)  # an epoch keeps its length
    assert drawn.count(favourite) > len(drawn) / 2
    plain = _Trainer(tiny_config("batch_size=1"), ds, run_dir=tmp_path, cancel=None, corrections=None, resume=False)
    assert sorted(plain.batches.sampler.order(0).tolist()) == list(
        range(len(plain.train_data)))  # without weights: a plain shuffle, each sample once


def test_evaluation_scores_against_the_given_reference():
    ds = make_dataset(n=3)
    preds = [(s.id, np.zeros_like(ds.load_gt(s))) for s in ds.samples]
    vs_gt = run_to_end(iter_evaluation(ds, iter(preds), total=3))
    vs_ref = run_to_end(iter_evaluation(ds, iter(preds), total=3, reference=lambda sid: np.zeros((32, 32), np.uint8)))
    assert vs_gt.summary.per_class[0].dice < 1.0
    assert vs_ref.pixel_accuracy == pytest.approx(1.0)


def test_fine_tune_config_keeps_the_model_and_lowers_the_rate(base_run):
    from segstudio.engine.checkpoint import load_checkpoint

    base_cfg = load_checkpoint(base_run[1]).config
    cfg = fine_tune_config(base_cfg, epochs=3, lr_scale=0.1)
    assert cfg.model == base_cfg.model and cfg.data == base_cfg.data
    assert cfg.epochs == 3 and cfg.optim.lr == pytest.approx(base_cfg.optim.lr * 0.1)
    assert cfg.schedule.warmup_epochs == 0 and cfg.early_stopping == 0 and cfg.name.endswith("(fine-tuned)")
    assert fine_tune_config(cfg, epochs=1).name == cfg.name  # a second round does not stack the suffix
    with pytest.raises(SegstudioError):
        fine_tune_config(base_cfg, epochs=0)


def test_retrain_round_compares_on_the_fixed_split(base_run, tmp_path):
    ds, base = base_run
    from segstudio.engine.checkpoint import load_checkpoint

    val = validation_ids(ds, load_checkpoint(base).config)
    assert val and set(val) <= {s.id for s in ds.samples}
    train_id = next(s.id for s in ds.samples if s.id not in val)
    corrected = ds.load_gt(train_id).copy()
    corrections = {train_id: lambda: corrected}
    events = list(retrain(ds, base_checkpoint=base, run_dir=tmp_path, val_ids=val, corrections=corrections,
                          reviewed_weight=3.0, epochs=1))
    assert any(isinstance(e, BatchEnd) for e in events)
    progress = [e for e in events if isinstance(e, RetrainProgress)]
    assert [p.model for p in progress] == ["current"] * len(val) + ["new"] * len(val)
    verdict = events[-1]
    assert isinstance(verdict, RetrainCompared)
    assert verdict.val_ids == tuple(val) and verdict.reviewed == 1 and verdict.epochs == 1
    assert verdict.new_checkpoint.is_dir() and verdict.base_checkpoint == base
    assert verdict.improved == verdict.gate.promote and verdict.decision == ""  # no workspace decided anything
    assert verdict.gate.images + len(verdict.gate.unpaired) == len(val)
    assert verdict.delta == pytest.approx(verdict.after.dice - verdict.before.dice)
    assert len(verdict.before.samples) == len(verdict.after.samples) == len(val)


def test_cancelled_retrain_compares_nothing(base_run, tmp_path):
    ds, base = base_run
    token = CancelToken()
    events = []
    for ev in retrain(ds, base_checkpoint=base, run_dir=tmp_path, val_ids=["img0.png"], epochs=3, cancel=token):
        events.append(ev)
        if isinstance(ev, BatchEnd):
            token.cancel()
    assert isinstance(events[-1], Finished) and events[-1].cancelled
    assert not any(isinstance(e, RetrainCompared) for e in events)


def test_retrain_without_a_labelled_validation_image_is_refused(base_run, tmp_path):
    ds, base = base_run
    with pytest.raises(SegstudioError, match="validation split has no labelled image"):
        list(retrain(ds, base_checkpoint=base, run_dir=tmp_path, val_ids=["missing.png"]))
