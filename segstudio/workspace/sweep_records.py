"""A sweep folder read as records: the plan (``sweep.json``), each run's status (``state.json``) and what each run's
trainer left (``runs/<name>/run.json``) — for the app's run history and anyone else who only looks.

The folder is the engine's (``segstudio.engine.sweep`` writes it; ``docs/cli.md`` describes it); its layout's
names live here, in ring 1, so that both read them from one place. Reading never raises over a sweep's files: a
folder that is gone is a record with condition ``missing``; a damaged ``sweep.json`` one with condition
``damaged`` and the reason; a damaged or missing ``state.json`` is read from the run folders, as the engine
rebuilds it when the sweep resumes, and the record says so in ``problem``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.workspace.records import RunRecord, RunStatus

log = logging.getLogger(__name__)

PLAN_NAME, STATE_NAME, LOCK_NAME, REPORT_NAME = "sweep.json", "state.json", "sweep.lock", "report.html"
RUNS_DIR = "runs"
STATUSES = ("pending", "running", "done", "failed", "stopped")
#: what makes a folder hold a trainer's run (``engine.rundir.RUN_MARKERS``; ring 1 cannot import the engine)
RUN_MARKERS = ("train_config.json", "run.json", "curves.csv", "checkpoints")
#: a plan larger than this is not a plan (1,000 runs with their resolved configs are a few MB)
MAX_PLAN_BYTES = 64 * 2**20
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"  # the engine's local-time stamps in state.json

_RUN_STATUS = {"pending": RunStatus.CREATED, "running": RunStatus.RUNNING, "done": RunStatus.FINISHED,
               "failed": RunStatus.FAILED, "stopped": RunStatus.CANCELLED}


@dataclass(frozen=True, kw_only=True)
class SweepRun:
    """One run of a sweep. ``id`` is ``<sweep id>/runs/<name>``; ``best_metric`` is its trainer's best monitored
    value (``run.json``), ``dice`` the mean validation Dice of the sweep's report (when one was written)."""

    id: str
    name: str
    sweep_name: str
    labels: tuple[tuple[str, str], ...]
    status: str
    folder: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    dice: float | None = None
    best_metric: float | None = None
    best_metric_name: str = ""
    epochs_completed: int | None = None
    train_seconds: float | None = None
    started: float | None = None
    updated: float | None = None

    @property
    def label(self) -> str:
        """The grid's values of this run, e.g. ``unet × focal × light``."""
        return " × ".join(label for _, label in self.labels) or self.name

    def record(self) -> RunRecord:
        """The run as the run history and the model registry take any run (its folder is a trainer's run folder)."""
        final = self.status in ("done", "failed", "stopped")
        if self.error:
            message = self.error
        elif self.epochs_completed is not None:
            secs = f", {self.train_seconds:.0f} s of training" if self.train_seconds is not None else ""
            message = f"{self.epochs_completed} epoch(s){secs}"
        else:
            message = self.status
        return RunRecord(id=self.id, config=dict(self.config), status=_RUN_STATUS[self.status], folder=self.folder,
                         created=self.started or self.updated or 0.0, name=f"{self.sweep_name} / {self.label}",
                         best_metric=self.best_metric, best_metric_name=self.best_metric_name, message=message,
                         started=self.started, finished=self.updated if final else None)


@dataclass(frozen=True, kw_only=True)
class SweepRecord:
    """A sweep as its folder says now. ``condition``: ``ok``, ``missing`` (the folder is gone) or ``damaged``
    (its plan cannot be read); ``problem`` says what is wrong and how to fix it (also for a damaged
    ``state.json`` of an ``ok`` sweep). ``running``: a sweep process holds the folder's lock now."""

    id: str
    name: str
    folder: Path
    referenced: bool
    condition: str = "ok"
    problem: str = ""
    runs: tuple[SweepRun, ...] = ()
    description: str = ""
    dataset: str = ""
    file: str = ""
    created: float = 0.0
    running: bool = False

    @property
    def report(self) -> Path | None:
        p = self.folder / REPORT_NAME
        return p if p.is_file() else None

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.runs)

    @property
    def status_text(self) -> str:
        """``3/6 done, stopped``, ``2/6 done, running``, ``5/6 done, 1 failed``, ``6/6 done``, ``missing``."""
        if self.condition != "ok":
            return self.condition
        c, total = self.counts(), len(self.runs)
        parts = [f"{c['done']}/{total} done"]
        if c["failed"]:
            parts.append(f"{c['failed']} failed")
        if self.running:
            parts.append("running")
        elif c["pending"] or c["stopped"] or c["running"]:
            parts.append("stopped" if c["done"] or c["failed"] or c["stopped"] else "not started")
        if self.problem:
            parts.append("state.json damaged")
        return ", ".join(parts)

    @property
    def resumable(self) -> bool:
        """Something is left to train (or the report to write) and nobody is training it now."""
        return self.condition == "ok" and not self.running and any(r.status != "done" for r in self.runs)

    def best(self) -> SweepRun | None:
        """The run with the best trainer's monitored value (lowest for a loss), when the runs share a monitor."""
        scored = [r for r in self.runs if r.best_metric is not None and math.isfinite(r.best_metric)]
        if not scored or len({r.best_metric_name for r in scored}) != 1:
            return None
        lower = scored[0].best_metric_name.split(":", 1)[0] == "loss"
        return (min if lower else max)(scored, key=lambda r: r.best_metric or 0.0)

    @property
    def train_seconds(self) -> float | None:
        secs = [r.train_seconds for r in self.runs if r.train_seconds is not None]
        return sum(secs) if secs else None

    @property
    def started(self) -> float:
        times = [r.started for r in self.runs if r.started is not None]
        return min(times) if times else self.created

    def run(self, name: str) -> SweepRun | None:
        return next((r for r in self.runs if r.name == name), None)


# reading a folder ----------------------------------------------------------------------------------------------
def _json(path: Path, limit: int = MAX_PLAN_BYTES) -> Any:
    if path.stat().st_size > limit:
        raise ValueError(f"{path.stat().st_size} bytes is too large")
    return json.loads(path.read_text(encoding="utf-8"))


def _stamp(text: Any) -> float | None:
    try:
        return time.mktime(time.strptime(str(text), STAMP_FORMAT))
    except (ValueError, OverflowError):
        return None


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _obj(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def lock_held(folder: Path) -> bool:
    """Whether a sweep process holds ``folder``'s lock now (asked with a shared lock, released at once)."""
    try:
        import fcntl
    except ImportError:  # Windows: the engine takes no lock; the state file is all there is
        return True
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _plan(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = _json(folder / PLAN_NAME)
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise ValueError("not a sweep plan (a JSON object with a list of runs)")
    runs = doc["runs"]
    for r in runs:
        if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not isinstance(r.get("labels", {}), dict):
            raise ValueError("a run without a name or with labels that are not an object")
    return doc, runs


def _state(folder: Path) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """The recorded state of each run, or None and why it cannot be used."""
    path = folder / STATE_NAME
    if not path.exists():
        return None, f"{path} is missing"
    try:
        doc = _json(path)
        runs = doc["runs"]
        if not isinstance(runs, dict):
            raise TypeError("'runs' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{path} is damaged ({type(e).__name__}: {e})"
    return {k: v for k, v in runs.items() if isinstance(v, dict) and v.get("status") in STATUSES}, ""


def _fallback_status(run_dir: Path, info: Mapping[str, Any] | None) -> str:
    if info is not None and not info.get("cancelled"):
        return "done"
    return "stopped" if any((run_dir / m).exists() for m in RUN_MARKERS) else "pending"


def _run_info(run_dir: Path) -> dict[str, Any] | None:
    try:
        doc = _json(run_dir / "run.json", limit=2**20)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_sweep(folder: Path, *, sweep_id: str, referenced: bool, running: bool | None = None) -> SweepRecord:
    """The record of the sweep in ``folder``; never raises over the folder's files (see the module's doc).
    ``running``: whether the caller knows the sweep runs now (None: ask the folder's lock)."""
    name = folder.name
    if not folder.is_dir():
        return SweepRecord(id=sweep_id, name=name, folder=folder, referenced=referenced, condition="missing",
                           problem=f"The sweep folder {folder} is missing (moved, deleted or on a drive that is not "
                                   "mounted). Fix: put it back, or remove the sweep from the run history.")
    try:
        doc, planned = _plan(folder)
    except (OSError, ValueError) as e:
        why = "there is no sweep.json" if isinstance(e, FileNotFoundError) else f"{type(e).__name__}: {e}"
        return SweepRecord(id=sweep_id, name=name, folder=folder, referenced=referenced, condition="damaged",
                           problem=f"The sweep plan {folder / PLAN_NAME} cannot be read ({why}). Fix: restore it "
                                   "from a backup, or run the sweep file into a new folder.")
    state, problem = _state(folder)
    if problem:
        log.warning("sweep %s: %s; the statuses are read from the run folders", folder, problem)
        problem = (f"{problem[0].upper()}{problem[1:]}; the statuses shown are read from the run folders. Fix: "
                   "resume the sweep, which rewrites it.")
    held = lock_held(folder) if running is None and state and any(
        v.get("status") == "running" for v in state.values()) else bool(running)
    runs = []
    for r in planned:
        run_dir = folder / RUNS_DIR / r["name"]
        info = _run_info(run_dir)
        entry = (state or {}).get(r["name"], {})
        status = str(entry.get("status")) if state is not None and entry else (
            _fallback_status(run_dir, info) if state is None else "pending")
        if status == "running" and not held:
            status = "stopped"  # its process ended without saying so (killed): the next pass resumes it
        info = info or {}
        best = _float(info.get("best_monitor"))
        epochs = info.get("epochs_completed")
        runs.append(SweepRun(
            id=f"{sweep_id}/{RUNS_DIR}/{r['name']}", name=r["name"], sweep_name=name,
            labels=tuple((str(k), str(v)) for k, v in r.get("labels", {}).items()), status=status, folder=run_dir,
            config=_obj(r.get("config")),
            error=str(entry.get("error") or ""), dice=_float(entry.get("dice")), best_metric=best,
            best_metric_name=str(info.get("monitor") or "") if best is not None else "",
            epochs_completed=epochs if isinstance(epochs, int) else None,
            train_seconds=_float(info.get("train_seconds")),
            started=_stamp(entry.get("started")) or _mtime(run_dir / RUN_MARKERS[0]),
            updated=_stamp(entry.get("updated")) or _mtime(run_dir / "run.json")))
    document, dataset = _obj(doc.get("document")), _obj(doc.get("dataset"))
    return SweepRecord(id=sweep_id, name=name, folder=folder, referenced=referenced, problem=problem,
                       runs=tuple(runs), description=str(document.get("description") or ""),
                       dataset=str(dataset.get("path") or ""), file=str(doc.get("file") or ""),
                       created=_mtime(folder / PLAN_NAME) or 0.0, running=held)


def is_sweep_folder(folder: Path) -> bool:
    return (folder / PLAN_NAME).is_file()
