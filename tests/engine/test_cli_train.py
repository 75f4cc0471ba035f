from __future__ import annotations

import argparse
import csv
import json
import signal

import pytest

from segstudio.commands import train as train_cmd
from segstudio.engine.checkpoint import load_checkpoint

from .conftest import make_dataset

TINY = ["--set", "model.encoder=resnet18", "--set", "model.encoder_depth=3", "--set", "image_size=64",
        "--set", "batch_size=4", "--set", "epochs=1", "--set", "max_steps_per_epoch=2"]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    train_cmd.add_arguments(p)
    return p.parse_args(argv)


def test_cli_trains_the_lungs_recipe_on_montgomery(montgomery, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train_cmd.run(_parse([str(montgomery), "--recipe", "lungs-lr", *TINY, "--out", str(out), "--quiet"]))
    assert rc == 0
    text = capsys.readouterr()
    # the recipe trains on every film with averaged weights: no hold-out, no best checkpoint, the SWA model
    assert "no validation hold-out" in text.out and "best checkpoint" not in text.out
    assert f"the model (best, else swa, else last): {out / 'checkpoints' / 'swa'}" in text.out
    ckpt = load_checkpoint(out / "checkpoints" / "swa")
    assert ckpt.task.class_names == ("background", "left lung", "right lung")
    assert ckpt.config.name == "lungs-lr" and ckpt.config.data.image_size == 64 and ckpt.config.data.val_fraction == 0
    assert (out / "curves.png").is_file()
    saved = json.loads((out / "train_config.json").read_text())
    assert [t["name"] for t in saved["loss"]["terms"]] == ["ce", "dice", "aux"]  # the recipe's, kept

    # with a hold-out the epochs are scored per class and the best one kept
    held = tmp_path / "held"
    assert train_cmd.run(_parse([str(montgomery), "--recipe", "lungs-lr", *TINY, "--set", "val_fraction=0.2",
                                 "--out", str(held), "--quiet"])) == 0
    text = capsys.readouterr()
    assert "best checkpoint" in text.out and "left lung" in text.err
    assert load_checkpoint(held / "checkpoints" / "best").config.data.val_fraction == 0.2
    rows = list(csv.DictReader(open(held / "curves.csv")))
    assert len(rows) == 1 and "dice:left lung" in rows[0] and rows[0]["dice:left lung"] != "nan"


@pytest.fixture
def fake_open(monkeypatch):
    ds = make_dataset(n=8, size=64)
    monkeypatch.setattr("segstudio.datasets.registry.open_dataset", lambda path, format=None: ds)
    return ds


def test_ctrl_c_stops_cleanly_keeps_checkpoint_and_resumes(fake_open, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    fired = []
    original = train_cmd.EpochProgress.batch

    def batch_then_interrupt(self, ev):
        original(self, ev)
        if not fired:
            fired.append(ev)
            signal.raise_signal(signal.SIGINT)  # what Ctrl+C delivers

    monkeypatch.setattr(train_cmd.EpochProgress, "batch", batch_then_interrupt)
    # what the process had before the run (the default handler; SIG_IGN when started in the background by a shell)
    before = signal.getsignal(signal.SIGINT)
    rc = train_cmd.run(_parse(["ds", *TINY, "--set", "epochs=2", "--out", str(out), "--set", "augment.preset=none"]))
    assert rc == 130
    assert "--resume" in capsys.readouterr().out
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    monkeypatch.setattr(train_cmd.EpochProgress, "batch", original)
    rc = train_cmd.run(_parse(["ds", "--out", str(out), "--resume"]))
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["epochs_completed"] == 2 and not run["cancelled"]


@pytest.mark.parametrize("how", ["stop file", "sigterm"])
def test_a_stop_file_or_sigterm_stops_cleanly_and_the_resume_clears_the_file(fake_open, tmp_path, monkeypatch, capsys,
                                                                             how):
    out = tmp_path / "run"
    original = train_cmd.EpochProgress.batch

    def batch_then_stop(self, ev):
        original(self, ev)
        if ev.global_step == 1:
            if how == "stop file":
                (out / train_cmd.STOP_FILE).touch()  # what `touch RUN/STOP` does from another shell
            else:
                signal.raise_signal(signal.SIGTERM)  # what a batch scheduler sends at the time limit

    monkeypatch.setattr(train_cmd.EpochProgress, "batch", batch_then_stop)
    previous_term = signal.getsignal(signal.SIGTERM)
    rc = train_cmd.run(_parse(["ds", *TINY, "--set", "epochs=2", "--out", str(out), "--set", "augment.preset=none"]))
    assert rc == 130 and "--resume" in capsys.readouterr().out
    state = json.loads((out / "checkpoints" / "last" / "training_state.json").read_text())
    assert state["global_step"] == 1  # stopped after the batch that asked
    assert signal.getsignal(signal.SIGTERM) is previous_term

    monkeypatch.setattr(train_cmd.EpochProgress, "batch", original)
    rc = train_cmd.run(_parse(["ds", "--out", str(out), "--resume"]))
    assert rc == 0 and not (out / train_cmd.STOP_FILE).exists()
    assert json.loads((out / "run.json").read_text())["epochs_completed"] == 2


def test_torchrun_without_a_run_folder_is_refused(fake_open, tmp_path, monkeypatch):
    from segstudio.core.errors import SegstudioError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SegstudioError, match="--out"):
        train_cmd.run(_parse(["ds", *TINY, "--workspace", str(tmp_path / "ws")]))


def test_config_file_and_bad_override(fake_open, tmp_path):
    from segstudio.core.errors import UnknownKeyError
    from segstudio.engine.config import TrainConfig

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(TrainConfig().with_overrides(["augment.preset=none"]).to_json())
    rc = train_cmd.run(_parse(["ds", "--config", str(cfg_file), *TINY, "--out", str(tmp_path / "r"), "--quiet"]))
    assert rc == 0
    with pytest.raises(UnknownKeyError):
        train_cmd.run(_parse(["ds", "--set", "epoch=1", "--out", str(tmp_path / "r2")]))


def test_workspace_corrections_reach_the_trainer(fake_open, tmp_path, monkeypatch):
    import numpy as np

    from segstudio.workspace.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.save_mask("img0.png", np.full((64, 64), 2, np.uint8))
    seen = {}

    import segstudio.engine.train as train_mod

    real_train = train_mod.train

    def spy(cfg, ds, **kw):
        seen.update(kw["corrections"] or {})
        return real_train(cfg, ds, **kw)

    monkeypatch.setattr(train_mod, "train", spy)
    rc = train_cmd.run(_parse(["ds", *TINY, "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "r"), "--quiet"]))
    assert rc == 0
    assert list(seen) == ["img0.png"] and (seen["img0.png"]() == 2).all()


def test_train_progress_json_one_event_per_batch_and_epoch_lines_as_messages(fake_open, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train_cmd.run(_parse(["ds", *TINY, "--set", "augment.preset=none", "--out", str(out), "--progress", "json"]))
    assert rc == 0
    cap = capsys.readouterr()
    events = [json.loads(line) for line in cap.err.splitlines() if line.strip()]  # every stderr line is JSON
    batches = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in batches] == [1, 2] and all(e["label"] == "epoch 1" and "loss" in e for e in batches)
    assert any(e["event"] == "message" and e["text"].startswith("epoch 1: loss") for e in events)
    assert any(e["event"] == "done" and e["label"] == "epoch 1" for e in events)
    assert "best checkpoint" in cap.out and "{" not in cap.out


def test_train_quiet_prints_epoch_lines_but_no_bar(fake_open, tmp_path, capsys):
    rc = train_cmd.run(_parse(["ds", *TINY, "--set", "augment.preset=none", "--out", str(tmp_path / "r"),
                               "--quiet", "--progress", "bar"]))
    assert rc == 0
    err = capsys.readouterr().err
    assert "epoch 1: loss" in err and "batch/s" not in err and "\r" not in err
