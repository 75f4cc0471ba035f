"""The device-resident data path: the training split, decoded and resized once, kept on the training device as
uint8 tensors and batched and augmented there (``torch_augment``), instead of a DataLoader collating per-sample
numpy work every step.

``choose_path`` picks it per run from ``data.resident`` ("auto": when the split fits ``data.resident_budget_mb``,
by default a quarter of the device's free memory; "on"; "off") and says why. The split is filled lazily during
the first epoch, decoded by ``SegmentationData.load_pair`` (same corrections, targets and errors as the loader
path), so a run starts as fast as before and the decoding stays inside the first epoch's time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from segstudio.engine.config import DataConfig
from segstudio.engine.data import SegmentationData
from segstudio.engine.task import IGNORE, Task
from segstudio.engine.torch_augment import TorchAugmenter, one_cpu_thread
from segstudio.engine.torch_pixel import lookup

if TYPE_CHECKING:  # batches.py builds the resident split with its sampler
    from segstudio.engine.distributed import EpochSampler

log = logging.getLogger(__name__)

#: the default budget: this share of the device's free memory (the model, its activations and the optimiser
#: need the rest)
RESIDENT_SHARE = 0.25
_MB = 1024 * 1024


@dataclass(frozen=True)
class PathChoice:
    """Which training data path a run takes, and why (logged and kept in ``run.json``)."""

    resident: bool
    reason: str
    nbytes: int

    @property
    def name(self) -> str:
        return "resident" if self.resident else "loader"


def target_dtype(task: Task) -> torch.dtype:
    """Storage dtype of resident targets: multi-label planes, or semantic label codes (class index + 1, 0 where
    unlabelled: ``torch_augment``'s convention)."""
    return torch.uint8 if task.mode == "multilabel" or task.num_classes < 255 else torch.int16


def resident_nbytes(n: int, *, image_size: int, in_channels: int, task: Task) -> int:
    """Bytes ``n`` samples take on the device: ``(C, S, S) uint8`` images and their targets."""
    dtype = target_dtype(task)
    planes = task.num_classes if task.mode == "multilabel" else 1
    per_target = planes * (1 if dtype == torch.uint8 else 2)
    return n * image_size * image_size * (in_channels + per_target)


def free_memory(device: torch.device) -> int:
    """Free bytes where the split would live: CUDA memory, else available RAM (0 when it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil  # optional: the portable answer where it is installed

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def choose_path(cfg: DataConfig, *, n: int, task: Task, in_channels: int, device: torch.device) -> PathChoice:
    nbytes = resident_nbytes(n, image_size=cfg.image_size, in_channels=in_channels, task=task)
    size = f"{n} samples, {nbytes / _MB:.1f} MB"
    if cfg.resident == "off":
        return PathChoice(False, f"data.resident=off ({size} would fit the loader's cache)", nbytes)
    if cfg.resident == "on":
        return PathChoice(True, f"data.resident=on ({size} on {device.type})", nbytes)
    if cfg.cache_mb == 0:
        return PathChoice(False, "data.cache_mb=0 asks that nothing decoded is kept in memory", nbytes)
    if device.type not in ("cpu", "cuda"):
        return PathChoice(False, f"auto keeps the split resident on the CPU and CUDA, not on {device.type} "
                          "(data.resident=on to try)", nbytes)
    if cfg.resident_budget_mb:
        budget, what = cfg.resident_budget_mb * _MB, "data.resident_budget_mb"
    else:
        budget, what = int(free_memory(device) * RESIDENT_SHARE), f"a quarter of the free {device.type} memory"
    if nbytes <= budget:
        return PathChoice(True, f"{size} fit {what} ({budget / _MB:.0f} MB)", nbytes)
    return PathChoice(False, f"{size} exceed {what} ({budget / _MB:.0f} MB); set data.resident_budget_mb or "
                      "data.resident=on to keep it on the device anyway", nbytes)


class ResidentData:
    """The training split on ``device``: ``epoch(e)`` yields ``(x (B, C, S, S) uint8, y)`` batches already on the
    device, ``y`` as the loader's (``(B, S, S) int64`` with IGNORE, or ``(B, K, S, S) uint8`` planes).

    The batches of epoch ``e`` are ``sampler``'s (``distributed.EpochSampler``: this process's share of an order seeded
    by the run's seed and ``e``) and their augmentation is seeded by the same, so a resumed run sees the same
    batches as an uninterrupted one. Each process of a distributed run keeps the whole split (its share changes
    every epoch), filled as its batches first need each sample."""

    def __init__(self, data: SegmentationData, *, device: torch.device, augmenter: TorchAugmenter | None,
                 sampler: EpochSampler) -> None:
        self.data, self.device, self.augmenter, self.sampler = data, device, augmenter, sampler
        self.seed = sampler.seed
        n, s, c = len(data), data.size, data.in_channels
        self.multilabel = data.task.mode == "multilabel"
        self.images = torch.empty((n, c, s, s), dtype=torch.uint8, device=device)
        shape = (n, data.task.num_classes, s, s) if self.multilabel else (n, s, s)
        self.targets = torch.empty(shape, dtype=target_dtype(data.task), device=device)
        # label code -> the loss's target (IGNORE for unlabelled)
        self.decode = torch.tensor([IGNORE, *range(data.task.num_classes)], device=device)
        self.loaded = np.zeros(n, bool)

    def __len__(self) -> int:
        return len(self.data)

    def _fill(self, indices: list[int]) -> None:
        for i in indices:
            if self.loaded[i]:
                continue
            image, target = self.data.load_pair(i, keep=False)
            img = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
            tgt = target.transpose(2, 0, 1) if self.multilabel else np.where(target == IGNORE, 0, target + 1)
            self.images[i].copy_(torch.from_numpy(np.ascontiguousarray(img)))
            self.targets[i].copy_(torch.from_numpy(np.ascontiguousarray(tgt, dtype=np.uint8 if self.targets.dtype
                                                                        == torch.uint8 else np.int16)))
            self.loaded[i] = True

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.augmenter is not None:
            self.augmenter.reseed(self.seed * 7919 + epoch)
        for chunk in self.sampler.batches(epoch):
            self._fill(chunk.tolist())
            with one_cpu_thread(self.device):
                idx = chunk.to(self.device)
                x, y = self.images.index_select(0, idx), self.targets.index_select(0, idx)
                if self.augmenter is not None:
                    x, y = self.augmenter(x, y)
                y = y if self.multilabel else lookup(self.decode, y)
            yield x, y
