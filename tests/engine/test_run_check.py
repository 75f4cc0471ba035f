"""The engine's word on a run before it is imported: the checkpoint loads and the model was trained on the open
dataset's classes; a damaged checkpoint or config, or other classes, is refused naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.engine.run_check import check_run_for_import
from segstudio.workspace.run_import import inspect_run_folder


@pytest.fixture
def run(tmp_path: Path, sample_dataset_path: Path) -> tuple[Path, ClassSchema]:
    """A finished run folder with an untrained tiny U-Net (resnet18, 64 px) for the bundled sample's classes."""
    import torch

    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.checkpoint import save_checkpoint
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.task import resolve_task

    ds = open_dataset(sample_dataset_path)
    cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "data.image_size=64", "model.encoder_weights=null",
                                        "model.encoder_depth=3"])
    task = resolve_task(ds.schema)
    torch.manual_seed(0)
    folder = tmp_path / "run"
    save_checkpoint(folder / "checkpoints" / "best", model=build_model(cfg.model, out_channels=task.out_channels),
                    config=cfg, task=task, schema=ds.schema)
    (folder / "train_config.json").write_text(cfg.to_json(), encoding="utf-8")
    (folder / "run.json").write_text(json.dumps({"epochs_completed": 1, "train_seconds": 3.0, "cancelled": False,
                                                 "best_monitor": 0.5, "monitor": "dice"}), encoding="utf-8")
    return folder, ds.schema


def test_a_run_whose_checkpoint_loads_for_the_same_classes_passes(run: tuple[Path, ClassSchema]) -> None:
    folder, schema = run
    check_run_for_import(inspect_run_folder(folder), schema=schema)
    check_run_for_import(inspect_run_folder(folder))


def test_other_classes_a_damaged_checkpoint_or_a_bad_config_are_refused(run: tuple[Path, ClassSchema]) -> None:
    folder, _ = run
    summary = inspect_run_folder(folder)
    with pytest.raises(SegstudioError, match="trained on other classes") as err:
        check_run_for_import(summary, schema=ClassSchema.from_names(["skin", "lesion"]))
    assert err.value.fix and "workspace of the dataset" in err.value.fix
    weights = folder / "checkpoints" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(SegstudioError, match="checkpoint does not load") as err:
        check_run_for_import(summary)
    assert err.value.path == weights
    (folder / "train_config.json").write_text('{"epochs": -3}', encoding="utf-8")
    with pytest.raises(SegstudioError, match="epochs") as err:
        check_run_for_import(summary)
    assert err.value.path is not None and err.value.path.name == "train_config.json"


def test_segstudio_models_import_copies_the_run_and_promote_makes_it_current(
        run: tuple[Path, ClassSchema], sample_dataset_path: Path, tmp_path: Path, capsys) -> None:
    from segstudio.cli import main
    from segstudio.workspace import Workspace

    folder, _ = run
    ws_folder = tmp_path / "lungs.segstudio"
    Workspace(ws_folder, dataset_root=sample_dataset_path).close()
    assert main(["models", "import", str(ws_folder), str(folder), "--promote", "--reason", "trained on the cluster"]) == 0
    out = capsys.readouterr().out
    assert "imported run" in out and "current model:" in out
    with Workspace(ws_folder, read_only=True) as ws:
        (rec,) = ws.runs.all()
        # a run folder named "run" (the bundle's default OUT) is named after the folder above it
        assert rec.name == f"{tmp_path.name} (imported)" and rec.best_metric == 0.5
        assert rec.duration_s == pytest.approx(3.0)
        assert ws.models.current().run_id == rec.id and ws.models.history()[-1].reason == "trained on the cluster"
    # a folder that is no run: exit 2 with the fix, nothing recorded
    assert main(["models", "import", str(ws_folder), str(tmp_path)]) == 2
    assert "is not a segstudio run" in capsys.readouterr().err
    with Workspace(ws_folder, read_only=True) as ws:
        assert len(ws.runs.all()) == 1
