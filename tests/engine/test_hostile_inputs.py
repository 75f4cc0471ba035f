"""Issue 13, case 8 (engine): hostile or damaged checkpoints and run configs give our error with the file and the
fix — never a traceback, never an unpickle, never an attempt to allocate terabytes — and every engine writer
fails on a full disk with ``DiskFullError`` leaving the previous file intact."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import pytest
import torch

from segstudio.core.errors import DiskFullError, SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.engine.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    read_config,
    read_info,
    save_checkpoint,
)
from segstudio.engine.config import MAX_CLASSES, ConfigError, TrainConfig
from segstudio.engine.models import build_model
from segstudio.engine.task import resolve_task

from .conftest import make_dataset, tiny_config


def _save(path: Path, cfg: TrainConfig | None = None) -> Path:
    cfg = cfg or tiny_config()
    schema = ClassSchema.from_names(("background", "left", "right"))
    task = resolve_task(schema)
    torch.manual_seed(0)
    model = build_model(cfg.model, out_channels=task.out_channels)
    return save_checkpoint(path, model=model, config=cfg, task=task, schema=schema)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("ck") / "best")


@pytest.fixture
def copy(ckpt, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "best"
    shutil.copytree(ckpt, dst)
    return dst


def _doc(path: Path) -> dict:
    return json.loads((path / CONFIG_FILE).read_text())


def _write_doc(path: Path, doc: object) -> None:
    (path / CONFIG_FILE).write_text(json.dumps(doc))


def _assert_ours(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, SegstudioError)
    assert str(path) in str(exc) and "Fix:" in str(exc), str(exc)


# checkpoints --------------------------------------------------------------------------------------------------


def test_a_valid_checkpoint_loads(ckpt):
    assert load_checkpoint(ckpt).task.out_channels == 3


def test_a_folder_without_config_is_refused_and_a_run_folder_names_its_checkpoints(ckpt, tmp_path):
    import shutil

    with pytest.raises(CheckpointError, match="not a segstudio checkpoint") as e:
        load_checkpoint(tmp_path)
    _assert_ours(e.value, tmp_path)
    # a run trained on every image has swa and last, no best: the fix names what is there
    run = tmp_path / "run"
    for name in ("swa", "last"):
        shutil.copytree(ckpt, run / "checkpoints" / name)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(run)
    assert "run folder" in str(e.value)
    assert str(run / "checkpoints" / "last") in str(e.value) and str(run / "checkpoints" / "swa") in str(e.value)
    assert "best" not in e.value.fix


def test_a_checkpoint_saved_with_a_nan_metric_loads_back(tmp_path):
    """A diverged or empty validation (NaN loss, NaN Dice) is saved as null, not as a config the reader refuses."""
    cfg = tiny_config()
    schema = ClassSchema.from_names(("background", "left", "right"))
    task = resolve_task(schema)
    model = build_model(cfg.model, out_channels=task.out_channels)
    path = save_checkpoint(
        tmp_path / "last",
        model=model,
        config=cfg,
        task=task,
        schema=schema,
        metrics={"val_loss": float("nan"), "dice": float("inf"), "per_class": [0.5, float("nan")]},
        training_json={"history": [float("nan"), 1.0]},
    )
    doc = json.loads((path / CONFIG_FILE).read_text())
    assert doc["metrics"] == {"val_loss": None, "dice": None, "per_class": [0.5, None]}
    assert load_checkpoint(path).task.out_channels == 3


@pytest.mark.parametrize(
    "data", [b"", b"garbage" * 100, b"\xff" * 8 + b"{}", (2**62).to_bytes(8, "little") + b"{"]
)
def test_corrupt_weights_are_checkpoint_errors(copy, data):
    (copy / WEIGHTS_FILE).write_bytes(data)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(copy)
    _assert_ours(e.value, copy / WEIGHTS_FILE)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).with_name("PWNED"),))


def test_a_pickled_weights_file_is_refused_unopened(copy, tmp_path):
    marker = Path(__file__).with_name("PWNED")
    (copy / WEIGHTS_FILE).write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="pickle") as e:
        load_checkpoint(copy)
    _assert_ours(e.value, copy / WEIGHTS_FILE)
    assert not marker.exists()
    torch.save({"w": torch.zeros(2)}, copy / WEIGHTS_FILE)  # a torch zip pickle
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(copy)


def test_weights_of_another_shape_are_a_checkpoint_error(copy):
    from safetensors.torch import save_file

    save_file({"net.encoder.conv1.weight": torch.zeros(1, 1, 1, 1)}, str(copy / WEIGHTS_FILE))
    with pytest.raises(CheckpointError):
        load_checkpoint(copy)


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        '{"format": "segstudio-checkpoint", "format_ver',  # truncated
        "[" * 100_000 + "]" * 100_000,  # nested far too deep
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        "\x00\x01binary",
        '{"format": "segstudio-checkpoint", "format_version": NaN}',
    ],
)
def test_truncated_or_nested_config_json_is_a_checkpoint_error(copy, text):
    (copy / CONFIG_FILE).write_text(text)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(copy)
    _assert_ours(e.value, copy / CONFIG_FILE)


def _mutations() -> list[tuple[str, object]]:
    return [
        ("doc is a list", []),
        ("format_version text", {"format_version": "one"}),
        ("format_version newer", {"format_version": 99}),
        ("train a list", {"train": []}),
        ("train.model a string", {"train": {"model": "unet"}}),
        ("task missing", {"task": None}),
        (
            "task ids strings",
            {"task": {"mode": "multiclass", "class_ids": ["a", "b"], "class_names": ["x", "y"]}},
        ),
        (
            "10^6 classes",
            {"task": {"mode": "multiclass", "class_ids": list(range(10**6)), "class_names": ["c"] * 10**6}},
        ),  # refused by size before parsing
        (
            "2000 classes",
            {"task": {"mode": "multiclass", "class_ids": list(range(2000)), "class_names": ["c"] * 2000}},
        ),
        (
            "huge class id",
            {"task": {"mode": "multiclass", "class_ids": [0, 10**12, 2], "class_names": ["a", "b", "c"]}},
        ),
        ("schema classes dicts", {"class_schema": {"classes": [1, 2, 3]}}),
        ("image_size 10^6", {"preprocessing": {"image_size": 10**6, "in_channels": 3, "normalize": "unit"}}),
        ("train image_size 10^6", {"train": {"data": {"image_size": 1_000_000}}}),
        ("train encoder traversal", {"train": {"model": {"encoder": "tu-../../x"}}}),
        ("params encoder_name", {"train": {"model": {"params": {"encoder_name": "tu-../../x"}}}}),
        ("decoder channels huge", {"train": {"model": {"params": {"decoder_channels": [10**9, 1, 1]}}}}),
        ("thresholds wrong", {"thresholds": ["x"]}),
        ("negative steps", {"train": {"max_steps_per_epoch": -1}}),
        ("nan lr", {"train": {"optim": {"lr": 1e999}}}),
    ]


def _merge(base: dict, patch: object) -> object:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(base.get(k), v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@pytest.mark.parametrize(("what", "patch"), _mutations(), ids=[m[0] for m in _mutations()])
def test_wrong_typed_or_absurd_config_json_is_a_checkpoint_error(copy, what, patch):
    _write_doc(copy, _merge(_doc(copy), patch))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(copy)
    _assert_ours(e.value, copy / CONFIG_FILE)


def test_read_config_and_read_info_check_too(copy):
    _write_doc(copy, {"format": "segstudio-checkpoint", "format_version": 1})
    assert read_config(copy)["format_version"] == 1
    with pytest.raises(CheckpointError):
        read_info(copy)


def test_a_checkpoint_killed_mid_save_loads_the_previous_one(copy):
    # the writer moved the previous folder aside and was killed before renaming the new one in
    copy.rename(copy.with_name(".best.old"))
    dead = copy.with_name(f".best.{2**22 + 7}.deadbeef.tmp")
    dead.mkdir()
    (dead / WEIGHTS_FILE).write_bytes(b"torn")
    assert load_checkpoint(copy).task.out_channels == 3
    assert copy.is_dir() and not copy.with_name(".best.old").exists() and not dead.exists()


# run configs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"data": {"image_size": 1000000}}', "data.image_size"),
        ('{"data": {"batch_size": 100000000}}', "data.batch_size"),
        ('{"data": {"batch_size": 1024, "image_size": 4096}}', "data.batch_size"),
        ('{"max_steps_per_epoch": -1}', "max_steps_per_epoch"),
        ('{"epochs": -5}', "epochs"),
        ('{"epochs": 1e999}', "epochs"),
        ('{"optim": {"lr": NaN}}', "NaN"),
        ('{"optim": {"lr": "inf"}}', "optim.lr"),
        ('{"seed": 100000000000000000000000000000}', "seed"),
        ('{"model": {"encoder": "tu-../../x"}}', "model.encoder"),
        ('{"model": {"encoder": "../../etc/passwd"}}', "model.encoder"),
        ('{"model": {"params": {"encoder_name": "tu-../../x"}}}', "encoder_name"),
        ('{"model": {"params": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}', "model.params"),
        ('{"model": {"thresholds": [0.5, 2]}}', "model.thresholds"),
        ('{"loss": {"terms": "1.2.3*ce"}}', "1.2.3"),
        ('{"data": {"num_workers": 100000}}', "data.num_workers"),
        ("[1, 2]", "JSON object"),
        ("17", "JSON object"),
        ('{"model": ' * 5000 + "{}" + "}" * 5000, "nested"),
        ('{"epochs": 2', "not valid JSON"),
    ],
)
def test_run_config_files_with_absurd_values_are_config_errors(tmp_path, text, field):
    f = tmp_path / "train_config.json"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        TrainConfig.load(f)
    assert str(f) in str(e.value) and field in str(e.value), str(e.value)


def test_an_unknown_key_in_a_file_names_the_file(tmp_path):
    from segstudio.core.errors import UnknownKeyError

    f = tmp_path / "c.json"
    f.write_text('{"epochz": 3}')
    with pytest.raises(UnknownKeyError) as e:
        TrainConfig.load(f)
    assert str(f) in str(e.value) and "epochz" in str(e.value)


def test_overrides_are_bounded_too():
    for bad in ("image_size=1000000", "max_steps_per_epoch=-1", "epochs=1e999", "lr=NaN", "batch_size=0"):
        with pytest.raises(ConfigError):
            TrainConfig().with_overrides([bad])


def test_encoder_names_are_checked_before_smp_or_timm(monkeypatch):
    import segmentation_models_pytorch as smp

    def must_not_run(*a, **k):
        raise AssertionError("smp.create_model reached with an unchecked encoder")

    monkeypatch.setattr(smp, "create_model", must_not_run)
    from dataclasses import replace

    base = tiny_config().model
    for name in ("tu-../../x", "tu-not_a_timm_model", "resnet7", "tu-hf-hub:evil/model", "/tmp/x"):
        with pytest.raises(SegstudioError):
            build_model(replace(base, encoder=name), out_channels=2)


def test_a_dataset_with_too_many_classes_is_refused_before_allocating(tmp_path):
    from segstudio.engine.train import train

    names = tuple(f"c{i}" for i in range(MAX_CLASSES + 5))
    with pytest.raises(ConfigError, match="output channels"):
        train(tiny_config(), make_dataset(n=4, names=names), run_dir=tmp_path / "r")


# writers on a full disk ----------------------------------------------------------------------------------------


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_checkpoint_save_on_a_full_disk_keeps_the_previous_one(copy, monkeypatch):
    from safetensors import SafetensorError

    before = (copy / WEIGHTS_FILE).read_bytes()

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr("segstudio.engine.checkpoint.save_file", full)
    with pytest.raises(DiskFullError) as e:
        _save(copy)
    assert str(copy) in str(e.value)
    monkeypatch.setattr("segstudio.engine.checkpoint.save_file", _enospc)
    with pytest.raises(DiskFullError):
        _save(copy)
    assert (copy / WEIGHTS_FILE).read_bytes() == before
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]
    load_checkpoint(copy)


def test_curves_on_a_full_disk_are_disk_full_errors(tmp_path, monkeypatch):
    from segstudio.engine.curves import write_csv

    hist = [{"epoch": 0, "train_loss": 1.0}]
    write_csv(hist, tmp_path / "curves.csv")
    before = (tmp_path / "curves.csv").read_bytes()
    monkeypatch.setattr("segstudio.core.atomic.os.write", _enospc)
    with pytest.raises(DiskFullError):
        write_csv([*hist, {"epoch": 1, "train_loss": 0.5}], tmp_path / "curves.csv")
    assert (tmp_path / "curves.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["curves.csv"]


def test_prediction_writer_reports_a_file_in_the_way(tmp_path):
    from segstudio.engine.outputs import PredictionWriter

    blocker = tmp_path / "out"
    blocker.write_text("x")
    with pytest.raises(SegstudioError) as e:
        PredictionWriter(blocker, None)
    assert str(blocker) in str(e.value)


def test_a_damaged_local_encoder_weights_file_is_our_error(tmp_path):
    from dataclasses import replace

    bad = tmp_path / "enc.safetensors"
    bad.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(SegstudioError) as e:
        build_model(replace(tiny_config().model, encoder_weights=str(bad)), out_channels=2)
    _assert_ours(e.value, bad)
