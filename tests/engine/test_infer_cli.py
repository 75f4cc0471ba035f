"""``segstudio predict`` on an unlabelled image folder: an ensemble, the workspace cache, files the app reads."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from segstudio.commands import predict as predict_cmd
from segstudio.datasets.predictions import PredictionFolder
from segstudio.datasets.registry import open_dataset
from segstudio.workspace.workspace import Workspace

from .conftest import make_dataset
from .inferkit import train_tiny


def _predict(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    predict_cmd.add_arguments(parser)
    return predict_cmd.run(parser.parse_args(argv))


def test_predict_folder_with_ensemble_and_cache(tmp_path, capsys):
    torch.set_num_threads(1)
    names = ("background", "foreground")
    a = train_tiny(tmp_path / "a", size=32, epochs=1, names=names)
    b = train_tiny(tmp_path / "b", size=32, epochs=1, seed=1, names=names)
    images = tmp_path / "images"
    images.mkdir()
    src = make_dataset(n=3, size=48, names=names, seed=9)
    for s in src.samples:
        cv2.imwrite(str(images / s.id), src.load_image(s))
    out, ws = tmp_path / "out", tmp_path / "ws"
    argv = [str(a), str(images), "--out", str(out), "--ensemble", str(b), "--workspace", str(ws), "--batch-size", "2"]
    assert _predict(argv) == 0
    first = capsys.readouterr().out
    assert "3 masks written" in first and "workspace cache" not in first
    ds = open_dataset(images)
    pf = PredictionFolder(out, ds)
    masks = {s.id: pf.load(s, shape=(48, 48)) for s in ds.samples}
    assert all(m is not None and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in masks.values())

    assert _predict(argv) == 0
    assert "(3 from the workspace cache)" in capsys.readouterr().out
    assert all(np.array_equal(pf.load(s), masks[s.id]) for s in ds.samples)
    with Workspace(ws) as w:
        entries = w.predictions.entries()
        assert len(entries) == 3 and all("+" in e.checkpoint_id for e in entries)  # keyed by the ensemble


def test_predict_beside_the_app_reads_the_held_workspace_and_writes_nothing(tmp_path, capsys):
    """The app holds the workspace (its lock): predict still runs, reads the cache read-only and says so."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    torch.set_num_threads(1)
    names = ("background", "foreground")
    a = train_tiny(tmp_path / "a", size=32, epochs=1, names=names)
    images = tmp_path / "images"
    images.mkdir()
    src = make_dataset(n=2, size=48, names=names, seed=3)
    for s in src.samples:
        cv2.imwrite(str(images / s.id), src.load_image(s))
    ws = tmp_path / "ws"
    assert _predict([str(a), str(images), "--out", str(tmp_path / "o1"), "--workspace", str(ws)]) == 0
    capsys.readouterr()
    with Workspace(ws) as w:
        before = sorted((e.sample_id, e.checkpoint_id) for e in w.predictions.entries())
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from segstudio.workspace import Workspace
            ws = Workspace(sys.argv[1]); print("READY", flush=True); sys.stdin.readline(); ws.close()
        """), str(ws)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "READY"
        assert _predict([str(a), str(images), "--out", str(tmp_path / "o2"), "--workspace", str(ws)]) == 0
        out, err = capsys.readouterr()
        assert "in use by process" in err and "nothing is written" in err
        assert "(2 from the workspace cache)" in out
        b = train_tiny(tmp_path / "b", size=32, epochs=1, seed=1, names=names)  # not cached: predicted, not stored
        assert _predict([str(b), str(images), "--out", str(tmp_path / "o3"), "--workspace", str(ws)]) == 0
        assert "2 masks written" in capsys.readouterr().out
    finally:
        holder.communicate("\n", timeout=30)
    with Workspace(ws) as w:
        assert sorted((e.sample_id, e.checkpoint_id) for e in w.predictions.entries()) == before


def test_predict_and_evaluate_progress_json_on_stderr_result_on_stdout(tmp_path, capsys, monkeypatch):
    import json

    from segstudio.commands import evaluate as evaluate_cmd

    torch.set_num_threads(1)
    names = ("background", "foreground")
    ck = train_tiny(tmp_path / "a", size=32, epochs=1, names=names)
    src = make_dataset(n=3, size=48, names=names, seed=9)
    monkeypatch.setattr("segstudio.datasets.registry.open_dataset", lambda path, format=None: src)
    out = tmp_path / "out"
    assert _predict([str(ck), "ds", "--out", str(out), "--progress", "json"]) == 0
    cap = capsys.readouterr()
    events = [json.loads(line) for line in cap.err.splitlines() if line.strip()]  # only JSON lines
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [1, 2, 3] and all(e["total"] == 3 for e in progress)
    assert events[-1]["event"] == "done" and events[-1]["written"] == 3 and events[-1]["failed"] == 0
    assert "3 masks written" in cap.out and "{" not in cap.out

    parser = argparse.ArgumentParser()
    evaluate_cmd.add_arguments(parser)
    assert evaluate_cmd.run(parser.parse_args([str(out), "ds", "--json", "--progress", "json"])) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["samples"] == 3  # stdout: the result only
    events = [json.loads(line) for line in cap.err.splitlines() if line.strip()]
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    assert events[-1]["event"] == "done" and events[-1]["label"] == "evaluate"
