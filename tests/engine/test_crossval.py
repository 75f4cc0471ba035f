"""Cross-validation of a recipe (issue 17): every labelled image is scored once, by a model trained without it
(neither its training nor its choice of epoch saw the image), the fold figures and their spread are reported,
and the final model is trained on everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio.engine.cancel import CancelToken
from segstudio.engine.crossval import RESULT_NAME, CrossValidated, FoldScored, cross_validate
from segstudio.engine.events import BatchEnd, RunStarted
from segstudio.engine.kfold import FoldStarted, fold_ids

from .conftest import make_dataset, tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_every_image_is_scored_once_by_a_model_that_never_saw_it(tmp_path):
    ds = make_dataset(n=9)
    cfg = tiny_config("epochs=2", "val_fraction=0.2")
    events = list(cross_validate(ds, cfg, k=3, run_root=tmp_path, final=True))
    result = events[-1]
    assert isinstance(result, CrossValidated) and not result.cancelled
    folds = fold_ids(ds, 3)
    assert result.fold_ids == tuple(folds)
    # each fold's run trains and picks its epoch on the other folds only (its inner hold-out is among them)
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [s.train_samples + s.val_samples for s in started] == [9 - len(f) for f in folds] + [9]
    assert all(s.val_samples >= 1 for s in started)
    assert all((tmp_path / f"fold-{i + 1}" / "checkpoints" / "best").is_dir() for i in range(3))
    scored = [e.score for e in events if isinstance(e, FoldScored)]
    assert [s.samples for s in scored] == [len(f) for f in folds]
    ev = result.evaluation
    assert ev is not None
    assert sorted(c.sample_id for c in ev.samples) == sorted(s.id for s in ds.samples)
    mean, std = result.spread("dice")
    assert 0 <= mean <= 1 and std >= 0
    assert mean == pytest.approx(sum(s.dice for s in scored) / 3)
    assert result.final_checkpoint is not None and result.final_checkpoint.is_relative_to(tmp_path / "final")
    doc = json.loads((tmp_path / RESULT_NAME).read_text())
    assert doc["k"] == 3 and len(doc["folds"]) == 3 and doc["final"]["train_seconds"] >= 0
    assert doc["out_of_fold"]["samples"] == 9 and doc["fold_dice_mean"] == pytest.approx(mean, abs=1e-6)


def test_a_cancel_ends_with_what_was_scored(tmp_path):
    ds = make_dataset(n=8)
    token = CancelToken()
    events = []
    for ev in cross_validate(ds, tiny_config("epochs=1"), k=2, run_root=tmp_path, cancel=token):
        events.append(ev)
        if isinstance(ev, FoldStarted) and ev.fold == 1:
            token.cancel()
        if isinstance(ev, BatchEnd) and token.cancelled:
            pytest.fail("the cancelled fold went on training")
    result = events[-1]
    assert isinstance(result, CrossValidated) and result.cancelled
    assert len(result.folds) == 1 and result.evaluation is not None
    assert len(result.evaluation.samples) == len(fold_ids(ds, 2)[0])
    assert json.loads((tmp_path / RESULT_NAME).read_text())["cancelled"] is True


def test_cv_command_on_montgomery(montgomery, tmp_path):
    out = tmp_path / "cv"
    proc = subprocess.run(
        [sys.executable, "-m", "segstudio", "cv", str(montgomery), "--recipe", "lungs-lr", "--folds", "2",
         "--set", "epochs=1", "--set", "image_size=64", "--set", "max_steps_per_epoch=1", "--set", "batch_size=2",
         "--out", str(out), "--progress", "none", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["k"] == 2 and doc["recipe"] == "lungs-lr" and doc["out_of_fold"]["samples"] == 40
    names = {c["name"] for c in doc["out_of_fold"]["per_class"] if c["scored"]}
    assert names == {"left lung", "right lung"}
    assert (out / "fold-1" / "checkpoints").is_dir() and (out / RESULT_NAME).is_file()


def test_cv_command_refuses_one_fold(montgomery, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "segstudio", "cv", str(montgomery), "--folds", "1", "--out",
                           str(tmp_path / "cv")], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode != 0 and "at least 2 folds" in proc.stderr
