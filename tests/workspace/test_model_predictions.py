"""The model's predictions as a prediction source: current checkpoint first, else the newest older one (stale);
uncertainty maps beside the masks; figures kept when a sample is re-scored."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from segstudio.datasets.registry import open_dataset
from segstudio.metrics.compare import compare_masks
from segstudio.workspace import Workspace
from segstudio.workspace.model_predictions import (
    MODEL_METRICS_KEY,
    ModelPredictions,
    checkpoint_key,
    load_uncertainty,
    model_metrics_data,
    rescore_model_metrics,
    save_uncertainty,
    uncertainty_path,
)


@pytest.fixture
def ws_ds(tmp_path: Path, sample_dataset_path: Path):  # noqa: ANN201
    ds = open_dataset(sample_dataset_path)
    ws = Workspace(tmp_path / "ws", dataset_root=ds.root)
    yield ws, ds
    ws.close()


def test_current_checkpoint_wins_else_the_newest_older_one_is_shown_as_stale(ws_ds, tmp_path: Path) -> None:
    ws, ds = ws_ds
    a, b = (checkpoint_key(tmp_path / n) for n in ("model_a", "model_b"))
    s0, s1, s2 = (s.id for s in ds.samples[:3])
    m = np.zeros((16, 16), np.uint8)
    ws.predictions.save(s0, m, checkpoint_id=a, model_stamp="x")
    time.sleep(0.01)
    ws.predictions.save(s0, m + 1, checkpoint_id=b, model_stamp="y")
    ws.predictions.save(s1, m + 2, checkpoint_id=a, model_stamp="x")
    src = ModelPredictions(ws.predictions, ds, checkpoint=tmp_path / "model_a")
    assert len(src) == 2 and src.path_for(s2) is None and src.load(s2) is None
    assert int(src.load(s0)[0, 0]) == 0 and not src.is_stale(s0)  # the current model's, though older
    assert src.load(s1, shape=(16, 16)).dtype == ds.schema.mask_dtype()
    other = ModelPredictions(ws.predictions, ds, checkpoint=tmp_path / "model_c")
    assert other.stale_ids() == sorted([s0, s1]) and int(other.load(s0)[0, 0]) == 1  # the newest of the others
    # a prediction of the current model arriving later replaces a stale one
    entry = ws.predictions.save(s1, m, checkpoint_id=checkpoint_key(tmp_path / "model_c"), model_stamp="z")
    assert other.note(entry) and not other.is_stale(s1)
    with pytest.raises(Exception, match="16x16"):
        src.load(s0, shape=(8, 8))


def test_uncertainty_round_trips_beside_the_mask_as_8_bits(ws_ds, tmp_path: Path) -> None:
    ws, ds = ws_ds
    sid = ds.samples[0].id
    e = ws.predictions.save(sid, np.zeros((8, 8), np.uint8), checkpoint_id="ck", model_stamp="s")
    assert load_uncertainty(e.path) is None
    unc = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    p = save_uncertainty(e.path, unc)
    assert p == uncertainty_path(e.path) and p.parent == e.path.parent and p.name.endswith(".uncertainty.png")
    back = load_uncertainty(e.path)
    assert back is not None and back.dtype == np.float32 and np.abs(back - unc).max() <= 0.5 / 255 + 1e-6
    assert ModelPredictions(ws.predictions, ds, checkpoint=None).uncertainty(sid) is not None


def test_rescoring_keeps_the_models_figures(ws_ds) -> None:
    ws, ds = ws_ds
    sid = ds.samples[0].id
    data = model_metrics_data(checkpoint="ck", stamp="s", uncertainty=0.2, change=0.1, comparison=None)
    ws.metrics.put(sid, key=MODEL_METRICS_KEY, data=data, suspicion=0.2, stamp="s")
    a = np.zeros((8, 8), np.uint8)
    a[2:6, 2:6] = 1
    comp = compare_masks(a, a, schema=ds.schema)
    rescore_model_metrics(ws.metrics, sid, comp)
    got = ws.metrics.get(sid, key=MODEL_METRICS_KEY)
    assert got.mean_dice == pytest.approx(1.0) and got.suspicion == pytest.approx(0.2)
    assert got.data["uncertainty"] == 0.2 and got.data["change"] == 0.1 and got.data["checkpoint"] == "ck"
    assert got.data["comparison"]["mean_dice"] == pytest.approx(1.0)
