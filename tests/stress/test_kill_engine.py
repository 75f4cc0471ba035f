"""kill -9 at random points of the engine's write paths (issue 13): checkpoint write, and export (prediction
files through ``engine.outputs`` and ONNX through ``engine.export``).

Checkpoint: a child saves a small U-Net into the same checkpoint folder in a loop, each save with weights filled
by a value derived from its token (pid, n) and the token in ``config.json`` and ``training_state.json``. After
each kill the checkpoint must load, be one whole save (weights, config and state of the same token), be the last
acknowledged save or the one in flight (never an older one: that would be acknowledged work lost), and no temp
folder or moved-aside copy may remain once the loader has swept.

Export: a child writes prediction masks and probabilities for four samples and an ONNX export of a tiny model,
in a loop, acknowledging each file with its sha256. After each kill every file must be the previous version or
the new one: the last acknowledged bytes, or — only for the write in flight — a complete file of the next
version; never torn, never older than acknowledged. No temp file remains once the next writer has swept.

The children import torch but not Qt; READY is printed after the imports.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import KILL_POINTS
from .killharness import kill_trials

_COMMON = """
import hashlib, json, os, sys
import numpy as np
import torch
torch.set_num_threads(1)
from segstudio.core.types import ClassSchema
from segstudio.engine.config import TrainConfig
from segstudio.engine.models import build_model
from segstudio.engine.task import resolve_task

def fill_value(pid, n):
    return ((pid * 7919 + n) % 100003) / 7.0

pid = os.getpid()
schema = ClassSchema.from_names(("background", "fg"))
task = resolve_task(schema)
"""

_CHECKPOINT = """
from segstudio.engine.checkpoint import save_checkpoint
cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "model.encoder_depth=3", "image_size=32"])
model = build_model(cfg.model, out_channels=task.out_channels)
path = {path!r}
print("READY", flush=True)
n = 0
while True:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(fill_value(pid, n))
    token = [pid, n]
    save_checkpoint(path, model=model, config=cfg, task=task, schema=schema, metrics={{"token": token}},
                    training_tensors={{"step": torch.tensor([n])}}, training_json={{"token": token}})
    print("ACK " + json.dumps({{"token": token}}), flush=True)
    n += 1
"""

SIDS = ("a.png", "b.png", "c.png", "d.png")

_EXPORT = """
from segstudio.engine.checkpoint import load_checkpoint, save_checkpoint
from segstudio.engine.export import export_onnx
from segstudio.engine.outputs import PredictionWriter
out = {out!r}
sids = {sids!r}
cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "model.encoder_depth=3", "image_size=32",
                                    "model.params={{\\"decoder_channels\\": [16, 8, 8]}}"])
model = build_model(cfg.model, out_channels=task.out_channels)
ckpt = load_checkpoint(save_checkpoint(os.path.join(out, "..", f"ck-{{pid}}"), model=model, config=cfg, task=task,
                                       schema=schema))

def pattern(pid, n, j):
    rng = np.random.default_rng([pid, n, j])
    return rng.integers(0, 2, (48, 40)).astype(np.uint8), rng.random((2, 48, 40)).astype(np.float32)

def sha(p):
    with open(p, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()

writer = PredictionWriter(out, None, probabilities=os.path.join(out, "prob"))
print("READY", flush=True)
n = 0
while True:
    for j, sid in enumerate(sids):
        mask, prob = pattern(pid, n, j)
        written = writer.write(sid, mask, probabilities=prob, class_ids=(0, 1), class_names=("bg", "fg"))
        npz = os.path.join(out, "prob", sid.rsplit(".", 1)[0] + ".npz")
        print("ACK " + json.dumps({{"kind": "pred", "pid": pid, "n": n, "j": j, "files": {{
            str(written[0]): sha(written[0]), npz: sha(npz)}}}}), flush=True)
    with torch.no_grad():
        for p in ckpt.model.parameters():
            p.fill_(fill_value(pid, n))
    ckpt.info["metrics"] = {{"token": [pid, n]}}
    onnx_path = os.path.join(out, "model.onnx")
    export_onnx(ckpt, onnx_path, check=False)
    print("ACK " + json.dumps({{"kind": "onnx", "pid": pid, "n": n, "files": {{onnx_path: sha(onnx_path)}}}}),
          flush=True)
    n += 1
"""


def _fill(pid: int, n: int) -> float:
    return ((pid * 7919 + n) % 100003) / 7.0


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _no_leftovers(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".old")]
    assert not left, f"left behind after the sweep: {left}"


# checkpoint write -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_during_checkpoint_write(tmp_path: Path, figures: Any) -> None:
    import torch

    from segstudio.core.types import ClassSchema
    from segstudio.engine.checkpoint import STATE_JSON, load_checkpoint, load_training_state, save_checkpoint
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.task import resolve_task

    path = tmp_path / "checkpoints" / "last"
    cfg = TrainConfig().with_overrides(["model.encoder=resnet18", "model.encoder_depth=3", "image_size=32"])
    schema = ClassSchema.from_names(("background", "fg"))
    task = resolve_task(schema)
    model = build_model(cfg.model, out_channels=task.out_channels)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(_fill(0, 0))
    save_checkpoint(path, model=model, config=cfg, task=task, schema=schema, metrics={"token": [0, 0]},
                    training_tensors={"step": torch.tensor([0])}, training_json={"token": [0, 0]})
    state = {"token": [0, 0], "pid": None}
    size = sum(f.stat().st_size for f in path.iterdir())

    def check(acks: list[dict[str, Any]]) -> int:
        ckpt = load_checkpoint(path)  # also the sweep of what the killed writer left
        token = list(ckpt.metrics["token"])
        # one whole save: weights, config and training state all of the same token
        want = torch.tensor(_fill(*token), dtype=torch.float32)
        for name, p in ckpt.model.named_parameters():
            assert torch.all(p == want), f"{name}: weights of another save than config.json's token {token}"
        tensors, meta = load_training_state(path)
        assert meta["token"] == token and int(tensors["step"][0]) == token[1], "training state of another save"
        assert json.loads((path / STATE_JSON).read_text())["token"] == token
        lost = 0
        if acks:
            last = acks[-1]["token"]
            allowed = [last, [last[0], last[1] + 1]]
        else:
            allowed = [state["token"]]
            allowed += [[t, 0] for t in ([state["pid"]] if state["pid"] else [])]
        if token not in allowed:
            if acks or token[1] != 0:
                lost = size  # an acknowledged save is gone
            else:  # the very first save of this child, not acknowledged before the kill
                pass
        state["token"] = token
        _no_leftovers(path.parent)
        return lost

    report = kill_trials(child_code=textwrap.dedent(_COMMON) + textwrap.dedent(_CHECKPOINT.format(path=str(path))),
                         trials=KILL_POINTS, check=check, max_delay_s=2.0)
    figures.add("kill.checkpoint_write.survived", report.survived)
    figures.add("kill.bytes_lost", report.bytes_lost)
    assert report.survived == KILL_POINTS and report.bytes_lost == 0
    assert report.acks > 0, "no save completed in any trial: the kill points never saw a finished write"


# export -----------------------------------------------------------------------------------------------------------


def _pattern(pid: int, n: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([pid, n, j])
    return rng.integers(0, 2, (48, 40)).astype(np.uint8), rng.random((2, 48, 40)).astype(np.float32)


def _next_write(last: dict[str, Any] | None) -> tuple[str, int, int] | None:
    """(kind, n, j) of the write after ``last`` (the one a kill may have caught in flight)."""
    if last is None:
        return ("pred", 0, 0)
    if last["kind"] == "pred":
        return ("pred", last["n"], last["j"] + 1) if last["j"] + 1 < len(SIDS) else ("onnx", last["n"], -1)
    return ("pred", last["n"] + 1, 0)


@pytest.mark.slow
def test_kill_during_export(tmp_path: Path, figures: Any) -> None:
    import cv2

    from segstudio.engine.export import read_metadata
    from segstudio.engine.outputs import PredictionWriter

    out = tmp_path / "out"
    known: dict[str, str] = {}  # file -> sha256 of the version on disk after the previous trial
    sizes: dict[str, int] = {}

    def in_flight_ok(f: Path, pid: int, kind: str, n: int, j: int) -> bool:
        if kind == "onnx" and f.name == "model.onnx":
            return read_metadata(f)["metrics"] == {"token": [pid, n]}
        if kind == "pred" and j >= 0 and f.stem == SIDS[j].rsplit(".", 1)[0]:
            mask, prob = _pattern(pid, n, j)
            if f.suffix == ".png":
                got = cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
                return got is not None and np.array_equal(got, mask)
            with np.load(io.BytesIO(f.read_bytes()), allow_pickle=False) as z:
                return np.allclose(z["probabilities"], prob.astype(np.float16))
        return False

    def check(acks: list[dict[str, Any]]) -> int:
        PredictionWriter(out, None, probabilities=out / "prob")  # the next writer: sweeps what the dead one left
        last_sha: dict[str, str] = {}
        for a in acks:
            last_sha.update(a["files"])
        pid = acks[0]["pid"] if acks else None
        nxt = _next_write(acks[-1] if acks else None)
        lost = 0
        files = [p for p in out.rglob("*") if p.is_file()]
        for f in files:
            key, digest = str(f), _sha(f)
            if key in last_sha and digest == last_sha[key]:
                pass  # the last acknowledged version
            elif key not in last_sha and known.get(key) == digest:
                pass  # untouched in this trial: the old version
            elif pid is not None and nxt is not None and in_flight_ok(f, pid, *nxt):
                pass  # the write in flight completed before the kill: the new version, whole
            elif pid is None and nxt is not None and known.get(key) != digest:
                # no ACK was read: the child may have finished its first write (n = 0) before dying
                assert f.suffix in (".png", ".npz", ".onnx")
                _assert_whole(f)
            else:
                if key in last_sha:
                    lost += sizes.get(key, f.stat().st_size)  # an acknowledged version is gone
                raise AssertionError(f"{f} is neither the old nor the new version (torn or stale)")
            known[key] = digest
            sizes[key] = f.stat().st_size
        for key in last_sha:
            assert Path(key).is_file(), f"acknowledged file {key} disappeared"
        _no_leftovers(out)
        return lost

    def _assert_whole(f: Path) -> None:
        if f.suffix == ".png":
            assert cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED) is not None
        elif f.suffix == ".npz":
            with np.load(io.BytesIO(f.read_bytes()), allow_pickle=False) as z:
                assert z["probabilities"].shape == (2, 48, 40)
        else:
            read_metadata(f)

    code = textwrap.dedent(_COMMON) + textwrap.dedent(_EXPORT.format(out=str(out), sids=SIDS))
    report = kill_trials(child_code=code, trials=KILL_POINTS, check=check, max_delay_s=2.5)
    figures.add("kill.export.survived", report.survived)
    figures.add("kill.bytes_lost", report.bytes_lost)
    assert report.survived == KILL_POINTS and report.bytes_lost == 0
    assert report.acks > 0
    assert (out / "model.onnx").is_file() or any(out.glob("*.png"))
