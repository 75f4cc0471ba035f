"""Attack suite for the engine's readers (issue 13): run configs and checkpoints.

Each input is a valid document mutated — values replaced by wrong types, NaN / Infinity / 1e999, huge or
negative numbers, 100,000-deep nesting, traversal strings; unknown keys added; keys deleted; the text truncated —
and goes through the public readers inside ``fuzzkit.bounded``: each must return or raise our error, within the
time and memory bounds. ``load_checkpoint`` builds the model when the config is valid; the config's limits keep
that bounded too. ``model.safetensors`` is fuzzed separately: random bytes, pickles, truncated files and
well-formed files whose header lies.

Figures: ``fuzz.run_config.inputs`` and ``fuzz.checkpoint_config.inputs`` (plus the weights inputs counted with
the checkpoint ones).
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.types import ClassSchema
from segstudio.engine.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    read_config,
    read_info,
    save_checkpoint,
)
from segstudio.engine.config import TrainConfig
from segstudio.engine.models import build_model
from segstudio.engine.task import resolve_task

from .conftest import FUZZ_EXAMPLES
from .fuzzkit import bounded, mutated_json

SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # hermetic: no .hypothesis folder in the checkout
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

#: JSON text put where a value was: the hostile values of issue 13 and their relatives
FRAGMENTS = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "-0.0", "0", "-1", "-2147483649", "1e6",
    "1000000", "1048576", "99999999999999999999999999999999", "1" + "0" * 5000, "3.5", "0.5", "true", "false",
    "null", "[]", "{}", "[1, 2, 3]", "[[[]]]", '"1e999"', '"nan"', '"inf"', '"-1"', '""', '"none"',
    '"../../x"', '"tu-../../x"', '"tu-../../../etc/passwd"', '"/etc/passwd"', '"..\\\\..\\\\x"', '"\\u0000"',
    '"tu-hf-hub:evil/model"', '"' + "a" * 100_000 + '"', '{"__proto__": 1}', '{"a": {"b": {"c": {"d": {}}}}}',
    "[" * 100_000 + "]" * 100_000, '{"a":' * 20_000 + "1" + "}" * 20_000, "[" * 1000 + "]" * 1000,
    '{"class_ids": [0, 1000000000000]}', "[" + ",".join(["0"] * 2000) + "]",
]
KEYS = ["x", "../../x", "__proto__", "", "model", "train", "epochs", "\u0000", "a" * 300, "encoder_name",
        "classes", "decoder_channels"]


def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def _fragment(draw: Any) -> str:
    return draw(st.one_of(
        st.sampled_from(FRAGMENTS),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        st.text(max_size=24).map(json.dumps),
        st.integers(min_value=1, max_value=200_000).map(_nest),
        st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=12).map(json.dumps),
    ))


def mutated(base: Any) -> st.SearchStrategy[str]:
    return mutated_json(base, fragment=_fragment, keys=KEYS)


# run configs ----------------------------------------------------------------------------------------------------

_RUN_BASE = TrainConfig().with_overrides(["model.encoder=resnet18", "model.encoder_depth=3", "image_size=32",
                                         "batch_size=2", "epochs=1", "augment.preset=none"]).to_dict()
_counts = {"run": 0, "ckpt": 0}


@pytest.fixture(scope="module")
def run_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzzcfg") / "train_config.json"


@SETTINGS
@given(text=mutated(_RUN_BASE))
def test_fuzz_run_config_files(run_config_file: Path, text: str) -> None:
    run_config_file.write_text(text, encoding="utf-8", errors="surrogatepass")
    _counts["run"] += 1
    bounded(lambda: TrainConfig.load(run_config_file), what=f"TrainConfig.load({text[:200]!r})")


@SETTINGS
@given(key=st.sampled_from(["epochs", "image_size", "batch_size", "max_steps_per_epoch", "lr", "model.encoder",
                            "model.params", "loss.terms", "seed", "device", "data.folds", "swa_lr",
                            "model.thresholds", "loss.class_weights", "cache_mb", "warmup_epochs"]),
       value=_fragment())
def test_fuzz_run_config_overrides(key: str, value: str) -> None:
    _counts["run"] += 1
    base = TrainConfig.from_dict(_RUN_BASE)
    bounded(lambda: base.with_overrides([f"{key}={value}"]), what=f"--set {key}={value[:200]!r}")


def test_zz_record_run_config_figures(figures: Any) -> None:
    figures.add("fuzz.run_config.inputs", _counts["run"])
    assert _counts["run"] > 0


# checkpoints ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(_RUN_BASE)
    schema = ClassSchema.from_names(("background", "left", "right"))
    task = resolve_task(schema)
    torch.manual_seed(0)
    model = build_model(cfg.model, out_channels=task.out_channels)
    return save_checkpoint(tmp_path_factory.mktemp("fuzzck") / "best", model=model, config=cfg, task=task,
                           schema=schema)


@pytest.fixture(scope="module")
def checkpoint_doc(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / CONFIG_FILE).read_text())


def _read_all(folder: Path) -> None:
    for fn in (read_config, read_info, load_checkpoint):
        bounded(lambda fn=fn: fn(folder), what=f"{fn.__name__} on a fuzzed checkpoint", seconds=10.0)


@SETTINGS
@given(data=st.data())
def test_fuzz_checkpoint_config(checkpoint: Path, checkpoint_doc: dict[str, Any], data: Any) -> None:
    text = data.draw(mutated(checkpoint_doc), label="config.json")
    original = (checkpoint / CONFIG_FILE).read_bytes()
    try:
        (checkpoint / CONFIG_FILE).write_text(text, encoding="utf-8", errors="surrogatepass")
        _counts["ckpt"] += 1
        _read_all(checkpoint)
    finally:
        (checkpoint / CONFIG_FILE).write_bytes(original)


def _safetensors(header: Any, *, declared: int | None = None, payload: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if declared is None else declared) + h + payload


class _Boom:
    def __reduce__(self) -> Any:
        return (exec, ("raise SystemExit('unpickled!')",))


_TENSOR = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "XX", ""]),
    "shape": st.lists(st.integers(min_value=-3, max_value=2**62), max_size=5),
    "data_offsets": st.lists(st.integers(min_value=-1, max_value=2**63), min_size=0, max_size=3),
})


@st.composite
def _weights(draw: Any, valid: bytes) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "pickle", "header", "header", "lying_length"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "truncated":
        return valid[: draw(st.integers(0, min(len(valid) - 1, 1 << 16)))]
    if kind == "pickle":
        return pickle.dumps({"net.encoder.conv1.weight": _Boom()}, protocol=draw(st.integers(2, 5)))
    header = draw(st.dictionaries(st.sampled_from(["net.encoder.conv1.weight", "x", "__metadata__", "../../x"]),
                                  _TENSOR, max_size=3))
    payload = draw(st.binary(max_size=256))
    if kind == "lying_length":
        return _safetensors(header, declared=draw(st.integers(0, 2**64 - 1)), payload=payload)
    return _safetensors(header, payload=payload)


@SETTINGS
@given(data=st.data())
def test_fuzz_checkpoint_weights(checkpoint: Path, data: Any) -> None:
    weights = checkpoint / WEIGHTS_FILE
    valid = weights.read_bytes()
    try:
        weights.write_bytes(data.draw(_weights(valid), label="model.safetensors"))
        _counts["ckpt"] += 1
        bounded(lambda: load_checkpoint(checkpoint), what="load_checkpoint with fuzzed weights", seconds=10.0)
    finally:
        weights.write_bytes(valid)


def test_zz_record_checkpoint_figures(figures: Any) -> None:
    figures.add("fuzz.checkpoint_config.inputs", _counts["ckpt"])
    assert _counts["ckpt"] > 0
