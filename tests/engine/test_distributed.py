"""Distributed training (issue 20): ``segstudio train`` under ``torchrun`` on the CPU with gloo, on real Montgomery
images, against one process training the same global batch; a stop on rank 0 and the resume; the sharding rules.

The network of the real-data runs (a VGG-11 U-Net without BatchNorm or dropout, CE loss, no augmentation) has no
batch statistics and no randomness, so two processes with 2 images each must train what one process does with 4:
the gradients DDP averages are then the single process's up to float rounding. Tolerance: 1e-5 on every weight
after 6 SGD steps (measured: 3e-8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segstudio.datasets.registry import open_dataset
from segstudio.engine.config import ConfigError, TrainConfig
from segstudio.engine.distributed import World, batches_per_epoch, shard_epoch, shard_eval
from segstudio.engine.train import train

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
CONFIG = {
    "model": {"architecture": "unet", "encoder": "vgg11",
              "params": {"decoder_use_norm": False, "decoder_channels": [32, 16, 16, 8, 8]}},
    "data": {"image_size": 64, "batch_size": 2, "val_fraction": 0.2},
    "loss": {"terms": "ce"}, "optim": {"name": "sgd", "lr": 0.05}, "augment": {"preset": "none", "hflip": False},
    "epochs": 2, "max_steps_per_epoch": 3, "device": "cpu", "seed": 3,
    # float32: the comparison with one process is to 1e-5, which bf16 autocast (on a CPU with bf16) rounds beyond
    "amp": False,
}
TOLERANCE = 1e-5


# sharding rules (no processes needed) --------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "bs", "size"), [(10, 2, 2), (11, 2, 2), (9, 3, 3), (5, 1, 2), (13, 4, 3), (3, 4, 1)])
def test_shards_together_are_the_global_batches(n, bs, size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard_epoch(order, batch_size=bs, world=World(rank=r, size=size)) for r in range(size)]
    single = shard_epoch(order, batch_size=bs * size, world=World())
    assert {len(s) for s in shards} == {batches_per_epoch(n, batch_size=bs, world=World(rank=0, size=size))}
    # as many steps as one process with the global batch, except a last global batch too small to give every
    # process two samples (BatchNorm), which the processes leave out
    dropped = len(single) - len(shards[0])
    assert dropped in (0, 1) and (not dropped or len(single[-1]) < 2 * size)
    for k in range(len(shards[0])):
        together = torch.cat([s[k] for s in shards])
        assert torch.equal(together, single[k])  # rank r holds the r-th part of the same global batch
        sizes = [len(s[k]) for s in shards]  # a full share, or a last one of at least two (one: the only batch)
        assert sizes == [bs] * size or (k == len(shards[0]) - 1 and min(sizes) >= (2 if k else 1))


def test_a_lone_last_sample_is_left_out_but_a_lone_batch_trains():
    assert [len(b) for b in shard_epoch(torch.arange(5), batch_size=2, world=World())] == [2, 2]
    assert [len(b) for b in shard_epoch(torch.arange(1), batch_size=4, world=World())] == [1]
    assert batches_per_epoch(3, batch_size=4, world=World(rank=1, size=2)) == 1


def test_validation_is_dealt_out_once():
    parts = [shard_eval(7, World(rank=r, size=3)) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(7))


def test_world_from_torchrun_environment(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert World.from_env() == World() and not World.from_env().active
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = World.from_env()
    assert (w.rank, w.size, w.local_rank, w.active, w.is_main) == (3, 4, 1, True, False)
    assert w.device("cpu") == "cpu"
    monkeypatch.setenv("RANK", "7")
    with pytest.raises(ConfigError, match="RANK"):
        World.from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="not a number"):
        World.from_env()


def test_sync_batchnorm_and_backend_are_config_keys():
    cfg = TrainConfig().with_overrides(["distributed.sync_batchnorm=true", "distributed.backend=gloo"])
    assert cfg.distributed.sync_batchnorm and cfg.distributed.backend == "gloo"
    with pytest.raises(Exception, match="backend"):
        TrainConfig().with_overrides(["distributed.backend=mpi"])


# real runs with torchrun ---------------------------------------------------------------------------------------


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def runs(montgomery, tmp_path_factory):
    """One process with batch 4 (in this process), and ``segstudio train`` under torchrun: 2 processes × batch 2."""
    root = tmp_path_factory.mktemp("ddp")
    cfg_file = root / "config.json"
    cfg_file.write_text(json.dumps(CONFIG))
    single_cfg = TrainConfig.load(cfg_file).with_overrides(["batch_size=4"])
    *_, single_fin = train(single_cfg, open_dataset(montgomery), run_dir=root / "single")
    proc = _torchrun("-m", "segstudio", "train", str(montgomery), "--config", str(cfg_file), "--out",
                     str(root / "two"))
    yield {"root": root, "config": cfg_file, "single": single_fin, "two": root / "two", "stdout": proc.stdout, "output": proc.stdout + proc.stderr}
    shutil.rmtree(root, ignore_errors=True)  # some 500 MB of checkpoints


def _digests(stdout: str) -> dict[int, str]:
    found = {}
    for line in stdout.splitlines():
        if line.startswith("process ") and "weights sha256" in line:
            found[int(line.split()[1])] = line.rsplit(" ", 1)[1]
    return found


def test_two_processes_train_what_one_does_with_the_global_batch(runs):
    digests = _digests(runs["stdout"])
    assert sorted(digests) == [0, 1], runs["stdout"]  # both ranks ran to the end
    assert digests[0] == digests[1] and len(digests[0]) == 64  # and hold bitwise the same weights
    assert runs["output"].count("training unet/vgg11") == 1  # rank 0 alone reports progress

    two = runs["two"]
    written = sorted(str(p.relative_to(two)) for p in two.rglob("*"))
    assert written == ["checkpoints", "checkpoints/best", "checkpoints/best/config.json",
                       "checkpoints/best/model.safetensors", "checkpoints/last", "checkpoints/last/config.json",
                       "checkpoints/last/model.safetensors", "checkpoints/last/training_state.json",
                       "checkpoints/last/training_state.safetensors", "curves.csv", "curves.png", "run.json",
                       "train_config.json"]  # one set of checkpoints, nothing from rank 1, no temp files
    run = json.loads((two / "run.json").read_text())
    assert (run["processes"], run["global_batch"], run["epochs_completed"]) == (2, 4, 2)

    mine = load_file(str(two / "checkpoints" / "last" / "model.safetensors"))
    ref = load_file(str(runs["single"].last_checkpoint / "model.safetensors"))
    assert mine.keys() == ref.keys()
    worst = max(float((mine[k].double() - ref[k].double()).abs().max()) for k in ref)
    assert worst < TOLERANCE
    assert any(not torch.equal(mine[k], ref[k]) for k in ref) or worst == 0.0
    # the weights changed from their start: the comparison is of trained weights
    assert runs["single"].epochs_completed == 2


def test_a_stop_on_rank_0_stops_every_rank_at_that_step_and_the_resume_ends_identical(runs, montgomery):
    out, report = runs["root"] / "stopped", runs["root"] / "report"
    _torchrun(str(WORKER), str(montgomery), str(runs["config"]), str(out), str(report), "--stop-at", "4")
    stopped = [json.loads(Path(f"{report}.{r}.json").read_text()) for r in (0, 1)]
    for rep in stopped:  # rank 1 was never told, yet stopped after the same step
        assert rep["cancelled"] and rep["steps"] == [1, 2, 3, 4] and rep["epochs"] == 1
    state = json.loads((out / "checkpoints" / "last" / "training_state.json").read_text())
    assert (state["completed_epochs"], state["global_step"], state["step_in_epoch"]) == (1, 4, 1)

    _torchrun(str(WORKER), str(montgomery), str(runs["config"]), str(out), str(report), "--resume")
    resumed = [json.loads(Path(f"{report}.{r}.json").read_text()) for r in (0, 1)]
    for rep in resumed:  # epoch 2 goes on after the step it had trained
        assert not rep["cancelled"] and rep["steps"] == [5, 6] and rep["epochs"] == 2
    uninterrupted = _digests(runs["stdout"])[0]
    assert resumed[0]["digest"] == resumed[1]["digest"] == uninterrupted


@pytest.mark.parametrize(("argv", "fix"), [
    (["sweep", "sweep.json"], "one torchrun job per run of the sweep"),
    (["cv", "data", "--out", "cv"], "one torchrun job per fold"),
])
def test_sweep_and_cv_under_torchrun_say_how_to_launch_their_runs(argv, fix, monkeypatch, capsys, tmp_path):
    from segstudio.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "not run under torchrun" in err and fix in err
    assert not any(tmp_path.iterdir())  # nothing written
