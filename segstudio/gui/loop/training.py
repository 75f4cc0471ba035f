"""Training from the app: one run at a time, in the background, recorded in the workspace.

``TrainingController`` owns the worker and the run record; the training panel shows what it reports. A run
writes into ``<workspace>/runs/<id>/`` (the trainer's own files beside the record's ``config.json``) and its
record in ``ws.runs`` follows it: created → running → finished / cancelled / failed, with the best monitored
value. The engine is imported inside the worker's start function only, so nothing here costs a torch import
until a run starts.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.events import CheckpointSaved, Finished, RetrainCompared
from segstudio.engine.retrain import RETRAIN_EPOCHS, ROUND_FILE, plan_round, promote_round
from segstudio.gui.common.workers import GeneratorWorker, guard_finite_loss
from segstudio.workspace import ReviewStatus, RunRecord, RunStatus, SweepRecord, Workspace
from segstudio.workspace.models import ModelEvent, run_checkpoint

__all__ = ["RETRAIN_EPOCHS", "DeviceOption", "TrainingController", "default_threads", "detect_devices_job",
           "make_config", "read_curves", "recipe_description", "recipe_names", "run_checkpoint", "summarise"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DeviceOption:
    """A device the trainer can use: ``key`` is the config value (``cpu``, ``cuda:0``, ``mps``)."""

    key: str
    label: str


def default_threads() -> int:
    """Leave one core to the GUI thread: a training that takes every core makes the window stutter."""
    return max(1, (os.cpu_count() or 2) - 1)


def detect_devices_job(_token: Any) -> Iterator[tuple[DeviceOption, ...]]:
    """Worker start function: import torch (seconds, off the GUI thread) and list the usable devices."""
    import torch

    out = [DeviceOption("auto", "Automatic (best available)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(DeviceOption(f"cuda:{i}", f"CUDA {i}: {props.name} ({props.total_memory / 2**30:.0f} GiB)"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(DeviceOption("mps", "Apple GPU (MPS)"))
    out.append(DeviceOption("cpu", f"CPU ({os.cpu_count() or 1} cores)"))
    yield tuple(out)


def make_config(*, recipe: str | None, overrides: Sequence[str] = ()) -> Any:
    """A validated ``TrainConfig``: the recipe (or the defaults) with ``key=value`` overrides applied.
    Raises ``SegstudioError`` (ConfigError / UnknownKeyError) with a message for the user."""
    from segstudio.engine.config import TrainConfig  # the config module is plain Python: no torch
    from segstudio.engine.recipes import load_recipe

    cfg = load_recipe(recipe) if recipe else TrainConfig()
    return cfg.with_overrides(overrides) if overrides else cfg


def recipe_names() -> list[str]:
    from segstudio.engine.recipes import recipe_names as names

    return names()


def recipe_description(name: str) -> str:
    from segstudio.engine.recipes import describe

    return describe(name)


#: the most characters of a recipe's description the Training panel shows; the whole text is in its tooltip
SUMMARY_CHARS = 120


def summarise(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The whole sentences of ``text`` that fit ``limit`` characters (at least the first sentence), with an
    ellipsis when some are left out: a recipe's description says what it is first, and why its settings are what
    they are after. A sentence ends at ``.``, ``!`` or ``?`` before a space and a capital (not in "0.5", "e.g. a")."""
    text = text.strip()
    if len(text) <= limit:
        return text
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text)
    out = sentences[0]
    for s in sentences[1:]:
        if len(out) + 1 + len(s) > limit:
            break
        out += " " + s
    return text if len(out) >= len(text) else out + " …"


def read_curves(run_folder: Path) -> list[dict[str, float]]:
    """Rows of ``curves.csv`` (one per epoch) as floats; NaN where a value is missing; [] without the file."""
    path = run_folder / "curves.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows.append({k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()})
    return rows


def read_swa_score(run_folder: Path) -> tuple[float | None, float] | None:
    """``(monitor, mean Dice)`` of a run's SWA weights on its hold-out, from ``checkpoints/swa/config.json``; None
    without SWA weights, without a hold-out to score them on, or when the file cannot be read."""
    try:
        metrics = json.loads((run_folder / "checkpoints" / "swa" / "config.json").read_text(encoding="utf-8"))["metrics"]
        dice, monitor = metrics.get("dice"), metrics.get("monitor")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(dice, int | float) or not math.isfinite(dice):
        return None
    return (float(monitor) if isinstance(monitor, int | float) else None), float(dice)


class TrainingController(QObject):
    """Starts, follows and stops one training run; records it in the workspace.

    Signals: ``sig_run_started(RunRecord)``, ``sig_event(event)`` (engine events, GUI thread),
    ``sig_run_ended(RunRecord)`` (final status; for failures after ``sig_errored``), ``sig_errored(message,
    traceback)``, ``sig_model_chosen(Path)``."""

    sig_run_started = Signal(object)
    sig_event = Signal(object)
    sig_run_ended = Signal(object)
    sig_errored = Signal(str, str)
    sig_model_chosen = Signal(object)
    sig_retrain_compared = Signal(object, object)  # RunRecord, engine.retrain.RetrainCompared

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.workspace: Workspace | None = None
        self.worker: GeneratorWorker | None = None
        self.run: RunRecord | None = None
        self.monitor_name = ""
        self.last_checkpoint: Path | None = None
        self._finished: Any = None
        #: the verdict of the last retraining round (``engine.retrain.RetrainCompared``), until the next run
        self.last_comparison: Any = None
        #: who is named in the model history (the reviewer's name)
        self.author = ""
        #: the folder of the sweep holding the slot (see :meth:`occupy`), else of the last one
        self.sweep_folder: Path | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.running

    def set_context(self, dataset: Dataset | None, workspace: Workspace | None) -> None:
        if self.running:
            raise SegstudioError("A training run is in progress.", fix="Stop it before opening another dataset.")
        if self.workspace is not None and self.workspace is not workspace:
            self.workspace.events.model_changed.disconnect(self._on_workspace_model_changed)
        if workspace is not None and workspace is not self.workspace:
            # the registry says when the current model changed, whoever changed it: this window, or a round's
            # promotion in the worker thread (the Qt signal then reaches the GUI thread queued)
            workspace.events.model_changed.connect(self._on_workspace_model_changed)
        self.dataset, self.workspace = dataset, workspace

    def _on_workspace_model_changed(self, ev: ModelEvent) -> None:
        if ev.changed_current:
            self.sig_model_chosen.emit(Path(ev.checkpoint))

    def runs(self) -> list[RunRecord]:
        return self.workspace.runs.all() if self.workspace is not None else []

    def sweeps(self) -> list[SweepRecord]:
        """The workspace's sweeps (``ws.sweeps``); the one running in this controller's slot is known running."""
        running = self.sweep_folder if self.running else None
        return self.workspace.sweeps.all(running=running) if self.workspace is not None else []

    def find_run(self, run_id: str) -> RunRecord | None:
        """A run of the workspace or of one of its sweeps, by id (None when there is none by that id)."""
        if self.workspace is None:
            return None
        found = self.workspace.sweeps.find_run(run_id)
        if found is not None:
            return found[1].record()
        try:
            return self.workspace.runs.get(run_id)
        except SegstudioError:
            return None

    def occupy(self, worker: GeneratorWorker, *, sweep: Path) -> None:
        """A sweep (``gui.loop.sweep_jobs``) takes the one training slot: ``running``, Stop and closing the window
        cover it as they cover a run; ``sweep`` is its folder."""
        self._check_idle()
        self.worker, self.sweep_folder = worker, sweep

    # the current model (the workspace's model registry) -----------------------------------------------------------
    def chosen_model(self) -> Path | None:
        cur = self.workspace.models.current() if self.workspace is not None else None
        return cur.checkpoint if cur is not None else None

    def chosen_run_id(self) -> str | None:
        cur = self.workspace.models.current() if self.workspace is not None else None
        return cur.run_id or None if cur is not None else None

    def history(self) -> list[ModelEvent]:
        return self.workspace.models.history() if self.workspace is not None else []

    @property
    def auto_promote(self) -> bool:
        """Promote a retrained model by itself when the gate says so (the workspace's ``auto_promote``)."""
        return self.workspace.settings.auto_promote if self.workspace is not None else True

    @auto_promote.setter
    def auto_promote(self, on: bool) -> None:
        if self.workspace is not None and self.workspace.settings.auto_promote != on:
            self.workspace.save_settings(self.workspace.settings.replace(auto_promote=bool(on)))

    def use_model(self, run_id: str, *, checkpoint: Path | None = None, reason: str = "chosen in the run history",
                  ) -> Path:
        """Make ``run_id``'s best (else last) checkpoint — or ``checkpoint`` — the workspace's model."""
        if self.workspace is None:
            raise SegstudioError("No dataset is open.", fix="Open a dataset first.")
        run = self.find_run(run_id) or self.workspace.runs.get(run_id)  # the latter says that there is none
        path = checkpoint if checkpoint is not None else run_checkpoint(run.folder)
        if path is None or not (Path(path) / "config.json").is_file():
            raise SegstudioError(f"Run {run_id} has no checkpoint.", path=run.folder,
                                 fix="Choose a run that trained at least one epoch.")
        self.workspace.models.adopt(Path(path), run_id=run_id, reason=reason, author=self.author)
        return Path(path)

    # retraining -------------------------------------------------------------------------------------------------
    def validation_ids(self) -> list[str] | None:
        """The frozen validation split of the retraining rounds (None until the first round fixes it)."""
        split = self.workspace.models.validation_split() if self.workspace is not None else None
        return list(split.ids) if split is not None else None

    def reset_validation(self) -> None:
        """Forget the frozen split: the next round chooses it again from the current model's config."""
        if self.workspace is not None:
            self.workspace.models.reset_validation()

    def retrain(self, *, epochs: int = RETRAIN_EPOCHS, reviewed_weight: float | None = None,
                threads: int | None = None) -> RunRecord:
        """One round (``segstudio.engine.retrain``): fine-tune the current model on GT ∪ corrections (reviewed
        samples weighted), score it and the current model on the frozen validation split, let the promotion gate
        judge. The verdict arrives as ``sig_retrain_compared``; the engine records it in the model registry (a
        proven better model is promoted when ``auto_promote``), a refused one waits for :meth:`promote`."""
        ws, dataset = self._check_idle()
        plan = plan_round(ws, epochs=epochs, reviewed_weight=reviewed_weight, author=self.author)
        n_threads = threads or default_threads()
        self.last_comparison = None

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.retrain import run_round

            torch.set_num_threads(n_threads)
            return guard_finite_loss(run_round(ws, dataset, plan, cancel=token))

        return self._start_job(plan.run, plan.config, job, what=f"retraining round from {plan.base.checkpoint}",
                               threads=n_threads)

    def promote(self, comparison: RetrainCompared | None = None) -> Path:
        """Make the retrained model of ``comparison`` (default: the last round's) the current model, recorded as a
        person's decision with the round's figures."""
        comp = comparison if comparison is not None else self.last_comparison
        if comp is None or self.workspace is None:
            raise SegstudioError("There is no retrained model to promote.", fix="Run a retraining round first.")
        return promote_round(self.workspace, comp.run_id, author=self.author)

    def keep_previous(self, comparison: RetrainCompared | None = None) -> Path:
        """Go back to the model a retraining round started from (a rollback when the round's model was promoted)."""
        comp = comparison if comparison is not None else self.last_comparison
        if comp is None or self.workspace is None:
            raise SegstudioError("There is no retraining round to undo.")
        if self.chosen_model() == Path(comp.new_checkpoint):
            self.workspace.models.rollback(reason="the previous model kept after looking at the round",
                                           author=self.author)
        current = self.chosen_model()
        assert current is not None
        return current

    def rollback(self) -> Path:
        """Back to the model that was current before the current one."""
        if self.workspace is None:
            raise SegstudioError("No dataset is open.", fix="Open a dataset first.")
        return self.workspace.models.rollback(author=self.author).checkpoint

    def _check_idle(self) -> tuple[Workspace, Dataset]:
        if self.running:
            raise SegstudioError("A training run is in progress already.", fix="Stop it or wait for it to end.")
        if self.dataset is None or self.workspace is None:
            raise SegstudioError("No dataset is open.", fix="Open a dataset to train on.")
        return self.workspace, self.dataset

    def start(self, config: Any, *, threads: int | None = None, use_corrections: bool = True) -> RunRecord:
        """Record a new run of ``config`` (a ``TrainConfig``) and start training it in the background."""
        ws, _ = self._check_idle()
        run = ws.runs.create(config.to_dict(), name=config.name or config.model.architecture)
        return self._launch(run, config, threads=threads, use_corrections=use_corrections, resume=False)

    def can_resume(self, run: RunRecord) -> bool:
        """A stopped or failed run whose last checkpoint (with its optimiser state) is on disk."""
        return (run.status in (RunStatus.CANCELLED, RunStatus.FAILED)
                and not (run.folder / ROUND_FILE).is_file()  # a stopped round is run again, not resumed
                and (run.folder / "checkpoints" / "last" / "config.json").is_file()
                and (run.folder / "train_config.json").is_file())

    def resume(self, run_id: str, *, threads: int | None = None, use_corrections: bool = True) -> RunRecord:
        """Continue a stopped run from its last checkpoint, in its own folder, with its own config."""
        ws, _ = self._check_idle()
        run = ws.runs.get(run_id)
        if not self.can_resume(run):
            raise SegstudioError(f"Run {run.name or run.id} cannot be resumed: it is {run.status.value} or has no "
                                 "last checkpoint.", path=run.folder, fix="Start a new run instead.")
        from segstudio.engine.config import TrainConfig  # plain Python: no torch

        config = TrainConfig.load(run.folder / "train_config.json")
        return self._launch(run, config, threads=threads, use_corrections=use_corrections, resume=True)

    def _launch(self, run: RunRecord, config: Any, *, threads: int | None, use_corrections: bool,
                resume: bool) -> RunRecord:
        ws, dataset = self._check_idle()
        n_threads = threads or default_threads()
        versions = ws.versions if use_corrections else None
        # the labels the user rejected (judged wrong, not yet fixed) do not train
        rejected = ws.reviews.with_status(ReviewStatus.REJECTED)

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.data import corrections_from, excluding
            from segstudio.engine.train import train

            # process-wide; the panel's thread count is the user's say over how much CPU training may take
            torch.set_num_threads(n_threads)
            corrections = corrections_from(versions) if versions is not None else None
            return guard_finite_loss(train(config, excluding(dataset, rejected), run_dir=run.folder, cancel=token,
                                           corrections=corrections, resume=resume))

        return self._start_job(run, config, job, what="resumed" if resume else "started", threads=n_threads)

    def _start_job(self, run: RunRecord, config: Any, job: Any, *, what: str, threads: int) -> RunRecord:
        ws, _ = self._check_idle()
        self.run, self.monitor_name, self.last_checkpoint, self._finished = run, config.monitor, None, None
        self.worker = GeneratorWorker(job, name=f"train-{run.id}", parent=self)
        self.worker.sig_progress.connect(self._on_worker_progress)
        self.worker.sig_finished.connect(self._on_worker_finished)
        self.worker.sig_cancelled.connect(self._on_worker_cancelled)
        self.worker.sig_errored.connect(self._on_worker_errored)
        self.run = ws.runs.update(run.id, status=RunStatus.RUNNING)
        log.info("training run %s %s (%s, %d CPU threads)", run.id, what, config.device, threads)
        self.worker.start()
        self.sig_run_started.emit(self.run)
        return self.run

    def stop(self) -> None:
        """Ask the run to stop after the current batch; it saves its last checkpoint and ends as cancelled."""
        if self.worker is not None:
            self.worker.cancel()

    def stop_and_wait(self, timeout_s: float = 120.0) -> bool:
        """Stop and block until the run has saved its last checkpoint and its record is final."""
        return self.worker.stop_and_wait(timeout_s) if self.worker is not None else True

    # worker handlers --------------------------------------------------------------------------------------------
    def _on_worker_progress(self, ev: object) -> None:
        if isinstance(ev, CheckpointSaved) and ev.kind == "last":
            self.last_checkpoint = Path(ev.path)
        elif isinstance(ev, Finished):
            self._finished = ev
        self.sig_event.emit(ev)

    def _end(self, status: RunStatus, *, message: str, best: float | None = None) -> None:
        if self.run is None or self.workspace is None:
            return
        ok = best is not None and math.isfinite(best)
        self.run = self.workspace.runs.update(self.run.id, status=status, message=message,
                                              best_metric=best if ok else None,
                                              best_metric_name=self.monitor_name if ok else None)
        self.sig_run_ended.emit(self.run)

    def _on_worker_finished(self, last: object) -> None:
        fin = self._finished if self._finished is not None else last
        if isinstance(last, RetrainCompared):
            self._end_round(last)
            return
        best = getattr(fin, "best_monitor", None)
        epochs = getattr(fin, "epochs_completed", 0)
        secs = getattr(fin, "train_seconds", 0.0)
        early = " (stopped early: no improvement)" if getattr(fin, "stopped_early", False) else ""
        self._end(RunStatus.FINISHED, message=f"{epochs} epoch(s) in {secs:.0f} s{early}", best=best)
        if self.chosen_model() is None and self.run is not None and run_checkpoint(self.run.folder) is not None:
            # the first model of a workspace becomes its model: predicting and retraining work at once
            self.use_model(self.run.id, reason="the workspace's first model")

    def _end_round(self, comp: RetrainCompared) -> None:
        """A round ended with a verdict, which the engine recorded (run record, registry, comparison.json): show
        it."""
        self.last_comparison = comp
        if self.run is not None and self.workspace is not None:
            self.run = self.workspace.runs.get(self.run.id)
            self.sig_run_ended.emit(self.run)
        if self.run is not None:
            self.sig_retrain_compared.emit(self.run, comp)

    def _on_worker_cancelled(self, last: object) -> None:
        epochs = getattr(last, "epochs_completed", 0)
        where = f"; last checkpoint: {self.last_checkpoint}" if self.last_checkpoint is not None else ""
        self._end(RunStatus.CANCELLED, message=f"stopped by the user after {epochs} complete epoch(s){where}",
                  best=getattr(last, "best_monitor", None))

    def _on_worker_errored(self, message: str, details: str) -> None:
        self.sig_errored.emit(message, details)
        self._end(RunStatus.FAILED, message=message.splitlines()[0] if message else "failed")
