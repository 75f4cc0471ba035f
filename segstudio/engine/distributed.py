"""Training on several processes with PyTorch's own distributed engine (``torchrun``, DistributedDataParallel).

``segstudio train`` runs unchanged under ``torchrun --nproc-per-node=N [--nnodes=M --rdzv-endpoint=HOST:PORT]``:
torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for each process, and ``World.from_env()`` reads them.
Without them (a plain run, the app) the world is one process and nothing here costs anything.

How a run is shared out (``docs/cluster.md``, How the training is distributed):

- ``data.batch_size`` is per process; a step trains on ``batch_size × world_size`` samples (the *global batch*).
- Every process draws the same epoch order (seeded by the run's seed and the epoch), cuts it into global batches
  and takes its own contiguous share of each (``shard_epoch``). One process with ``batch_size × N`` sees the same
  global batches, so N processes train what one would, up to float rounding and the losses' batch statistics.
- Gradients are averaged by DDP; the loss's own parameters (learnable term weights) are averaged here.
- BatchNorm's running statistics are averaged over the processes after each epoch (``distributed.sync_batchnorm``
  normalises with the global batch's statistics on CUDA instead of each process's own).
- Validation samples are dealt out round-robin and the metric counts summed over the processes, so every
  process gets the same scores and takes the same early-stopping and best-checkpoint decisions.
- Only rank 0 writes (config, checkpoints, curves, ``run.json``); every process resumes from ``checkpoints/last``.
- A cancel on any process (Ctrl+C, SIGTERM, the run folder's ``STOP`` file) stops all of them after the same step.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from segstudio.engine.config import ConfigError

log = logging.getLogger(__name__)

#: how long a collective waits for a missing process before the run fails (a rank that died, a node that hung)
TIMEOUT = datetime.timedelta(minutes=30)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"The environment variable {name}={value!r} is not a number.",
                          fix="Launch the distributed run with torchrun, which sets RANK, WORLD_SIZE and "
                          "LOCAL_RANK.") from None


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes (``rank`` of ``size``; ``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in the environment; a single process without it."""
        size = _env_int("WORLD_SIZE")
        if size is None or size <= 1:
            return cls()
        rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
        if rank is None or not 0 <= rank < size:
            raise ConfigError(f"WORLD_SIZE={size} but RANK={os.environ.get('RANK')!r} is not one of 0..{size - 1}.",
                              fix="Launch the distributed run with torchrun, which sets them.")
        return cls(rank=rank, size=size, local_rank=local if local is not None and local >= 0 else 0)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and prints progress."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The device name this process trains on: its own GPU (``cuda:LOCAL_RANK``) where the config lets the run
        use CUDA and the node has one, else what ``requested`` says."""
        if not self.active or requested not in ("auto", "cuda"):
            return requested
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ConfigError(f"Process {self.rank} has LOCAL_RANK {self.local_rank}, but this node has {count} "
                                  "GPU(s).", fix=f"Start at most {count} processes per node (--nproc-per-node).")
            return f"cuda:{self.local_rank}"
        return requested

    # collectives: no-ops for one process ----------------------------------------------------------------------
    def setup(self, device: torch.device, backend: str = "auto") -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU), once per process."""
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            return
        name = backend if backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        log.info("process %d of %d joins the %s process group", self.rank, self.size, name)
        if name == "nccl":  # bound to its device: NCCL sets up its communicator eagerly
            dist.init_process_group(backend=name, timeout=TIMEOUT, device_id=device)
        else:
            dist.init_process_group(backend=name, timeout=TIMEOUT)

    def teardown(self) -> None:
        """Leave the process group (at the end of the run)."""
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def sync_batchnorm(self, model: torch.nn.Module, *, asked: bool, device: torch.device) -> tuple[torch.nn.Module, bool]:
        """``(model, synchronised)``: with ``distributed.sync_batchnorm`` on several CUDA processes, BatchNorm
        layers normalise with the global batch's statistics; PyTorch has none on the CPU, which is said."""
        if not (self.active and asked):
            return model, False
        if device.type != "cuda":
            log.warning("distributed.sync_batchnorm: PyTorch synchronises BatchNorm on CUDA only; on the CPU each "
                        "process normalises with its own batch")
            return model, False
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), True

    def wrap(self, model: torch.nn.Module, device: torch.device, *, unused_parameters: bool) -> torch.nn.Module:
        """What a training step runs: ``model`` itself, or under torchrun its DistributedDataParallel wrapper (every
        process starts from rank 0's weights, broadcast, and averages its gradients with the others)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                       find_unused_parameters=unused_parameters)

    def digest(self, model: torch.nn.Module) -> str:
        """sha256 over the model's parameters and buffers in name order, for a distributed run (every process must
        end with the same); empty for one process."""
        if not self.active:
            return ""
        import hashlib

        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def sum_(self, *tensors: torch.Tensor) -> None:
        """Sum each tensor over the processes, in place."""
        if not self.active:
            return
        import torch.distributed as dist

        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def mean_grads_(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average the gradients of parameters DDP does not hold (the loss's learnable term weights)."""
        if not self.active:
            return
        for p in params:
            if p.grad is not None:
                self.sum_(p.grad)
                p.grad /= self.size

    def mean_buffers_(self, model: torch.nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm's running statistics) over the processes, in place: each
        process updated them with its own batches since DDP last copied rank 0's, and validation, the checkpoint
        and the next epoch should all see one set, learnt from every process's data."""
        if not self.active:
            return
        for b in model.buffers():
            if b.is_floating_point():
                self.sum_(b)
                b /= self.size

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when ``flag`` is true on any one (a cancel reaches all at the same step)."""
        if not self.active:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def first_error(self, error: BaseException | None, device: torch.device) -> None:
        """Raise on every process when one of them failed a step all must pass (the run folder check, say):
        the failing process re-raises its error, the others stop with a note naming it."""
        if self.any(error is not None, device):
            if error is not None:
                raise error
            raise ConfigError("Another training process failed to start; its error is printed above.")


def _keep_last(rest: int, full: int, world: World) -> bool:
    """Whether a last, partial global batch of ``rest`` samples trains: when it gives every process two samples
    (BatchNorm cannot normalise a batch of one), or when it is the epoch's only batch and every process gets one."""
    return rest >= 2 * world.size or (full == 0 and rest >= world.size)


def shard_epoch(order: torch.Tensor, *, batch_size: int, world: World) -> list[torch.Tensor]:
    """This process's batches of one epoch: ``order`` (every process the same) is cut into global batches of
    ``batch_size × world.size``; the process takes its contiguous share of each. A last, partial global batch is
    dealt out as evenly as it goes, or dropped when too small (``_keep_last``). Every process gets the same number
    of batches (``batches_per_epoch``)."""
    glob = batch_size * world.size
    full, rest = divmod(len(order), glob)
    batches = [order[i * glob + world.rank * batch_size:i * glob + (world.rank + 1) * batch_size] for i in range(full)]
    if rest and _keep_last(rest, full, world):
        batches.append(torch.tensor_split(order[full * glob:], world.size)[world.rank])
    return batches


def batches_per_epoch(n: int, *, batch_size: int, world: World) -> int:
    """How many batches ``shard_epoch`` gives each process for an epoch of ``n`` samples."""
    full, rest = divmod(n, batch_size * world.size)
    return full + (1 if rest and _keep_last(rest, full, world) else 0)


class EpochSampler:
    """A DataLoader batch sampler over ``n`` training samples: this process's batches of epoch ``epoch`` (set by
    ``set_epoch``, as ``DistributedSampler``'s). ``weights`` (``(n,)``) draws samples with replacement in proportion
    to them, an epoch keeping its length."""

    def __init__(self, n: int, *, batch_size: int, seed: int, world: World | None = None,
                 weights: torch.Tensor | None = None) -> None:
        self.n, self.batch_size, self.seed, self.weights = n, batch_size, seed, weights
        self.world = world or World()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """Every process's order of epoch ``epoch``: sample indices, the same on all of them."""
        gen = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        return torch.randperm(self.n, generator=gen)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        return shard_epoch(self.order(epoch), batch_size=self.batch_size, world=self.world)

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches(self.epoch):
            yield b.tolist()

    def __len__(self) -> int:
        return batches_per_epoch(self.n, batch_size=self.batch_size, world=self.world)


def shard_eval(n: int, world: World) -> list[int]:
    """This process's share of ``n`` validation samples, dealt round-robin (every sample scored exactly once)."""
    return list(range(world.rank, n, world.size))


__all__ = ["EpochSampler", "World", "shard_epoch", "batches_per_epoch", "shard_eval", "TIMEOUT"]
