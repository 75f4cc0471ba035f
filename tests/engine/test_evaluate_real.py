"""predict → evaluate end to end on the real Montgomery and PH2 data, through the CLI commands, with tiny
checkpoints (a few training steps at 64²). The figures are checked against direct pixel counting on the files
written, and the files are read back the way ``segstudio DATASET --predictions DIR`` reads them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.commands import evaluate as evaluate_cmd
from segstudio.commands import predict as predict_cmd
from segstudio.datasets.io import read_binary_mask
from segstudio.datasets.predictions import PredictionFolder
from segstudio.datasets.registry import open_dataset
from segstudio.engine.evaluate import select_samples
from segstudio.engine.recipes import load_recipe
from segstudio.engine.train import train

TINY = ["model.encoder=resnet18", "model.encoder_depth=3", "image_size=64", "epochs=1", "max_steps_per_epoch=3",
        "batch_size=4", "augment.preset=none", "cache_mb=64"]


def _cli(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def _tiny_checkpoint(recipe: str, data: Path, run_dir: Path, *extra: str) -> Path:
    torch.set_num_threads(1)
    cfg = load_recipe(recipe).with_overrides([*TINY, *extra])
    fin = list(train(cfg, open_dataset(data), run_dir=run_dir))[-1]
    assert fin.last_checkpoint is not None
    return fin.last_checkpoint


def test_the_val_split_of_a_model_trained_on_every_image_is_refused_with_the_way_out(ph2, tmp_path):
    from segstudio.core.errors import DatasetError
    from segstudio.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(_tiny_checkpoint("lesion", ph2, tmp_path / "run"))  # the recipe keeps no hold-out
    assert ckpt.config.data.val_fraction == 0
    ds = open_dataset(ph2)
    with pytest.raises(DatasetError, match="no validation") as e:
        select_samples(ds, "val", checkpoint=ckpt)
    assert "--split all" in str(e.value) and "segstudio cv" in str(e.value)
    assert len(select_samples(ds, "train", checkpoint=ckpt)) == 30 == len(select_samples(ds, "all"))


def _pooled(ds, folder: Path, ids: list[str], class_id: int) -> tuple[float, float]:
    pf = PredictionFolder(folder, ds)
    inter = g_sum = p_sum = union = 0
    for sid in ids:
        gt = ds.load_gt(sid)
        pred = pf.load(sid, shape=gt.shape)  # the app's reader: right size, right class ids
        assert pred is not None
        g, p = gt == class_id, pred == class_id
        inter += np.logical_and(g, p).sum()
        union += np.logical_or(g, p).sum()
        g_sum += g.sum()
        p_sum += p.sum()
    return 2 * inter / (g_sum + p_sum), inter / union


def test_montgomery_predict_then_evaluate(montgomery, tmp_path, capsys):
    ckpt = _tiny_checkpoint("lungs-lr", montgomery, tmp_path / "run", "val_fraction=0.2")  # scored on its hold-out
    out, probs = tmp_path / "pred", tmp_path / "probs"
    assert _cli(predict_cmd, [str(ckpt), str(montgomery), "--out", str(out), "--split", "val", "--tta", "hflip",
                              "--probabilities", str(probs), "--post", "keep_largest"]) == 0
    ds = open_dataset(montgomery)
    val = [s.id for s in select_samples(ds, "val", checkpoint=_load(ckpt))]
    assert len(val) == 8  # a 20% hold-out of 40, reproduced from the checkpoint's config
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(str(Path(v).with_suffix(".png")) for v in val)
    z = np.load(probs / Path(val[0]).with_suffix(".npz"))
    assert z["probabilities"].shape == (3, 512, 512) and list(z["class_names"]) == ["background", "left lung", "right lung"]

    capsys.readouterr()
    # a folder holding the validation samples only: those are scored, the others counted as skipped
    assert _cli(evaluate_cmd, [str(out), str(montgomery), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["samples"] == 8 and len(doc["skipped"]) == 32
    per = {c["name"]: c for c in doc["per_class"]}
    for cid, name in ((1, "left lung"), (2, "right lung")):
        dice, iou = _pooled(ds, out, val, cid)
        assert per[name]["dice"] == pytest.approx(dice, abs=1e-6) and per[name]["iou"] == pytest.approx(iou, abs=1e-6)
    assert doc["dice"] == pytest.approx((per["left lung"]["dice"] + per["right lung"]["dice"]) / 2, abs=1e-6)

    # the checkpoint itself, same options: the same figures without a folder in between
    assert _cli(evaluate_cmd, [str(ckpt), str(montgomery), "--split", "val", "--tta", "hflip", "--post", "keep_largest",
                               "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert direct["per_class"] == doc["per_class"]

    # the dataset's own convention: one 0/255 mask per class folder
    native = tmp_path / "native"
    assert _cli(predict_cmd, [str(ckpt), str(montgomery), "--out", str(native), "--split", "val", "--layout", "class-folders",
                              "--post", "keep_largest", "--tta", "hflip"]) == 0
    index = PredictionFolder(out, ds).load(val[0])
    name = Path(val[0]).name
    assert np.array_equal(read_binary_mask(native / "leftMask" / name), index == 1)
    assert np.array_equal(read_binary_mask(native / "rightMask" / name), index == 2)


def test_ph2_predict_then_evaluate(ph2, tmp_path, capsys):
    ckpt = _tiny_checkpoint("lesion", ph2, tmp_path / "run", "val_fraction=0.2")  # scored on its hold-out
    out, unc = tmp_path / "pred", tmp_path / "unc"
    assert _cli(predict_cmd, [str(ckpt), str(ph2), "--out", str(out), "--split", "val", "--uncertainty", str(unc)]) == 0
    ds = open_dataset(ph2)
    val = [s.id for s in select_samples(ds, "val", checkpoint=_load(ckpt))]
    assert len(val) == 6
    assert len(list(unc.rglob("*.png"))) == 6
    capsys.readouterr()
    assert _cli(evaluate_cmd, [str(out), str(ph2), "--json", "--per-sample"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dice, iou = _pooled(ds, out, val, 1)
    assert doc["iou"] == pytest.approx(iou, abs=1e-6) and doc["dice"] == pytest.approx(dice, abs=1e-6)
    assert [s["sample_id"] for s in doc["per_sample"]] == val
    # the human-readable table names every class
    assert _cli(evaluate_cmd, [str(out), str(ph2)]) == 0
    table = capsys.readouterr().out
    assert "lesion" in table and "background" in table and "mean" in table


def _load(ckpt: Path):
    from segstudio.engine.checkpoint import load_checkpoint

    return load_checkpoint(ckpt)
