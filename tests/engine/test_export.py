"""ONNX export: onnxruntime gives the checkpoint's logits, at other sizes too; the file describes itself."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from segstudio.commands import export_onnx as export_cmd
from segstudio.engine.checkpoint import load_checkpoint
from segstudio.engine.export import ExportError, export_onnx, read_metadata

from .inferkit import train_tiny


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.set_num_threads(1)
    return train_tiny(tmp_path_factory.mktemp("run"), size=32, epochs=1)


def test_export_parity_and_metadata(ckpt, tmp_path):
    import onnxruntime as ort

    report = export_onnx(ckpt, tmp_path / "m.onnx")
    assert report.passed and report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    assert report.path.stat().st_size > 10_000
    meta = read_metadata(report.path)
    assert meta["task"]["class_names"] == ["background", "left", "right"]
    assert meta["preprocessing"]["image_size"] == 32
    # independent of the built-in check: another batch size and a non-square size through the dynamic axes
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 48, 80)
    model = load_checkpoint(ckpt).model
    with torch.inference_mode():
        ref = model(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == ref.shape == (3, 3, 48, 80)
    assert np.abs(got - ref).max() < 1e-4


def test_a_failed_parity_check_raises(ckpt, tmp_path):
    with pytest.raises(ExportError, match="disagrees"):
        export_onnx(ckpt, tmp_path / "m.onnx", tolerance=-1.0)  # no difference is below a negative tolerance


def test_export_command_reports_json(ckpt, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    export_cmd.add_arguments(parser)
    assert export_cmd.run(parser.parse_args([str(ckpt), "--out", str(tmp_path / "x" / "m.onnx"), "--json"])) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["max_abs_diff"] < 1e-4 and (tmp_path / "x" / "m.onnx").is_file()
    with pytest.raises(ExportError):
        read_metadata(_plain_onnx(tmp_path / "plain.onnx"))


def _plain_onnx(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(torch.nn.Conv2d(1, 1, 1), (torch.zeros(1, 1, 4, 4),), str(path), dynamo=False)
    return path


def test_onnxruntime_backend_predicts_like_torch(ckpt):
    from segstudio.engine.infer import InferenceOptions, Predictor, predict

    from .conftest import make_dataset

    ds = make_dataset(n=3, size=40, seed=4)
    answers = {}
    for backend in ("torch", "onnxruntime"):
        pred = Predictor.load([ckpt], options=InferenceOptions(backend=backend, tta=("vflip",), probabilities=True, device="cpu"))
        answers[backend] = list(predict(ds, pred))
    for a, b in zip(answers["torch"], answers["onnxruntime"], strict=True):
        assert np.abs(a.probabilities - b.probabilities).max() < 1e-4
        assert (a.mask == b.mask).mean() > 0.999  # only a pixel at a near-tie could differ
