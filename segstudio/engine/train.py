"""The trainer: one generator that yields typed events (DESIGN rule 5) and honours a cancel token within a batch.

    for event in train(config, dataset, run_dir=out):
        ...  # BatchEnd, EpochEnd, CheckpointSaved, Finished

Run folder: ``train_config.json``, ``checkpoints/last`` (every epoch and on cancel, with the state to resume),
``checkpoints/best`` (by ``config.monitor``), ``checkpoints/swa`` (with SWA), ``curves.csv``/``curves.png`` and
``run.json`` (summary, training seconds).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segstudio.core.atomic import atomic_write_text
from segstudio.datasets.base import Dataset
from segstudio.engine.augment import Augmenter, copy_paste, cutmix
from segstudio.engine.batches import RunBatches
from segstudio.engine.cancel import CancelToken
from segstudio.engine.checkpoint import (
    flatten_optimizer,
    load_training_state,
    snapshot_checkpoint,
    unflatten_optimizer,
)
from segstudio.engine.config import ConfigError, TrainConfig, validate
from segstudio.engine.curves import write_csv, write_png
from segstudio.engine.data import (
    Corrections,
    SegmentationData,
    balanced_class_weights,
    class_pixel_counts,
    fixed_split,
    single_threaded_opencv,
    split_samples,
)
from segstudio.engine.distributed import World
from segstudio.engine.events import BatchEnd, CheckpointSaved, EpochEnd, Event, Finished, RunStarted
from segstudio.engine.losses import CompositeLoss, build_loss
from segstudio.engine.models import build_model, members_loss, members_of
from segstudio.engine.optim import build_optimizer, lr_factor
from segstudio.engine.preprocess import normalize_batch
from segstudio.engine.run_writer import BackgroundWriter
from segstudio.engine.rundir import CONFIG_NAME, check_run_dir, claim_run_dir
from segstudio.engine.runtime import autocast_dtype, resolve_device, seed_everything
from segstudio.engine.task import Task, resolve_task
from segstudio.engine.valmetrics import MetricAccumulator

log = logging.getLogger(__name__)

#: training steps between two checks of a stop, with several processes on CUDA (every step otherwise)
STOP_EVERY = 10


def _monitor_value(cfg: TrainConfig, dice: float, iou: float, val_loss: float | None, per: Any) -> float:
    kind, _, cls = cfg.monitor.partition(":")
    if kind == "loss":
        return val_loss if val_loss is not None else math.nan
    if cls:
        for c in per:
            if c.name.lower() == cls.lower():
                return c.dice if kind == "dice" else c.iou
        raise ConfigError(f"monitor names class {cls!r}, which the dataset does not have.")
    return dice if kind == "dice" else iou


def _better(cfg: TrainConfig, value: float, best: float | None) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if cfg.monitor == "loss" else value > best


class _Trainer:
    """State of one run; ``run()`` is the generator. Kept as a class so that the steps read as small methods."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, *, run_dir: Path, cancel: CancelToken | None,
                 corrections: Corrections | None, resume: bool, init_from: Path | None = None,
                 val_ids: Sequence[str] | None = None, sample_weights: Mapping[str, float] | None = None,
                 world: World | None = None) -> None:
        validate(cfg)
        self.cfg, self.dataset, self.run_dir = cfg, dataset, run_dir
        self.cancel = cancel or CancelToken()
        self.world = world or World()
        self.device = resolve_device(self.world.device(cfg.device))
        self.cuda = self.device.type == "cuda"
        self.task: Task = resolve_task(dataset.schema, cfg.model.mode)
        names = [t.name for t in cfg.loss.terms]
        if "aux" in names and not cfg.model.aux_head:
            raise ConfigError("The loss has an 'aux' term but the model has no auxiliary head.", fix="Set model.aux_head=true.")
        seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.cuda:
            torch.backends.cudnn.benchmark = True
        self.splits = (fixed_split(dataset, val_ids, corrections=corrections) if val_ids is not None
                       else split_samples(dataset, cfg.data, task=self.task, seed=cfg.seed, corrections=corrections))
        common = dict(task=self.task, image_size=cfg.data.image_size, in_channels=cfg.model.in_channels,
                      corrections=corrections, cache_mb=cfg.data.cache_mb, crop=cfg.data.crop)
        self.augmenter = Augmenter(cfg.augment, self.task, seed=cfg.seed)
        self.train_data = SegmentationData(dataset, self.splits.train, augmenter=self.augmenter, **common)  # type: ignore[arg-type]
        self.val_data = SegmentationData(dataset, self.splits.val, **common)  # type: ignore[arg-type]
        if len(self.train_data) < self.world.size:
            raise ConfigError(f"The training split has {len(self.train_data)} sample(s), fewer than the "
                              f"{self.world.size} training processes.", fix="Start fewer processes.")
        # the batches (the device-resident split or a DataLoader), this process's share of each epoch
        self.batches = RunBatches(cfg, self.train_data, self.val_data, device=self.device, task=self.task,
                                  world=self.world, sample_weights=dict(sample_weights or {}))
        self.data_path, self.resident = self.batches.path, self.batches.resident
        n = len(self.batches)
        self.steps_per_epoch = min(n, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.model, self.sync_bn = self.world.sync_batchnorm(
            build_model(cfg.model, out_channels=self.task.out_channels, mode=self.task.mode),
            asked=cfg.distributed.sync_batchnorm,
            device=self.device)
        self.model = self.model.to(self.device)
        # channels-last convolutions: faster on CUDA, and on the CPU too (oneDNN: a lungs-lr step takes 16 % less
        # time in bf16 on this project's CPU, a bare U-Net step 15-24 % less in bf16 and float32); MPS's support is
        # partial
        self.channels_last = cfg.channels_last and self.device.type in ("cuda", "cpu")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        cw = self._class_weights()
        self.loss: CompositeLoss = build_loss(cfg.loss, self.task, class_weights=cw).to(self.device)
        self.optimizer = build_optimizer([*self.model.parameters(), *self.loss.parameters()], cfg.optim)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        # mixed precision where the device computes it natively: a CUDA card, or a CPU with bf16 instructions
        amp_dtype = autocast_dtype(self.device, cfg.amp)
        self.amp = amp_dtype is not None
        self.amp_dtype = amp_dtype or torch.float32
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda and amp_dtype == torch.float16)
        self.swa_model: torch.optim.swa_utils.AveragedModel | None = None
        self.swa_seconds: float | None = None
        self.swa_start = int(math.floor(cfg.swa_start * cfg.epochs)) if cfg.swa else None
        self.start_epoch, self.global_step, self.bad_epochs = 0, 0, 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.gen = torch.Generator().manual_seed(cfg.seed)
        #: batches of ``start_epoch`` already trained before a stop (a resume skips them), and their loss sum
        self.resume_step, self.resume_loss = 0, 0.0
        self._stopped = False
        self.writer: BackgroundWriter  # the run's writer thread, open while run() is
        self._plot_rows: list[dict[str, Any]] = []
        self._plot_queued = False
        if resume:
            self._restore(run_dir / "checkpoints" / "last")
        elif init_from is not None:
            self._init_weights(Path(init_from))
        # what a training step runs: the model, or its DDP wrapper under torchrun (an auxiliary head no loss term
        # trains leaves parameters without gradients, which DDP must be told of)
        self.net = self.world.wrap(self.model, self.device, unused_parameters=cfg.model.aux_head and "aux" not in names)

    # setup ------------------------------------------------------------------------------------------------------
    def _class_weights(self) -> torch.Tensor | None:
        cw = self.cfg.loss.class_weights
        if cw is None:
            return None
        if cw == "balanced":
            w = balanced_class_weights(class_pixel_counts(self.train_data))
            log.info("balanced class weights: %s", np.round(w, 3).tolist())
            return torch.from_numpy(w).to(self.device)
        if len(cw) != self.task.num_classes:
            raise ConfigError(f"loss.class_weights has {len(cw)} values; the dataset has {self.task.num_classes} classes.")
        return torch.tensor(cw, dtype=torch.float32, device=self.device)

    def _init_weights(self, path: Path) -> None:
        """Fine-tuning: start from another run's weights (same architecture, encoder and classes)."""
        from segstudio.engine.checkpoint import load_weights, read_info

        info = read_info(path)
        theirs, their_task = info.config.model, info.task
        mine = self.cfg.model

        def shape(m: Any) -> tuple[Any, ...]:
            return (m.architecture, m.encoder, m.encoder_depth, m.in_channels, m.aux_head, dict(m.params), m.members)

        problem = None
        if shape(mine) != shape(theirs) or their_task.out_channels != self.task.out_channels:
            problem = (f"it is a {theirs.describe()} with {their_task.out_channels} output(s), "
                       f"this run a {mine.describe()} with {self.task.out_channels}")
        else:
            try:
                self.model.load_state_dict(load_weights(info.path, device=str(self.device)))
            except RuntimeError as exc:  # same names, other shapes: a model changed outside segstudio
                problem = str(exc).splitlines()[0]
        if problem:
            raise ConfigError(f"Cannot fine-tune from {path}: {problem}.", path=path,
                              fix="Fine-tune with the base model's own config.")
        log.info("fine-tuning from %s", path)

    # state ------------------------------------------------------------------------------------------------------
    def _state(self, completed_epochs: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = flatten_optimizer(self.optimizer.state_dict())
        for k, v in self.loss.state_dict().items():
            tensors[f"loss.{k}"] = v
        if self.swa_model is not None:
            for k, v in self.swa_model.state_dict().items():
                tensors[f"swa.{k}"] = v
        meta.update(completed_epochs=completed_epochs, global_step=self.global_step, best=self.best,
                    bad_epochs=self.bad_epochs, history=self.history, train_seconds=self.train_seconds,
                    step_in_epoch=self.resume_step, epoch_loss_sum=self.resume_loss)
        return tensors, meta

    def _restore(self, path: Path) -> None:
        from segstudio.engine.checkpoint import CheckpointError, load_weights

        tensors, meta = load_training_state(path)
        try:
            self.model.load_state_dict(load_weights(path, device=str(self.device)))
            self.optimizer.load_state_dict(unflatten_optimizer(tensors, meta))
            self.loss.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
            swa = {k[4:]: v for k, v in tensors.items() if k.startswith("swa.")}
            if swa:
                self.swa_model = torch.optim.swa_utils.AveragedModel(self.model)
                self.swa_model.load_state_dict(swa)
            self.start_epoch = int(meta["completed_epochs"])
            self.global_step = int(meta["global_step"])
            self.best, self.bad_epochs = meta.get("best"), int(meta.get("bad_epochs", 0))
            self.history = list(meta.get("history", []))
            self.train_seconds = float(meta.get("train_seconds", 0.0))
            self.resume_step = int(meta.get("step_in_epoch", 0))
            self.resume_loss = float(meta.get("epoch_loss_sum", 0.0))
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
            raise CheckpointError(f"The last checkpoint's training state does not fit this run ({e}).", path=path,
                                  fix="Resume with the run's own train_config.json, or start a new run "
                                  "(a new --out).") from None
        log.info("resuming %s after epoch %d", self.run_dir, self.start_epoch)

    def _save(self, kind: str, *, epoch: int, completed: int, metrics: dict[str, Any], model: torch.nn.Module | None = None) -> CheckpointSaved:
        path = self.run_dir / "checkpoints" / kind
        saved = CheckpointSaved(path=path, epoch=epoch, kind=kind, monitor=metrics.get("monitor"), dice=metrics.get("dice"))
        if not self.world.is_main:  # rank 0 alone writes the run folder
            return saved
        state = self._state(completed) if kind == "last" else (None, None)
        # copied here, written by the run's writer thread while training goes on (engine/run_writer.py)
        self.writer.submit(snapshot_checkpoint(
            path, model=model or self.model, config=self.cfg, task=self.task, schema=self.dataset.schema,
            metrics=metrics, info={"epoch": epoch, "train_seconds": self.train_seconds},
            training_tensors=state[0], training_json=state[1]))
        return saved

    def _plot_curves(self) -> None:
        """curves.png is drawn on the writer thread, from the newest history when its turn comes (a slow plot
        never queues up one job per epoch)."""
        self._plot_rows = [dict(r) for r in self.history]
        if self._plot_queued or not self.world.is_main:
            return
        self._plot_queued = True

        def plot() -> None:
            self._plot_queued = False
            write_png(self._plot_rows, self.run_dir / "curves.png")

        self.writer.submit(plot)

    # steps ------------------------------------------------------------------------------------------------------
    def _set_lr(self, step: int) -> float:
        if self.swa_model is not None and self.cfg.swa_lr is not None:
            f = self.cfg.swa_lr / self.base_lrs[0]
        else:
            f = lr_factor(step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, cfg=self.cfg.schedule)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = base * f
        return self.base_lrs[0] * f

    def _inputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize_batch(x.to(self.device, non_blocking=True), self.cfg.data.normalize)
        y = y.to(self.device, non_blocking=True)
        if self.task.mode == "multilabel":
            y = y.float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        aug = self.cfg.augment
        # the step's own seed: a run resumed mid-epoch draws what an uninterrupted one would
        self.gen.manual_seed(self.cfg.seed * 1_000_003 + self.global_step)
        # dropout and the like: the step's own draws, each process its own
        torch.manual_seed((self.cfg.seed * 1_000_033 + self.global_step) * 1009 + self.world.rank)
        if aug.cutmix_p and float(torch.rand((), generator=self.gen)) < aug.cutmix_p:
            x, y = cutmix(x, y, gen=self.gen)
        if aug.copy_paste_p and float(torch.rand((), generator=self.gen)) < aug.copy_paste_p:
            bg = [i for i in range(self.task.num_classes) if i not in self.task.metric_indices] or [0]
            x, y = copy_paste(x, y, gen=self.gen, background=bg)
        self.optimizer.zero_grad(set_to_none=True)
        members = self.cfg.model.members
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            out = self.net(x)
            loss, parts = members_loss(self.loss, out, y, members) if members > 1 else self.loss(out, y)
        self.scaler.scale(loss).backward()
        if members > 1:
            loss, parts = loss / members, {k: v / members for k, v in parts.items()}
        self.world.mean_grads_(list(self.loss.parameters()))
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            for member in members_of(self.model):  # each member's own norm, as if it trained alone
                torch.nn.utils.clip_grad_norm_(member.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), parts

    @torch.no_grad()
    def _validate(self, model: torch.nn.Module) -> tuple[float | None, float, float, float, Any]:
        model.eval()
        acc = MetricAccumulator(self.task, device=self.device, thresholds=self.cfg.model.thresholds)
        total, n = torch.zeros((), dtype=torch.float64, device=self.device), 0
        for xb, yb in self.batches.validation():
            if self.cancel.cancelled and not self.world.active:  # a long validation must not outlast a cancel
                break
            x, y = self._inputs(xb, yb)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                logits = model(x)
                loss, _ = self.loss(logits, y)
            total += loss.double() * x.shape[0]
            n += x.shape[0]
            acc.update(logits.float(), y)
        model.train()
        # every process scored its share: the sums over all of them give every process the same scores
        count = torch.tensor(float(n), dtype=torch.float64, device=self.device)
        self.world.sum_(total, count, *acc.counts())
        dice, iou, pix, per = acc.result()
        return (float(total) / float(count) if float(count) else None), dice, iou, pix, per

    @torch.no_grad()
    def _update_bn(self, model: torch.nn.Module, epoch: int) -> None:
        """Recompute BatchNorm statistics of the SWA average over the training data (Izmailov et al. 2018)."""
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        moms = {m: m.momentum for m in bns}
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for xb, yb in self.batches.statistics_pass(epoch + 1):
            model(self._inputs(xb, yb)[0])
        for m, mom in moms.items():
            m.momentum = mom

    def _stop_agreed(self, step: int | None = None) -> bool:
        """Whether the run stops now: a cancel on any process stops every process at the same step. Between
        training steps, several CUDA processes agree every ``STOP_EVERY`` steps only: reading the agreed flag waits
        for the GPU, as reading the loss would."""
        if step is not None and self.cuda and self.world.active and step % STOP_EVERY:
            return False
        self._stopped = self.world.any(self.cancel.cancelled, self.device)
        return self._stopped

    # the generator ------------------------------------------------------------------------------------------------
    def run(self) -> Iterator[Event]:
        try:
            with single_threaded_opencv(self.cfg.data.num_workers > 0), BackgroundWriter() as self.writer:
                yield from self._run()
        finally:
            self.world.teardown()

    def _run(self) -> Iterator[Event]:
        cfg = self.cfg
        if self.world.is_main:
            atomic_write_text(self.run_dir / CONFIG_NAME, cfg.to_json())
        yield RunStarted(run_dir=self.run_dir, device=str(self.device), epochs=cfg.epochs, start_epoch=self.start_epoch,
                         steps_per_epoch=self.steps_per_epoch, train_samples=len(self.splits.train),
                         val_samples=len(self.splits.val), split_source=self.splits.source,
                         class_names=self.task.class_names, mode=self.task.mode,
                         precision=str(self.amp_dtype).removeprefix("torch."))
        self.model.train()
        cancelled = stopped_early = False
        epoch = completed = self.start_epoch
        epoch_times: list[float] = []
        session_steps, session_step_time = 0, 0.0
        last_saved: Path | None = None
        for epoch in range(self.start_epoch, cfg.epochs):
            t_epoch = time.perf_counter()
            seed_everything(cfg.seed + epoch)  # per-epoch seeding makes a resumed run repeat the same batches
            self.augmenter.reseed(cfg.seed * 7919 + epoch)
            if self.swa_start is not None and epoch >= self.swa_start and self.swa_model is None:
                self.swa_model = torch.optim.swa_utils.AveragedModel(self.model)
            run_loss, steps, loss_val = torch.zeros((), dtype=torch.float64, device=self.device), 0, math.nan
            skip = self.resume_step if epoch == self.start_epoch else 0
            if skip:  # a run stopped mid-epoch: the batches it trained are drawn again (same randomness) and skipped
                if self.world.is_main:  # the loss sum of every process's share (summed when it stopped)
                    run_loss += self.resume_loss
                steps = skip
                log.info("resuming epoch %d after its step %d", epoch + 1, skip)
            batches = islice(self.batches.train_epoch(epoch), self.steps_per_epoch)
            for step, (xb, yb) in enumerate(batches, start=1):
                if step <= skip:
                    continue
                if self._stop_agreed(step):
                    break
                t0 = time.perf_counter()
                lr = self._set_lr(self.global_step)
                loss, parts = self._train_step(*self._inputs(xb, yb))
                run_loss += loss.double()
                steps += 1
                self.global_step += 1
                # reading the loss syncs a GPU: do it every step on the CPU only, every 10th step on CUDA
                if not self.cuda or step % 10 == 0 or step == self.steps_per_epoch:
                    loss_val = float(loss)
                session_step_time += time.perf_counter() - t0
                session_steps += 1
                pace = session_step_time / session_steps
                left = self.total_steps - self.global_step
                eta = left * pace * (1.15 if self.val_data.samples else 1.0)
                yield BatchEnd(epoch=epoch, step=step, steps=self.steps_per_epoch, global_step=self.global_step,
                           loss=loss_val, lr=lr, eta_s=eta,
                           parts={k: float(v) for k, v in parts.items()} if not self.cuda or step % 10 == 0 else {})
            if self._stopped:
                cancelled = True
                self.train_seconds += time.perf_counter() - t_epoch
                # what the epoch trained is kept, and a resume goes on after it
                self.world.sum_(run_loss)
                self.resume_step, self.resume_loss = steps, float(run_loss)
                break
            self.resume_step, self.resume_loss = 0, 0.0
            self.world.mean_buffers_(self.model)  # one set of BatchNorm statistics, from every process's batches
            if self.swa_model is not None:
                self.swa_model.update_parameters(self.model)
            self.world.sum_(run_loss)  # the epoch's loss over every process's share
            train_loss = float(run_loss) / max(steps, 1) / self.world.size
            val_loss, dice, iou, pix, per = self._validate(self.model) if self.val_data.samples else (None, math.nan, math.nan, math.nan, ())
            self.train_seconds += time.perf_counter() - t_epoch
            completed = epoch + 1
            if self._stop_agreed():
                # cancelled while validating: the epoch's training is complete and kept, its scores are not
                cancelled = True
                break
            epoch_times.append(time.perf_counter() - t_epoch)
            monitor = _monitor_value(cfg, dice, iou, val_loss, per) if per else -train_loss
            improved = _better(cfg, monitor, self.best) if per else False
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "dice": dice, "iou": iou,
                   "pixel_accuracy": pix, "lr": self.optimizer.param_groups[0]["lr"], "seconds": epoch_times[-1]}
            row.update({f"dice:{c.name}": c.dice for c in per})
            row.update({f"iou:{c.name}": c.iou for c in per})
            self.history.append(row)
            eta = sum(epoch_times) / len(epoch_times) * (cfg.epochs - completed)
            yield EpochEnd(epoch=epoch, train_loss=train_loss, val_loss=val_loss, dice=dice, iou=iou, pixel_accuracy=pix,
                           per_class=tuple(per), lr=row["lr"], seconds=epoch_times[-1], eta_s=eta, monitor=monitor,
                           improved=improved)
            metrics = {k: v for k, v in row.items() if k != "lr"} | {"monitor": monitor, "monitor_name": cfg.monitor}
            if improved:
                self.best, self.bad_epochs = monitor, 0
                yield self._save("best", epoch=epoch, completed=completed, metrics=metrics)
            elif per:
                self.bad_epochs += 1
            stop = bool(cfg.early_stopping and self.bad_epochs >= cfg.early_stopping)
            if stop or completed == cfg.epochs or completed % cfg.save_every == 0:
                ev = self._save("last", epoch=epoch, completed=completed, metrics=metrics)
                last_saved = ev.path
                yield ev
            if self.world.is_main:
                write_csv(self.history, self.run_dir / "curves.csv")
            self._plot_curves()
            if stop:
                stopped_early = True
                break
        if cancelled:
            # keep what was learnt: the partial epoch is not counted, so a resume repeats it
            ev = self._save("last", epoch=epoch, completed=completed, metrics={"cancelled": True})
            last_saved = ev.path
            yield ev
        elif self.swa_model is not None:
            yield from self._finish_swa(epoch)
        self.writer.flush()  # every checkpoint and plot the events named is on disk before the run ends
        best_path = self.run_dir / "checkpoints" / "best"
        swa_path = self.run_dir / "checkpoints" / "swa"
        summary = Finished(run_dir=self.run_dir, best_checkpoint=best_path if best_path.exists() else None,
                           last_checkpoint=last_saved, best_monitor=self.best, epochs_completed=completed,
                           train_seconds=self.train_seconds, cancelled=cancelled, stopped_early=stopped_early,
                           weights_digest=self.world.digest(self.model),
                           swa_checkpoint=swa_path if self.swa_model is not None and swa_path.exists() else None)
        if not self.world.is_main:
            yield summary
            return
        atomic_write_text(self.run_dir / "run.json", json.dumps({
            "epochs_completed": completed, "train_seconds": self.train_seconds, "cancelled": cancelled,
            "stopped_early": stopped_early, "best_monitor": self.best, "monitor": cfg.monitor,
            # SWA's batch-norm pass over the training split after the last epoch: training, outside the epochs
            **({"swa_seconds": round(self.swa_seconds, 3)} if self.swa_seconds is not None else {}),
            "split": self.splits.source, "device": str(self.device), "data_path": self.data_path.name,
            "processes": self.world.size, "global_batch": self.cfg.data.batch_size * self.world.size,
            **({"sync_batchnorm": self.sync_bn} if self.world.active else {}),
            # where the images came from, so that `segstudio report RUN` finds them again
            "dataset": str(self.dataset.root), "dataset_format": self.dataset.format_name,
        }, indent=2, default=str))
        yield summary

    def _finish_swa(self, epoch: int) -> Iterator[Event]:
        assert self.swa_model is not None
        swa_net = self.swa_model.module
        t0 = time.perf_counter()
        self._update_bn(swa_net, epoch)
        self.swa_seconds = time.perf_counter() - t0
        metrics: dict[str, Any] = {"swa": True}
        if self.val_data.samples:
            val_loss, dice, iou, pix, per = self._validate(swa_net)
            monitor = _monitor_value(self.cfg, dice, iou, val_loss, per)
            metrics |= {"val_loss": val_loss, "dice": dice, "iou": iou, "pixel_accuracy": pix, "monitor": monitor,
                        "monitor_name": self.cfg.monitor}
            metrics |= {f"dice:{c.name}": c.dice for c in per}
            if _better(self.cfg, monitor, self.best):
                self.best = monitor
                yield self._save("best", epoch=epoch, completed=epoch + 1, metrics=metrics, model=swa_net)
        yield self._save("swa", epoch=epoch, completed=epoch + 1, metrics=metrics, model=swa_net)


def train(
    config: TrainConfig,
    dataset: Dataset,
    *,
    run_dir: str | Path,
    cancel: CancelToken | None = None,
    corrections: Corrections | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    val_ids: Sequence[str] | None = None,
    sample_weights: Mapping[str, float] | None = None,
) -> Iterator[Event]:
    """Train ``config`` on ``dataset`` (GT, with ``corrections`` overriding it), writing into ``run_dir``.

    Setup errors (bad config, unknown key, offline weights) raise before the first event. ``run_dir`` must be
    new, empty or a folder without a run (``RunExistsError`` otherwise: a trained model is never replaced), and
    writable. ``resume=True`` continues from ``run_dir/checkpoints/last`` (raise ``epochs`` in the config to
    train further).
    ``init_from``: a checkpoint folder whose weights the model starts from (fine-tuning; same architecture).
    ``val_ids``: a fixed validation split (sample ids) instead of the config's; every other labelled sample
    trains. ``sample_weights``: sample id -> how often it is drawn relative to the others (default 1).

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) every process calls this alike: it joins the process group,
    trains its share of each global batch and only rank 0 writes ``run_dir`` (``engine.distributed``).
    """
    world = World.from_env()
    world.setup(resolve_device(world.device(config.device)), config.distributed.backend)
    device = resolve_device(world.device(config.device))
    error: BaseException | None = None
    folder = Path(run_dir)
    try:
        folder = check_run_dir(folder, resume=resume)
    except Exception as exc:  # every process checks before rank 0 claims the folder, and all stop alike
        error = exc
    world.first_error(error, device)
    trainer: _Trainer | None = None
    try:
        trainer = _Trainer(config, dataset, run_dir=folder, cancel=cancel, corrections=corrections, resume=resume,
                           init_from=Path(init_from) if init_from is not None else None, val_ids=val_ids,
                           sample_weights=sample_weights, world=world)
        if world.is_main:
            claim_run_dir(folder, config=trainer.cfg, resume=resume)
    except Exception as exc:
        error = exc
    world.first_error(error, device)
    assert trainer is not None
    return trainer.run()


__all__ = ["train", "resolve_device", "seed_everything"]
