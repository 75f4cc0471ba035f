"""Issue 13, case 8 (command line): exit codes as docs/cli.md says (0 success, 1 done but some inputs could not
be used, 2 a user error with a message, 130 interrupted), a closed pipe stops quietly, and one corrupt GT mask
is left out of ``evaluate`` and reported instead of ending it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SEGSTUDIO_CONFIG_DIR": str(tmp_path / "cfg"),
            "SEGSTUDIO_STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def paired(tmp_path: Path) -> Path:
    """Three image/mask pairs; the mask of s1 is damaged."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 8 + i : 20 + i] = 255
        cv2.imwrite(str(root / "images" / f"s{i}.png"), rng.integers(0, 255, (32, 32), dtype=np.uint8))
        cv2.imwrite(str(root / "masks" / f"s{i}.png"), m)
    (root / "masks" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"damaged" * 10)
    return root


def test_a_closed_stdout_ends_quietly(paired: Path, tmp_path: Path) -> None:
    """``segstudio info DATASET | head``: the reader goes away; no traceback, exit 141 (128 + SIGPIPE)."""
    proc = subprocess.Popen([sys.executable, "-m", "segstudio", "info", str(paired)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO, env=_env(tmp_path))
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the first write (or the final flush) meets EPIPE
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert rc == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_info_piped_into_head(paired: Path, tmp_path: Path) -> None:
    res = subprocess.run(["bash", "-c", f"{sys.executable} -m segstudio info {paired} | head -n 1"],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env=_env(tmp_path))
    assert res.returncode == 0 and res.stdout.startswith("Dataset:")
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_info_of_a_missing_path_exits_2(tmp_path: Path, capsys, as_json: bool) -> None:
    from segstudio import cli

    rc = cli.main(["info", str(tmp_path / "nope"), *(["--json"] if as_json else [])])
    out, err = capsys.readouterr()
    assert rc == 2
    assert str(tmp_path / "nope") in (json.loads(out)["error"] if as_json else err)


def test_evaluate_skips_and_reports_a_corrupt_gt_mask(paired: Path, tmp_path: Path, capsys) -> None:
    from segstudio import cli
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.outputs import PredictionWriter

    ds = open_dataset(paired)
    preds = tmp_path / "preds"
    writer = PredictionWriter(preds, ds)
    for s in ds.samples:
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 8:20] = 1
        writer.write(s.id, m)
    rc = cli.main(["evaluate", str(preds), str(paired), "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert rc == 1  # figures over the readable samples, with the unreadable one listed
    assert doc["samples"] == 2 and doc["dice"] is not None
    assert [p["sample_id"] for p in doc["problems"]] == ["images/s1.png"]
    assert doc["problems"][0]["path"].endswith("s1.png") and "Traceback" not in err
    assert "s1.png" in err

    rc = cli.main(["evaluate", str(preds), str(paired)])
    out, err = capsys.readouterr()
    assert rc == 1 and "unreadable" in out and "s1.png" in err


def test_evaluate_with_every_gt_unreadable_is_a_user_error(paired: Path, tmp_path: Path, capsys) -> None:
    from segstudio import cli

    for i in (0, 2):
        (paired / "masks" / f"s{i}.png").write_bytes(b"junk")
    preds = tmp_path / "preds"
    preds.mkdir()
    rc = cli.main(["evaluate", str(preds), str(paired)])
    err = capsys.readouterr().err
    assert rc == 2 and "Fix:" in err and "Traceback" not in err


def test_export_onnx_out_that_is_a_folder_exits_2(tmp_path: Path, capsys) -> None:
    import torch

    from segstudio import cli
    from segstudio.core.types import ClassSchema
    from segstudio.engine.checkpoint import save_checkpoint
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.task import resolve_task

    cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "model.encoder_depth=3", "image_size=32"])
    schema = ClassSchema.from_names(("background", "fg"))
    task = resolve_task(schema)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "best", model=build_model(cfg.model, out_channels=task.out_channels),
                           config=cfg, task=task, schema=schema)
    (tmp_path / "out").mkdir()
    rc = cli.main(["export-onnx", str(ckpt), "--out", str(tmp_path / "out"), "--no-check"])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "out") in err and "Fix:" in err


def test_damaged_checkpoint_to_predict_exits_2(tmp_path: Path, paired: Path, capsys) -> None:
    from segstudio import cli

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text('{"format": "segstudio-checkpoint", "format_version": 1, "train": [')
    rc = cli.main(["predict", str(ck), str(paired), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and str(ck / "config.json") in err and "Traceback" not in err


def test_predict_stopped_by_ctrl_c_exits_130(paired: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """docs/cli.md: 130 when interrupted (predict stops after the current batch), 1 only for failed samples."""
    import signal
    from types import SimpleNamespace

    from segstudio import cli
    from segstudio.core.types import ClassSchema
    from segstudio.engine.infer import Prediction
    from segstudio.engine.preprocess import Preprocessing

    schema = ClassSchema.from_names(("background", "foreground"))
    member = SimpleNamespace(checkpoint=SimpleNamespace(preprocessing=Preprocessing(32, 1, "unit")))
    fake = SimpleNamespace(schema=schema, device="cpu", members=[member],
                           task=SimpleNamespace(class_ids=(0, 1), class_names=("background", "foreground")))
    monkeypatch.setattr("segstudio.engine.predictor.Predictor.load", classmethod(lambda cls, paths, options=None: fake))

    def predict(dataset, predictor, *, samples, cancel, workspace):
        for i, s in enumerate(samples):
            yield Prediction(sample_id=s.id, index=i, total=len(samples), mask=np.zeros((32, 32), np.uint8))
            signal.raise_signal(signal.SIGINT)  # what Ctrl+C delivers: the command cancels
            if cancel.cancelled:
                return

    monkeypatch.setattr("segstudio.engine.infer.predict", predict)
    rc = cli.main(["predict", str(tmp_path / "ck"), str(paired), "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert rc == 130 and "stopped early" in out
