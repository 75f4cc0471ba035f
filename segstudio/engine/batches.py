"""Where a run's batches come from: the epoch's order, this process's share of it, and the data path that turns
indices into tensors (the device-resident split or a DataLoader).

The order of epoch ``e`` depends on the run's seed and ``e`` alone (a permutation, or draws with replacement
weighted by the user's sample weights), so a resumed run sees the batches an uninterrupted one would, and every
process of a distributed run draws the same order and takes its own share (``distributed.shard_epoch``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from segstudio.engine.config import TrainConfig
from segstudio.engine.data import SegmentationData, seed_worker
from segstudio.engine.distributed import EpochSampler, World, shard_eval
from segstudio.engine.resident import PathChoice, ResidentData, choose_path
from segstudio.engine.task import Task
from segstudio.engine.torch_augment import TorchAugmenter

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


def draw_weights(data: SegmentationData, sample_weights: Mapping[str, float]) -> torch.Tensor | None:
    """Reviewed images weigh as the user chose: drawn that much more (or less) often, same epoch length."""
    if not (sample_weights and any(w != 1.0 for w in sample_weights.values())):
        return None
    w = torch.tensor([max(0.0, float(sample_weights.get(s.id, 1.0))) for s in data.samples], dtype=torch.double)
    return w if float(w.sum()) > 0 else None


class RunBatches:
    """A run's training and validation batches for this process.

    Training batches come from the device-resident split when the run keeps it (``resident.choose_path``), else
    from a DataLoader: in-process loading gets a fresh loader per epoch; worker processes persist for the whole
    run (their caches of decoded samples survive the epoch) and the batch sampler follows the epoch. Validation
    is this process's round-robin share of the validation split, in order."""

    def __init__(self, cfg: TrainConfig, train_data: SegmentationData, val_data: SegmentationData, *,
                 device: torch.device, task: Task, world: World, sample_weights: Mapping[str, float]) -> None:
        self.cfg, self.train_data, self.val_data, self.device = cfg, train_data, val_data, device
        self.world = world
        self.cuda = device.type == "cuda"
        self.sampler = EpochSampler(len(train_data), batch_size=cfg.data.batch_size, seed=cfg.seed, world=world,
                                    weights=draw_weights(train_data, sample_weights))
        self.val_subset = torch.utils.data.Subset(val_data, shard_eval(len(val_data), world))
        self.path = choose_path(cfg.data, n=len(train_data), task=task, in_channels=cfg.model.in_channels,
                                device=device)
        if world.any(not self.path.resident, device) and self.path.resident:
            # one process's device lacks the room: every process takes the loader, so all augment alike
            self.path = PathChoice(False, "another training process's device cannot keep the split", self.path.nbytes)
        log.info("training data path: %s (%s)", "device-resident" if self.path.resident else "DataLoader",
                 self.path.reason)
        self.resident = ResidentData(
            train_data, device=device, sampler=self.sampler,
            augmenter=TorchAugmenter(cfg.augment, task, seed=cfg.seed)) if self.path.resident else None
        self._persistent: dict[str, torch.utils.data.DataLoader] = {}

    def __len__(self) -> int:
        """Training batches per epoch (the same on every process)."""
        return len(self.sampler)

    def train_epoch(self, epoch: int) -> Iterable[Batch]:
        if self.resident is not None:
            return self.resident.epoch(epoch)
        self.sampler.set_epoch(epoch)
        if self.cfg.data.num_workers == 0:
            return self.loader(self.train_data, batch_sampler=self.sampler, seed=self.cfg.seed * 1000 + epoch)
        if "train" not in self._persistent:
            self._persistent["train"] = self.loader(self.train_data, batch_sampler=self.sampler, seed=self.cfg.seed * 1000)
        return self._persistent["train"]

    def statistics_pass(self, epoch: int) -> Iterable[Batch]:
        """Training batches for recomputing BatchNorm statistics (SWA): one more epoch as training draws it, from
        the resident split when the run keeps one and runs alone; every process of a distributed run reads the
        whole split through a loader instead, so that all end with the same statistics."""
        if self.resident is not None and not self.world.active:
            return self.resident.epoch(epoch)
        return self.loader(self.train_data)

    def validation(self) -> Iterable[Batch]:
        if self.cfg.data.num_workers == 0:
            return self.loader(self.val_subset)
        if "val" not in self._persistent:
            self._persistent["val"] = self.loader(self.val_subset)
        return self._persistent["val"]

    def loader(self, data: torch.utils.data.Dataset[Any], *, batch_sampler: EpochSampler | None = None,
               seed: int = 0) -> torch.utils.data.DataLoader:
        """A DataLoader over ``data``: by ``batch_sampler``, or in order in batches of ``data.batch_size``."""
        nw = self.cfg.data.num_workers
        batching: dict[str, Any] = ({"batch_sampler": batch_sampler} if batch_sampler is not None
                                    else {"batch_size": self.cfg.data.batch_size, "shuffle": False})
        return torch.utils.data.DataLoader(
            data, **batching, num_workers=nw, pin_memory=self.cuda, worker_init_fn=seed_worker if nw else None,
            generator=torch.Generator().manual_seed(seed), persistent_workers=nw > 0)


__all__ = ["EpochSampler", "RunBatches", "draw_weights"]
