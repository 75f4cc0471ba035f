"""Optimisers and learning-rate schedules (a pure function of the global step, so resuming needs only the step)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import OptimConfig, ScheduleConfig

OPTIMIZERS = ("adamw", "adam", "sgd")


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    raise UnknownKeyError("optimizer", cfg.name, OPTIMIZERS)


def lr_factor(step: int, *, total_steps: int, steps_per_epoch: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
    total = max(total_steps, 1)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    floor = cfg.min_lr_ratio
    if cfg.name == "onecycle":
        # Smith's one-cycle: ramp up over the warm-up (30 % when none is given), cosine down to the floor
        warm = warm or max(1, int(0.3 * total))
        if step < warm:
            return floor + (1.0 - floor) * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if step < warm:
        return (step + 1) / (warm + 1)
    t = min(1.0, (step - warm) / max(1, total - warm))
    if cfg.name == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.name == "poly":
        return floor + (1.0 - floor) * (1 - t) ** cfg.power
    if cfg.name == "constant":
        return 1.0
    raise UnknownKeyError("schedule", cfg.name, ("cosine", "poly", "onecycle", "constant"))
