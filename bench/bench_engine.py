"""Training-engine speed: the trainer against a bare PyTorch loop, and the real data pipeline against tensors.

- ``engine.train_vs_bare_ratio``: median step time of a bare loop (same model, batch, loss, optimiser,
  in-memory tensors) divided by the trainer's median step time on the same in-memory data. ≥ 0.95.
- ``engine.data_vs_inmemory_ratio``: the trainer's step throughput on Montgomery read from disk (PNG decoding,
  resizing, the ``xray`` augmentation, no cache: every step decodes; one loader worker prefetching) over its
  throughput on in-memory arrays at the training size with no augmentation (same worker). ≥ 0.9.
- ``engine.resident_vs_loader_ratio``: the trainer's step throughput on the device-resident data path over the
  DataLoader path, ``lungs-lr`` on Montgomery at 256² on the CPU (interleaved steps, lower quartiles). ≥ 1.0.
- ``engine.cpu_amp_speedup``: the trainer's float32 step time over its mixed-precision one (the default; bf16
  autocast where the CPU has bf16 instructions), ``lungs-lr`` at 256² on the CPU. ≥ 1.0.
- ``engine.cpu_channels_last_speedup``: the trainer's step time with NCHW tensors over its step time with
  channels-last ones (the default on CUDA and the CPU), ``lungs-lr`` at 256² on the CPU. ≥ 1.0.
- ``engine.offline_weights_fail_s``: time for a hub-weights request to fail with no network (< 2 s).
- ``engine.train_wall_vs_epochs_ratio`` / ``engine.startup_to_first_step_s``: a real ``segstudio train`` run in a
  fresh process, its wall time over its epochs' (≤ 1.15) and its start to the first optimiser step (< 8 s).

Environment: ``SEGSTUDIO_BENCH_DEVICE`` (default ``auto``), ``SEGSTUDIO_BENCH_STEPS`` (default 16).
"""

from __future__ import annotations

import math
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
STEPS = int(os.environ.get("SEGSTUDIO_BENCH_STEPS", "16"))
DEVICE = os.environ.get("SEGSTUDIO_BENCH_DEVICE", "auto")
WARMUP = 2
#: the step pairs ``engine.resident_vs_loader_ratio`` measures (at least; ``SEGSTUDIO_BENCH_STEPS`` more)
RESIDENT_PAIRS = 32


def _config(extra: list[str]):
    from segstudio.engine.config import TrainConfig

    # 128² on the CPU: the smallest size at which training is still a real workload next to decoding
    size, batch = (256, 8) if _device() == "cuda" else (128, 4)
    return TrainConfig().with_overrides([
        "model.encoder=resnet18", "model.in_channels=3", f"image_size={size}", f"batch_size={batch}",
        "epochs=1", f"max_steps_per_epoch={STEPS + WARMUP + 1}", "val_fraction=0", "deterministic=false",
        f"device={DEVICE}", "augment.preset=none", "loss.terms=ce+dice", "normalize=unit", *extra,
    ])


def _typical(times: list[float]) -> float:
    return statistics.median(times)


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


class _TrainerSteps:
    """Drives the trainer generator one optimiser step at a time, so that its steps can be interleaved with
    another loop's: on a shared CPU, load from other processes then hits both sides alike."""

    def __init__(self, cfg, dataset) -> None:
        from segstudio.engine.train import train

        self.tmp = tempfile.TemporaryDirectory()
        self.events = train(cfg, dataset, run_dir=self.tmp.name)

    def step(self) -> float:
        from segstudio.engine.events import BatchEnd

        t0 = time.perf_counter()
        for ev in self.events:
            # the first step of an epoch also waits for the previous epoch's checkpoint: not a step time
            if isinstance(ev, BatchEnd) and ev.step > 1:
                return time.perf_counter() - t0
            if isinstance(ev, BatchEnd):
                t0 = time.perf_counter()
        raise RuntimeError("the run ended before enough steps were measured")

    def close(self) -> None:
        self.events.close()
        self.tmp.cleanup()


class _BareSteps:
    """The 20-line loop a user would write: same model, batch, CE + Dice, AdamW, tensors already in memory."""

    def __init__(self, cfg) -> None:
        import segmentation_models_pytorch as smp
        import torch

        from segstudio.engine.runtime import autocast_dtype

        self.torch = torch
        dev = torch.device(_device())
        s, b = cfg.data.image_size, cfg.data.batch_size
        torch.manual_seed(0)
        self.model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=3).to(dev)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        self.dice = smp.losses.DiceLoss("multiclass")
        self.x = torch.rand(b, 3, s, s, device=dev)
        self.y = torch.randint(0, 3, (b, s, s), device=dev)
        # the trainer's precision: mixed where the device computes it natively (a CUDA card, a CPU with bf16)
        self.dtype = autocast_dtype(dev, cfg.amp)
        self.amp = self.dtype is not None
        self.dev = dev
        if dev.type in ("cuda", "cpu"):  # as the trainer does (TrainConfig.channels_last)
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)

    def step(self) -> float:
        torch = self.torch
        F = torch.nn.functional
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.dev.type, dtype=self.dtype or torch.float32, enabled=self.amp):
            out = self.model(self.x)
            loss = F.cross_entropy(out.float(), self.y) + self.dice(out.float(), self.y)
        loss.backward()
        self.opt.step()
        loss.item()
        return time.perf_counter() - t0

    def close(self) -> None:
        pass


def _interleaved(a, b) -> tuple[list[float], list[float]]:
    ta, tb = [], []
    try:
        for i in range(STEPS + WARMUP):
            x, y = a.step(), b.step()
            if i >= WARMUP:
                ta.append(x)
                tb.append(y)
    finally:
        a.close()
        b.close()
    return ta, tb


def bench_train_vs_bare_ratio() -> list[Figure]:
    cfg = _config([])
    n = cfg.data.batch_size * (STEPS + WARMUP + 2)
    bare, eng = _interleaved(_BareSteps(cfg), _TrainerSteps(cfg, _memory_dataset(n, cfg.data.image_size)))
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
    epochs = -(-(STEPS + WARMUP) * base.data.batch_size // len(real)) + 2
    # both sides get one loader worker (prefetch, as a user runs it); the disk side decodes every step (no cache)
    disk_cfg = base.with_overrides(["augment.preset=xray", "cache_mb=0", "normalize=zscore", f"epochs={epochs}", "num_workers=1"])
    mem_cfg = base.with_overrides(["normalize=zscore", f"epochs={epochs}", "num_workers=1"])
    inmem, disk = _interleaved(_TrainerSteps(mem_cfg, mem), _TrainerSteps(disk_cfg, real))
    ratio = _typical(inmem) / _typical(disk)
    return [
        Figure("engine.data_vs_inmemory_ratio", round(ratio, 3), "x", 0.9, "higher"),
        Figure("engine.disk_step_ms", round(_typical(disk) * 1000, 1), "ms"),
    ]


def _lungs_pair(a: list[str], b: list[str], *, steps: int = STEPS) -> tuple[list[float], list[float]]:
    """Step times of two ``lungs-lr`` runs on Montgomery on the CPU (every sample trains), ``a`` and ``b`` the
    overrides that tell them apart. They step in turn (which one goes first alternates) after a first epoch of
    warm-up (both decode then); ``steps`` pairs are measured."""
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.recipes import load_recipe

    path = SHARED / "montgomery_cxr" / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing (set SEGSTUDIO_SHARED)")
    real = open_dataset(path)
    recipe = load_recipe("lungs-lr")
    per_epoch = len(real) // recipe.data.batch_size  # val_fraction=0: every sample trains
    warmup = per_epoch - 1  # the first epoch's measured steps (step 1 of every epoch is never measured)
    epochs = -(-(warmup + steps) // (per_epoch - 1)) + 1
    common = ["val_fraction=0", "device=cpu", f"epochs={epochs}", f"save_every={epochs}", "early_stopping=0"]
    first = _TrainerSteps(recipe.with_overrides([*common, *a]), real)
    second = _TrainerSteps(recipe.with_overrides([*common, *b]), real)
    ta, tb = [], []
    try:
        for i in range(warmup + steps):
            x, y = (first.step(), second.step()) if i % 2 else (second.step(), first.step())[::-1]
            if i >= warmup:
                ta.append(x)
                tb.append(y)
    finally:
        first.close()
        second.close()
    return ta, tb


def bench_resident_vs_loader_ratio() -> list[Figure]:
    """``engine.resident_vs_loader_ratio``: the trainer's step throughput on the device-resident data path over the
    DataLoader path (``data.resident=on`` / ``off``), everything else as the ``lungs-lr`` recipe sets it (256²,
    batch 8, the ``xray`` preset with the lungs' label swap, ``num_workers`` left at its default, 0) on Montgomery,
    on the CPU. Both runs step in turn (which one goes first alternates) after a first epoch of warm-up (both
    decode then), ``RESIDENT_PAIRS`` pairs. The two paths differ by milliseconds in a step of most of a second, so
    the figure is the median of the pairs' ratios (loader step over the resident step beside it): a burst of load
    from another process, which can double a step on a shared machine, disturbs one pair, not the figure, and
    slow and fast stretches of the machine hit both sides of a pair alike. ``engine.resident_vs_loader_lq_ratio``
    is the former estimate, the lower quartiles' ratio. ≥ 1.0: keeping the split resident must not slow the CPU
    down."""
    tl, tr = _lungs_pair(["data.resident=off"], ["data.resident=on"], steps=max(STEPS, RESIDENT_PAIRS))
    ratio = statistics.median(a / b for a, b in zip(tl, tr, strict=True))
    return [
        Figure("engine.resident_vs_loader_ratio", round(ratio, 3), "x", 1.0, "higher"),
        Figure("engine.resident_vs_loader_lq_ratio", round(_lower_quartile(tl) / _lower_quartile(tr), 3), "x"),
        Figure("engine.resident_step_ms", round(_typical(tr) * 1000, 1), "ms"),
        Figure("engine.loader_step_ms", round(_typical(tl) * 1000, 1), "ms"),
    ]


def bench_cpu_amp_speedup() -> list[Figure]:
    """``engine.cpu_amp_speedup``: the trainer's step time in float32 (``amp=false``) over its step time with
    mixed precision (``amp=true``, the default: bf16 autocast on a CPU with bf16 instructions, float32 elsewhere),
    ``lungs-lr`` on Montgomery at 256² on the CPU, interleaved steps after a warm-up epoch, lower quartiles.
    ≥ 1.0: the default must not slow the CPU down. ``engine.cpu_amp``: 1 where the CPU runs bf16, else 0."""
    from segstudio.engine.runtime import cpu_computes_bf16

    t32, tmx = _lungs_pair(["data.resident=on", "amp=false"], ["data.resident=on", "amp=true"])
    return [
        Figure("engine.cpu_amp_speedup", round(_lower_quartile(t32) / _lower_quartile(tmx), 3), "x", 1.0, "higher"),
        Figure("engine.cpu_amp", 1.0 if cpu_computes_bf16() else 0.0, "bool"),
        Figure("engine.cpu_fp32_step_ms", round(_typical(t32) * 1000, 1), "ms"),
        Figure("engine.cpu_amp_step_ms", round(_typical(tmx) * 1000, 1), "ms"),
    ]


def bench_cpu_channels_last_speedup() -> list[Figure]:
    """``engine.cpu_channels_last_speedup``: the trainer's step time with NCHW tensors (``channels_last=false``) over
    its step time with channels-last ones (the default, on the CPU since 2026-12-07), ``lungs-lr`` on Montgomery at
    256² on the CPU in its default precision, interleaved steps after a warm-up epoch, lower quartiles. ≥ 1.0."""
    nchw, last = _lungs_pair(["data.resident=on", "channels_last=false"], ["data.resident=on", "channels_last=true"])
    return [
        Figure("engine.cpu_channels_last_speedup", round(_lower_quartile(nchw) / _lower_quartile(last), 3), "x", 1.0,
               "higher"),
        Figure("engine.cpu_nchw_step_ms", round(_typical(nchw) * 1000, 1), "ms"),
        Figure("engine.cpu_channels_last_step_ms", round(_typical(last) * 1000, 1), "ms"),
    ]


def _lower_quartile(times: list[float]) -> float:
    return statistics.quantiles(times, n=4)[0]


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


def bench_train_wall_vs_epochs() -> list[Figure]:
    """``segstudio train`` as a user runs it (a fresh process, ``lungs-lr`` on Montgomery at its own 256 px for 5
    epochs; at 128 px the epochs were so short on an idle machine that the fixed start-up alone broke the budget):
    ``engine.train_wall_vs_epochs_ratio`` = wall time over the sum of the epochs' own times (``curves.csv``; all
    that is not training: imports, opening the dataset, building the model, checkpoints; budget ≤ 1.15) and
    ``engine.startup_to_first_step_s`` = process start to the first optimiser step's progress line (< 8 s), and
    ``engine.train_overhead_s`` = wall time minus the epochs: the fixed cost of a run, whatever its length. A
    recipe with SWA ends with a batch-norm pass over the training split (``run.json``'s ``swa_seconds``): that is
    training, counted with the epochs."""
    import csv
    import json
    import subprocess
    import sys

    data = SHARED / "montgomery_cxr" / "data"
    if not data.is_dir():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "segstudio", "train", str(data), "--recipe", "lungs-lr",
               "--set", "epochs=5", "--set", "early_stopping=0", "--set", f"device={DEVICE}", "--out", str(run),
               "--progress", "json"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        first_step = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if first_step is None and line.startswith("{"):
                ev = json.loads(line)
                if ev.get("event") == "progress" and str(ev.get("label", "")).startswith("epoch") and ev.get("done"):
                    first_step = time.perf_counter() - t0
        proc.wait()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"segstudio train failed ({proc.returncode})")
        with open(run / "curves.csv", encoding="utf-8") as f:
            epochs = sum(float(r["seconds"]) for r in csv.DictReader(f))
        # the recipe averages its weights (SWA): the batch-norm pass after the last epoch is training, not overhead
        swa_s = float(json.loads((run / "run.json").read_text()).get("swa_seconds") or 0.0)
        epochs += swa_s
    return [
        Figure("engine.train_wall_vs_epochs_ratio", round(wall / epochs, 3), "x", 1.15, "lower"),
        Figure("engine.startup_to_first_step_s", round(first_step or math.nan, 2), "s", 8.0, "lower"),
        Figure("engine.train_overhead_s", round(wall - epochs, 2), "s"),
        Figure("engine.train_wall_s", round(wall, 2), "s"),
        Figure("engine.train_swa_pass_s", round(swa_s, 2), "s"),
        Figure("engine.train_epochs_s", round(epochs, 2), "s"),
    ]
