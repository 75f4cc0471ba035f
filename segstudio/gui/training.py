"""Training from the app: one run at a time, in the background, recorded in the workspace.

``TrainingController`` owns the worker and the run record; the training panel shows what it reports. A run
writes into ``<workspace>/runs/<id>/`` (the trainer's own files beside the record's ``config.json``) and its
record in ``ws.runs`` follows it: created → running → finished / cancelled / failed, with the best monitored
value. The engine is imported inside the worker's start function only, so nothing here costs a torch import
until a run starts.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.gui.workers import GeneratorWorker, guard_finite_loss
from segstudio.workspace import RunRecord, RunStatus, Workspace

log = logging.getLogger(__name__)

#: workspace state key of the model the user chose ("use this model"): {"run": id, "checkpoint": path}
MODEL_STATE_KEY = "model"
#: workspace state key of the validation split frozen for retraining rounds: {"ids": [...], "from_run": id}
VALIDATION_STATE_KEY = "retrain_validation"
#: default length of a retraining round (epochs of fine-tuning)
RETRAIN_EPOCHS = 5
#: in a retraining round's run folder: what it started from (a round is judged as a whole, so never resumed)
ROUND_FILE = "retrain.json"


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


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


def _write_comparison(folder: Path, comp: Any) -> None:
    """``comparison.json`` in the round's run folder: the before/after figures stay with the run."""
    doc = {"metric": comp.metric, "improved": comp.improved, "base_checkpoint": str(comp.base_checkpoint),
           "new_checkpoint": str(comp.new_checkpoint), "validation_ids": list(comp.val_ids),
           "reviewed_samples": comp.reviewed, "epochs": comp.epochs,
           "before": comp.before.to_dict(), "after": comp.after.to_dict()}
    _write_json(folder / "comparison.json", doc)


def read_comparison(folder: Path) -> dict[str, Any] | None:
    """What :func:`_write_comparison` wrote, or None (a training run, or an unreadable file)."""
    import json

    try:
        return dict(json.loads((folder / "comparison.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def model_checkpoint(run: RunRecord) -> Path | None:
    """The checkpoint a run offers as its model: ``best`` when it has one, else ``last``."""
    for kind in ("best", "last"):
        path = run.folder / "checkpoints" / kind
        if (path / "config.json").is_file():
            return path
    return None


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
        #: promote a retrained model by itself when it scores better (else the user decides)
        self.auto_promote = True

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.running

    def set_context(self, dataset: Dataset | None, workspace: Workspace | None) -> None:
        if self.running:
            raise SegstudioError("A training run is in progress.", fix="Stop it before opening another dataset.")
        self.dataset, self.workspace = dataset, workspace

    def runs(self) -> list[RunRecord]:
        return self.workspace.runs.all() if self.workspace is not None else []

    def chosen_model(self) -> Path | None:
        if self.workspace is None:
            return None
        value = self.workspace.state.get(MODEL_STATE_KEY)
        return Path(value["checkpoint"]) if isinstance(value, dict) and "checkpoint" in value else None

    def chosen_run_id(self) -> str | None:
        if self.workspace is None:
            return None
        value = self.workspace.state.get(MODEL_STATE_KEY)
        return str(value["run"]) if isinstance(value, dict) and value.get("run") else None

    def use_model(self, run_id: str, *, checkpoint: Path | None = None) -> Path:
        """Make ``run_id``'s best (else last) checkpoint — or ``checkpoint`` — the workspace's model."""
        if self.workspace is None:
            raise SegstudioError("No dataset is open.", fix="Open a dataset first.")
        run = self.workspace.runs.get(run_id)
        path = checkpoint if checkpoint is not None else model_checkpoint(run)
        if path is None or not (Path(path) / "config.json").is_file():
            raise SegstudioError(f"Run {run_id} has no checkpoint.", path=run.folder,
                                 fix="Choose a run that trained at least one epoch.")
        self.workspace.state.set(MODEL_STATE_KEY, {"run": run_id, "checkpoint": str(path)})
        self.sig_model_chosen.emit(Path(path))
        return Path(path)

    # retraining -------------------------------------------------------------------------------------------------
    def validation_ids(self) -> list[str] | None:
        """The frozen validation split of the retraining rounds (None until the first round fixes it)."""
        value = self.workspace.state.get(VALIDATION_STATE_KEY) if self.workspace is not None else None
        return [str(i) for i in value["ids"]] if isinstance(value, dict) and value.get("ids") else None

    def reset_validation(self) -> None:
        """Forget the frozen split: the next round chooses it again from the current model's config."""
        if self.workspace is not None:
            self.workspace.state.set(VALIDATION_STATE_KEY, None)

    def retrain(self, *, epochs: int = RETRAIN_EPOCHS, reviewed_weight: float | None = None,
                threads: int | None = None) -> RunRecord:
        """One round: fine-tune the current model on GT ∪ corrections (reviewed samples weighted), then score it
        and the current model on the frozen validation split. The verdict arrives as ``sig_retrain_compared``;
        a better model is promoted (``auto_promote``), a worse one waits for :meth:`promote`."""
        ws, dataset = self._check_idle()
        base = self.chosen_model()
        base_run = self.chosen_run_id()
        if base is None or base_run is None or not (base / "config.json").is_file():
            raise SegstudioError("There is no current model to retrain.",
                                 fix="Train a model first, or pick one in the run history (Use this model).")
        from segstudio.engine.config import TrainConfig, fine_tune_config  # plain Python: no torch

        weight = float(reviewed_weight if reviewed_weight is not None else ws.settings.reviewed_weight)
        if weight != ws.settings.reviewed_weight:
            ws.save_settings(ws.settings.replace(reviewed_weight=weight))
        base_cfg = TrainConfig.load(base / "config.json")
        config = fine_tune_config(base_cfg, epochs=epochs)
        try:
            base_name = ws.runs.get(base_run).name or base_run
        except SegstudioError:
            base_name = base_run
        run = ws.runs.create(config.to_dict(), name=f"retrain of {base_name}")
        _write_json(run.folder / ROUND_FILE, {"base_checkpoint": str(base), "base_run": base_run, "epochs": epochs,
                                              "reviewed_weight": weight})
        frozen = self.validation_ids()
        versions = ws.versions
        n_threads = threads or default_threads()
        self.last_comparison = None

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.data import corrections_from
            from segstudio.engine.retrain import retrain, validation_ids

            torch.set_num_threads(n_threads)
            val = frozen
            if val is None:
                val = list(validation_ids(dataset, base_cfg))
                ws.state.set(VALIDATION_STATE_KEY, {"ids": val, "from_run": base_run})
            return guard_finite_loss(retrain(dataset, base_checkpoint=base, run_dir=run.folder, val_ids=val,
                                             corrections=corrections_from(versions), reviewed_weight=weight,
                                             epochs=epochs, cancel=token))

        return self._start_job(run, config, job, what=f"retraining round from {base}", threads=n_threads)

    def promote(self, comparison: Any = None) -> Path:
        """Make the retrained model of ``comparison`` (default: the last round's) the current model."""
        comp = comparison if comparison is not None else self.last_comparison
        if comp is None or self.workspace is None:
            raise SegstudioError("There is no retrained model to promote.", fix="Run a retraining round first.")
        run_id = self._run_of(Path(comp.new_checkpoint))
        return self.use_model(run_id, checkpoint=Path(comp.new_checkpoint))

    def keep_previous(self, comparison: Any = None) -> Path:
        """Go back to the model a retraining round started from."""
        comp = comparison if comparison is not None else self.last_comparison
        if comp is None or self.workspace is None:
            raise SegstudioError("There is no retraining round to undo.")
        base = Path(comp.base_checkpoint)
        return self.use_model(self._run_of(base), checkpoint=base)

    def _run_of(self, checkpoint: Path) -> str:
        for run in self.runs():
            if checkpoint.resolve().is_relative_to(run.folder.resolve()):
                return run.id
        raise SegstudioError("That checkpoint belongs to no run of this workspace.", path=checkpoint)

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

        def job(token: Any) -> Iterator[Any]:
            import torch

            from segstudio.engine.data import corrections_from
            from segstudio.engine.train import train

            # process-wide; the panel's thread count is the user's say over how much CPU training may take
            torch.set_num_threads(n_threads)
            corrections = corrections_from(versions) if versions is not None else None
            return guard_finite_loss(train(config, dataset, run_dir=run.folder, cancel=token,
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
        path = getattr(ev, "path", None)
        kind = type(ev).__name__
        if kind == "CheckpointSaved" and getattr(ev, "kind", "") == "last" and path is not None:
            self.last_checkpoint = Path(path)
        elif kind == "Finished":
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
        if type(last).__name__ == "RetrainCompared":
            self._end_round(last, fin)
            return
        best = getattr(fin, "best_monitor", None)
        epochs = getattr(fin, "epochs_completed", 0)
        secs = getattr(fin, "train_seconds", 0.0)
        early = " (stopped early: no improvement)" if getattr(fin, "stopped_early", False) else ""
        self._end(RunStatus.FINISHED, message=f"{epochs} epoch(s) in {secs:.0f} s{early}", best=best)
        if self.chosen_model() is None and self.run is not None and model_checkpoint(self.run) is not None:
            # the first model of a workspace becomes its model: predicting and retraining work at once
            self.use_model(self.run.id)

    def _end_round(self, comp: Any, fin: Any) -> None:
        """A retraining round ended with a verdict: record it, promote a better model, tell the window."""
        self.last_comparison = comp
        run = self.run
        verdict = "better" if comp.improved else "not better"
        message = (f"fine-tuned {comp.epochs} epoch(s) in {getattr(fin, 'train_seconds', 0.0):.0f} s; "
                   f"{comp.metric} on {len(comp.val_ids)} validation image(s) {comp.before_value:.4f} → "
                   f"{comp.after_value:.4f} ({verdict})")
        if run is not None:
            _write_comparison(run.folder, comp)
        self.monitor_name = comp.metric
        self._end(RunStatus.FINISHED, message=message, best=comp.after_value)
        if comp.improved and self.auto_promote:
            self.promote(comp)
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
