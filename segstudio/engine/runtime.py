"""Device choice and seeding, shared by training and inference."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np
import torch

from segstudio.engine.config import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA device is available.", fix="Set device=auto or cpu.")
    return dev


#: the CPU flags of native bfloat16 arithmetic (Linux's names): AVX-512 BF16 and AMX
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The processor's feature flags as Linux's ``/proc/cpuinfo`` lists them (empty elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@functools.cache
def _cpu_has_bf16() -> bool:
    return bool(cpu_flags() & _BF16_FLAGS)


def cpu_computes_bf16() -> bool:
    """Whether mixed precision pays on this CPU: True where the processor has bfloat16 instructions (AVX-512 BF16
    or AMX). There bf16 autocast runs a U-Net's training step 1.3-2.3x faster than float32 (``make bench
    BENCH=engine``: ``engine.cpu_amp_speedup``); elsewhere bf16 is emulated and slower. ``SEGSTUDIO_CPU_AMP=0``
    (or ``1``) overrides the detection."""
    forced = os.environ.get("SEGSTUDIO_CPU_AMP", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_has_bf16()


def autocast_dtype(device: torch.device, asked: bool) -> torch.dtype | None:
    """The dtype of mixed precision on ``device`` when ``asked`` (config ``amp``), or None for float32: bf16 on a
    CUDA card that has it (else float16, with loss scaling) and on a CPU that computes it natively."""
    if not asked:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_computes_bf16():
        return torch.bfloat16
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
