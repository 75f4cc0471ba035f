"""Training-engine speed: the trainer against a bare PyTorch loop, and the real data pipeline against tensors.

- ``engine.train_vs_bare_ratio``: typical (lower-quartile) step time of a bare loop (same model, batch, loss, optimiser,
  in-memory tensors) divided by the trainer's typical (lower-quartile) step time on the same in-memory data. ≥ 0.95.
- ``engine.data_vs_inmemory_ratio``: the trainer's step throughput on Montgomery read from disk (PNG decoding,
  resizing, the ``xray`` augmentation, no cache: every step decodes) over its throughput on in-memory tensors
  with no augmentation. ≥ 0.9.
- ``engine.offline_weights_fail_s``: time for a hub-weights request to fail with no network (< 2 s).

Environment: ``SEGSTUDIO_BENCH_DEVICE`` (default ``auto``), ``SEGSTUDIO_BENCH_STEPS`` (default 16).
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Figure

PREFIX = "engine"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))
STEPS = int(os.environ.get("SEGSTUDIO_BENCH_STEPS", "8"))
DEVICE = os.environ.get("SEGSTUDIO_BENCH_DEVICE", "auto")
WARMUP = 2
ROUNDS = 3


def _config(extra: list[str]):
    from segstudio.engine.config import TrainConfig

    size, batch = (256, 8) if _device() == "cuda" else (64, 4)
    return TrainConfig().with_overrides([
        "model.encoder=resnet18", "model.in_channels=3", f"image_size={size}", f"batch_size={batch}",
        "epochs=1", f"max_steps_per_epoch={STEPS + WARMUP}", "val_fraction=0", "deterministic=false",
        f"device={DEVICE}", "augment.preset=none", "loss.terms=ce+dice", "normalize=unit", *extra,
    ])


def _typical(times: list[float]) -> float:
    """Lower quartile of step times: on a shared CPU the upper tail is other processes' load, not ours."""
    return statistics.quantiles(times, n=4)[0] if len(times) >= 4 else min(times)


def _device() -> str:
    import torch

    if DEVICE != "auto":
        return DEVICE
    return "cuda" if torch.cuda.is_available() else "cpu"


def _memory_dataset(n: int, size: int):
    from segstudio.core.types import ClassSchema
    from segstudio.datasets.base import Dataset, Sample

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    gts = [rng.integers(0, 3, (size, size), dtype=np.uint8) for _ in range(n)]
    samples = [Sample(id=f"m{i}", image=Path(f"m{i}"), gt=i) for i in range(n)]
    return Dataset(root=Path("."), format_name="memory", schema=ClassSchema.from_names(["background", "a", "b"]),
                   samples=samples, read_image=lambda ds, s: images[s.gt], read_gt=lambda ds, s: gts[s.gt])


def _trainer_step_times(cfg, dataset) -> list[float]:
    from segstudio.engine.events import BatchEnd
    from segstudio.engine.train import train

    times, last = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for ev in train(cfg, dataset, run_dir=tmp):
            if isinstance(ev, BatchEnd):
                now = time.perf_counter()
                # the first step of an epoch also waits for the previous epoch's checkpoint: not a step time
                if last is not None and ev.step > 1 and ev.global_step > WARMUP:
                    times.append(now - last)
                last = now
    return times


def _bare_step_times(cfg) -> list[float]:
    """The 20-line loop a user would write: same model, batch, CE + Dice, AdamW, tensors already in memory."""
    import segmentation_models_pytorch as smp
    import torch
    import torch.nn.functional as F

    dev = torch.device(_device())
    s, b = cfg.data.image_size, cfg.data.batch_size
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=3).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    dice = smp.losses.DiceLoss("multiclass")
    x = torch.rand(b, 3, s, s, device=dev)
    y = torch.randint(0, 3, (b, s, s), device=dev)
    amp = dev.type == "cuda"
    if amp:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(STEPS + WARMUP):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
            loss = F.cross_entropy(out.float(), y) + dice(out.float(), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    return times


def bench_train_vs_bare_ratio() -> list[Figure]:
    cfg = _config([])
    n = cfg.data.batch_size * (STEPS + WARMUP)
    ds = _memory_dataset(n, cfg.data.image_size)
    # interleave the two so that load from other processes hits both alike
    eng, bare = [], []
    for _ in range(ROUNDS):
        bare += _bare_step_times(cfg)
        eng += _trainer_step_times(cfg, ds)
    ratio = _typical(bare) / _typical(eng)
    return [
        Figure("engine.train_vs_bare_ratio", round(ratio, 3), "x", 0.95, "higher"),
        Figure("engine.train_step_ms", round(_typical(eng) * 1000, 1), "ms"),
        Figure("engine.bare_step_ms", round(_typical(bare) * 1000, 1), "ms"),
    ]


def bench_data_vs_inmemory_ratio() -> list[Figure]:
    from segstudio.datasets.registry import open_dataset

    path = SHARED / "montgomery_cxr" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing (set SEGSTUDIO_SHARED)")
    real = open_dataset(path)
    base = _config([])
    mem = _memory_dataset(len(real), base.data.image_size)
    epochs = -(-(STEPS + WARMUP) * base.data.batch_size // len(real)) + 1
    disk_cfg = base.with_overrides(["augment.preset=xray", "cache_mb=0", "normalize=zscore", f"epochs={epochs}"])
    mem_cfg = base.with_overrides(["normalize=zscore", f"epochs={epochs}"])
    disk, inmem = [], []
    for _ in range(ROUNDS):
        inmem += _trainer_step_times(mem_cfg, mem)
        disk += _trainer_step_times(disk_cfg, real)
    ratio = _typical(inmem) / _typical(disk)
    return [
        Figure("engine.data_vs_inmemory_ratio", round(ratio, 3), "x", 0.9, "higher"),
        Figure("engine.disk_step_ms", round(_typical(disk) * 1000, 1), "ms"),
    ]


def bench_offline_weights_fail_s() -> list[Figure]:
    from segstudio.engine.config import ModelConfig
    from segstudio.engine.models import build_model
    from segstudio.engine.weights import WeightsUnavailableError

    saved_env = os.environ.pop("HF_HUB_OFFLINE", None)
    real_connect = socket.create_connection

    def unreachable(address, timeout=None, *a, **k):
        # a black-holed network: the connect waits for its whole timeout, then fails
        time.sleep(timeout or 0)
        raise OSError("network unreachable")

    socket.create_connection = unreachable  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        try:
            build_model(ModelConfig(encoder="resnet18", encoder_weights="imagenet"), out_channels=2)
        except WeightsUnavailableError:
            pass
        dt = time.perf_counter() - t0
    finally:
        socket.create_connection = real_connect  # type: ignore[assignment]
        if saved_env is not None:
            os.environ["HF_HUB_OFFLINE"] = saved_env
    return [Figure("engine.offline_weights_fail_s", round(dt, 3), "s", 2.0, "lower")]
