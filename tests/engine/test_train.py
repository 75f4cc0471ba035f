from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from segstudio.engine.cancel import CancelToken
from segstudio.engine.checkpoint import CheckpointError, load_checkpoint
from segstudio.engine.config import ConfigError
from segstudio.engine.events import BatchEnd, CheckpointSaved, EpochEnd, Finished, RunStarted
from segstudio.engine.runtime import resolve_device
from segstudio.engine.train import train

from .conftest import make_dataset, tiny_config


def _run(cfg, ds, run_dir, **kw):
    return list(train(cfg, ds, run_dir=run_dir, **kw))


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_events_files_and_checkpoint(tmp_path):
    ds = make_dataset(n=6)
    cfg = tiny_config("epochs=2")
    events = _run(cfg, ds, tmp_path)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    # the machine's own device (AMP / channels_last are requested by default; the CPU falls back cleanly)
    assert events[0].device == str(resolve_device(cfg.device))
    batches = [e for e in events if isinstance(e, BatchEnd)]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert len(epochs) == 2 and len(batches) == 2 * events[0].steps_per_epoch
    assert all(math.isfinite(b.loss) and b.eta_s is not None for b in batches)
    assert [c.name for c in epochs[0].per_class] == ["background", "left", "right"]
    assert {e.kind for e in events if isinstance(e, CheckpointSaved)} >= {"best", "last"}
    fin = events[-1]
    assert fin.epochs_completed == 2 and not fin.cancelled and fin.train_seconds > 0
    assert (tmp_path / "curves.csv").read_text().count("\n") == 3
    assert (tmp_path / "curves.png").stat().st_size > 1000
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["train_seconds"] > 0

    ckpt = load_checkpoint(fin.best_checkpoint)
    info = json.loads((fin.best_checkpoint / "config.json").read_text())
    for key in ("architecture", "encoder", "class_schema", "preprocessing", "train", "metrics", "segstudio_version"):
        assert key in info
    assert ckpt.task.class_names == ("background", "left", "right")
    assert ckpt.preprocessing.image_size == 32
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert ckpt.model(x).shape == (1, 3, 32, 32)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    fin = _run(tiny_config(), make_dataset(n=4), tmp_path)[-1]

    def forbidden(*a, **k):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", forbidden)
    load_checkpoint(fin.last_checkpoint)
    assert not list(fin.last_checkpoint.glob("*.pt*")) and not list(fin.last_checkpoint.glob("*.bin"))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)


def test_seeded_runs_are_identical(tmp_path):
    ds = make_dataset(n=6)
    a = _run(tiny_config("augment.preset=light"), ds, tmp_path / "a")[-1]
    b = _run(tiny_config("augment.preset=light"), ds, tmp_path / "b")[-1]
    wa, wb = _weights(a.last_checkpoint), _weights(b.last_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_exactly(tmp_path):
    ds = make_dataset(n=6)
    straight = _run(tiny_config("epochs=2", "augment.preset=light"), ds, tmp_path / "s")[-1]
    cfg2 = tiny_config("epochs=2", "augment.preset=light")
    events = []
    token = CancelToken()
    for ev in train(cfg2, ds, run_dir=tmp_path / "c", cancel=token):
        events.append(ev)
        if isinstance(ev, CheckpointSaved) and ev.kind == "last":
            token.cancel()  # stop right after epoch 1 is saved
    assert events[-1].cancelled and events[-1].epochs_completed == 1
    resumed = _run(cfg2, ds, tmp_path / "c", resume=True)
    assert isinstance(resumed[0], RunStarted) and resumed[0].start_epoch == 1
    assert resumed[-1].epochs_completed == 2
    ws, wr = _weights(straight.last_checkpoint), _weights(resumed[-1].last_checkpoint)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)


@pytest.mark.parametrize("resident", ["on", "off"])
def test_a_run_stopped_mid_epoch_resumes_after_the_last_trained_step(tmp_path, resident):
    """The stop keeps the steps the epoch trained; the resume draws the epoch's batches (and augmentation, CutMix)
    again, skips the trained ones and ends with the weights of an uninterrupted run."""
    ds = make_dataset(n=8)
    cfg = tiny_config("epochs=2", "augment.preset=light", "augment.cutmix_p=0.5", "batch_size=2",
                      f"data.resident={resident}", "val_fraction=0.25")
    straight = _run(cfg, ds, tmp_path / "s")[-1]
    token, seen = CancelToken(), []
    for ev in train(cfg, ds, run_dir=tmp_path / "c", cancel=token):
        if isinstance(ev, BatchEnd):
            seen.append(ev.global_step)
            if ev.global_step == 5:  # epoch 2 (3 steps each), its second step
                token.cancel()
    assert seen == [1, 2, 3, 4, 5]
    resumed = _run(cfg, ds, tmp_path / "c", resume=True)
    assert [e.global_step for e in resumed if isinstance(e, BatchEnd)] == [6]
    assert resumed[-1].epochs_completed == 2 and not resumed[-1].cancelled
    ws, wr = _weights(straight.last_checkpoint), _weights(resumed[-1].last_checkpoint)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)


def test_cancel_stops_within_one_batch_and_keeps_a_checkpoint(tmp_path):
    ds = make_dataset(n=10)
    token = CancelToken()
    events = []
    for ev in train(tiny_config("epochs=3", "val_fraction=0.2"), ds, run_dir=tmp_path, cancel=token):
        events.append(ev)
        if isinstance(ev, BatchEnd):
            token.cancel()
    assert sum(isinstance(e, BatchEnd) for e in events) == 1
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.cancelled and fin.epochs_completed == 0
    assert fin.last_checkpoint is not None and (fin.last_checkpoint / "model.safetensors").is_file()
    load_checkpoint(fin.last_checkpoint)


@pytest.mark.parametrize(
    ("names", "multilabel", "mode"),
    [(("background", "left"), False, "binary"), (("a", "b", "c"), True, "multilabel")],
)
def test_binary_and_multilabel_runs(tmp_path, names, multilabel, mode):
    ds = make_dataset(n=4, names=names, multilabel=multilabel)
    events = _run(tiny_config("loss.terms=bce+dice", "augment.cutmix_p=1.0", "augment.copy_paste_p=1.0"), ds, tmp_path)
    assert events[0].mode == mode
    ckpt = load_checkpoint(events[-1].last_checkpoint)
    assert ckpt.task.out_channels == (1 if mode == "binary" else 3)


def test_seed_recipe_losses_and_swa(tmp_path):
    cfg = tiny_config(
        "epochs=2", "loss.terms=0.01*dice+0.99*boundary+0.3*aux", "model.aux_head=true", "optim.name=adam",
        "swa=true", "swa_start=0.5", "loss.learnable_weights=true", "schedule.name=onecycle",
    )
    events = _run(cfg, make_dataset(n=6), tmp_path)
    assert any(isinstance(e, CheckpointSaved) and e.kind == "swa" for e in events)
    assert (tmp_path / "checkpoints" / "swa" / "model.safetensors").is_file()
    load_checkpoint(tmp_path / "checkpoints" / "swa")


def test_the_run_offers_best_else_swa_else_last_as_its_model(tmp_path):
    from segstudio.workspace.models import run_checkpoint

    ds = make_dataset(n=6)
    # no validation split (the small-data recipes train on every image): nothing is "best", the SWA average is the model
    fin = _run(tiny_config("epochs=2", "val_fraction=0", "swa=true", "swa_start=0.5"), ds, tmp_path / "swa")[-1]
    assert fin.best_checkpoint is None and fin.swa_checkpoint == tmp_path / "swa" / "checkpoints" / "swa"
    assert fin.model_checkpoint == fin.swa_checkpoint == run_checkpoint(tmp_path / "swa")
    # without SWA either: the last weights
    fin = _run(tiny_config("epochs=1", "val_fraction=0"), ds, tmp_path / "plain")[-1]
    assert fin.swa_checkpoint is None and fin.model_checkpoint == fin.last_checkpoint is not None
    # with a validation split its best wins
    fin = _run(tiny_config("epochs=2", "swa=true", "swa_start=0.5"), ds, tmp_path / "val")[-1]
    assert fin.best_checkpoint is not None and fin.model_checkpoint == fin.best_checkpoint


def test_aux_loss_needs_aux_head(tmp_path):
    with pytest.raises(ConfigError):
        train(tiny_config("loss.terms=dice+aux"), make_dataset(n=4), run_dir=tmp_path)


def test_training_learns_the_toy_task(tmp_path):
    ds = make_dataset(n=8)
    events = _run(tiny_config("epochs=6", "lr=0.01", "val_fraction=0.25"), ds, tmp_path)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_early_stopping(tmp_path):
    # a class that never occurs cannot improve after its first score: patience 1 ends the run early
    ds = make_dataset(n=6, names=("background", "left", "right", "ghost"))
    events = _run(tiny_config("epochs=5", "early_stopping=1", "monitor=dice:ghost"), ds, tmp_path)
    fin = events[-1]
    assert fin.stopped_early and fin.epochs_completed <= 2


def test_corrections_are_trained_on(tmp_path):
    ds = make_dataset(n=4)
    corr = {s.id: (lambda: np.zeros((32, 32), np.uint8)) for s in ds.samples}  # every mask corrected to empty
    events = _run(tiny_config("epochs=1", "loss.terms=ce"), ds, tmp_path, corrections=corr)
    assert events[-1].epochs_completed == 1
    fin = events[-1]
    ckpt_metrics = json.loads((fin.last_checkpoint / "config.json").read_text())["metrics"]
    # validation sees the corrected (empty) masks: only background is present
    assert math.isnan(ckpt_metrics["dice:left"]) or ckpt_metrics["dice:left"] == 0.0


def test_loader_workers(tmp_path):
    # worker processes persist across epochs (their decoded-sample caches survive) and feed the same trainer
    events = _run(tiny_config("epochs=2", "num_workers=1", "augment.preset=light"), make_dataset(n=6), tmp_path)
    assert events[-1].epochs_completed == 2 and not events[-1].cancelled


def test_cancel_during_validation_keeps_the_trained_epoch(tmp_path):
    ds = make_dataset(n=6)
    token = CancelToken()
    events_seen = []
    read = ds.read_image

    def read_and_cancel(dataset, sample):
        if sample.id in val_ids:
            token.cancel()  # validation has begun: the user presses stop now
        return read(dataset, sample)

    from segstudio.engine.data import split_samples
    from segstudio.engine.task import resolve_task

    cfg = tiny_config("epochs=3")
    val_ids = {s.id for s in split_samples(ds, cfg.data, task=resolve_task(ds.schema), seed=cfg.seed).val}
    ds.read_image = read_and_cancel
    for ev in train(cfg, ds, run_dir=tmp_path, cancel=token):
        events_seen.append(ev)
    fin = events_seen[-1]
    assert fin.cancelled and fin.epochs_completed == 1
    assert not any(isinstance(e, EpochEnd) for e in events_seen)
    resumed = list(train(cfg.with_overrides(["epochs=2"]), make_dataset(n=6), run_dir=tmp_path, resume=True))
    assert resumed[0].start_epoch == 1 and resumed[-1].epochs_completed == 2


def test_save_every_still_saves_the_final_epoch(tmp_path):
    events = _run(tiny_config("epochs=3", "save_every=2"), make_dataset(n=4), tmp_path)
    lasts = [e.epoch for e in events if isinstance(e, CheckpointSaved) and e.kind == "last"]
    assert lasts == [1, 2]


def test_mixed_precision_on_the_cpu_follows_its_bf16_instructions(monkeypatch):
    from segstudio.engine import runtime

    amx = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
    plain = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"
    assert {"avx512_bf16", "amx_bf16"} <= runtime.cpu_flags(amx)
    assert not runtime.cpu_flags(plain) & runtime._BF16_FLAGS and runtime.cpu_flags("no flags here") == frozenset()
    cpu = torch.device("cpu")
    monkeypatch.setenv("SEGSTUDIO_CPU_AMP", "1")
    assert runtime.autocast_dtype(cpu, True) == torch.bfloat16
    assert runtime.autocast_dtype(cpu, False) is None  # amp=false is float32 whatever the CPU
    monkeypatch.setenv("SEGSTUDIO_CPU_AMP", "0")
    assert runtime.autocast_dtype(cpu, True) is None
    assert runtime.autocast_dtype(torch.device("mps"), True) is None
    monkeypatch.delenv("SEGSTUDIO_CPU_AMP")
    assert runtime.cpu_computes_bf16() == bool(runtime.cpu_flags() & runtime._BF16_FLAGS)


def test_a_cpu_run_trains_in_bf16_where_asked_and_keeps_float32_weights(tmp_path, monkeypatch):
    ds = make_dataset(n=6)
    runs = {}
    for name, env, amp in (("bf16", "1", "true"), ("fp32", "0", "true"), ("off", "1", "false")):
        monkeypatch.setenv("SEGSTUDIO_CPU_AMP", env)
        events = _run(tiny_config("epochs=2", f"amp={amp}", "device=cpu"), ds, tmp_path / name)
        assert all(math.isfinite(e.loss) for e in events if isinstance(e, BatchEnd))
        runs[name] = (events[0].precision, _weights(events[-1].last_checkpoint))
    assert [runs[k][0] for k in ("bf16", "fp32", "off")] == ["bfloat16", "float32", "float32"]
    w16, w32, off = runs["bf16"][1], runs["fp32"][1], runs["off"][1]
    assert all(v.dtype == torch.float32 for v in w16.values() if v.is_floating_point())  # float32 master weights
    assert all(torch.equal(w32[k], off[k]) for k in w32)  # amp=false and a CPU without bf16: the same float32 run
    assert any(not torch.equal(w16[k], w32[k]) for k in w16)  # the bf16 run computed differently


def test_a_cpu_run_trains_channels_last_unless_turned_off(tmp_path, monkeypatch):
    """``channels_last`` (default true) applies on the CPU as on CUDA: the model's convolutions and the batches are
    channels-last during training, the first step computes the same loss as the NCHW run, and the checkpoint is
    the same loadable file."""
    from segstudio.engine import train as train_mod

    layouts: dict[bool, bool] = {}
    inputs = train_mod._Trainer._inputs

    def spy(self, x, y):
        x, y = inputs(self, x, y)
        w = next(m.weight for m in self.model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1)
        layouts[self.cfg.channels_last] = (w.is_contiguous(memory_format=torch.channels_last)
                                           and not w.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))
        return x, y

    monkeypatch.setattr(train_mod._Trainer, "_inputs", spy)
    monkeypatch.setenv("SEGSTUDIO_CPU_AMP", "0")  # float32: the two layouts' sums differ by rounding only
    ds = make_dataset(n=6)
    first_loss = {}
    for on in (True, False):
        events = _run(tiny_config(f"channels_last={str(on).lower()}", "device=cpu", "epochs=2"), ds, tmp_path / str(on))
        first_loss[on] = next(e.loss for e in events if isinstance(e, BatchEnd))
        ckpt = load_checkpoint(events[-1].last_checkpoint)
        assert ckpt.model is not None
    assert layouts == {True: True, False: False}
    assert first_loss[True] == pytest.approx(first_loss[False], rel=1e-4)
