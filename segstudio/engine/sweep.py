"""Sweeps: a grid of training configs (architectures × losses × augmentations, as papers tabulate them) trained
one after another into one folder, resumable after a stop, summarised by one report.

    plan = load_sweep(Path("lungs-sweep.json"))      # every run's config checked; nothing written yet
    for ev in run_sweep(plan, out=Path("sweeps/lungs"), cancel=token):
        ...  # SweepStarted, SweepRunStarted, the trainer's events, SweepRunEnded, report events, SweepFinished

The sweep folder: ``sweep.json`` (the plan: the file's content, every run's overrides and resolved config),
``state.json`` (each run pending / running / done / failed / stopped, rewritten atomically at every change),
``runs/<name>/`` (one trainer run folder each, named after its labels) and, when a pass ends, ``report.html``
with ``report.csv`` and ``report.json`` over the done runs. Running the same sweep again resumes it: done runs
are skipped, stopped (or failed) runs continue from their last checkpoint, pending ones start. A sweep file that
changed against the folder is refused unless it only adds runs. File format: ``docs/cli.md``.
:func:`load_sweep_folder` reads the plan back from a folder, to resume a sweep without its file (the app's
Resume); the workspace reads the folder as records (``segstudio.workspace.sweep_records``).

This module is longer than most: the file's checks, the folder's records and the loop that keeps them are read
together, since a resume depends on all three.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import TrainConfig
from segstudio.engine.jsonfile import read_json_document
from segstudio.engine.rundir import RunFolderError, check_run_dir, free_run_dir, holds_run

# the folder's names are read by the workspace too (its run history lists sweeps): one definition, in ring 1
from segstudio.workspace.sweep_records import (
    LOCK_NAME,
    PLAN_NAME,
    REPORT_NAME,
    RUNS_DIR,
    STAMP_FORMAT,
    STATE_NAME,
    STATUSES,
)

log = logging.getLogger(__name__)

SWEEP_KEYS = ("description", "dataset", "recipe", "config", "set", "grid")
DATASET_KEYS = ("path", "format")
DISCARDED_DIR = "discarded"
#: most runs one sweep file may ask for (a typo in a grid should not queue a year of training)
MAX_RUNS = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_FIX = "Correct the sweep file (docs/cli.md, segstudio sweep, describes it)."


class SweepError(SegstudioError):
    """A sweep file or a sweep folder cannot be used; names the file and the fix."""


@dataclass(frozen=True, kw_only=True)
class PlannedRun:
    name: str
    #: (axis, label) in the grid's order
    labels: tuple[tuple[str, str], ...]
    #: the grid's overrides of this run (after the sweep's common ``set``)
    overrides: tuple[str, ...]
    config: TrainConfig


@dataclass(frozen=True, kw_only=True)
class SweepPlan:
    source: Path
    document: dict[str, Any]
    dataset: Path
    format: str | None
    runs: tuple[PlannedRun, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "file": str(self.source), "document": self.document,
                "dataset": {"path": str(self.dataset), "format": self.format},
                "runs": [{"name": r.name, "labels": dict(r.labels), "overrides": list(r.overrides),
                          "config": r.config.to_dict()} for r in self.runs]}


# events ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SweepStarted:
    out: Path
    total: int
    done: int


@dataclass(frozen=True, kw_only=True)
class SweepRunStarted:
    name: str
    index: int
    total: int
    resume: bool


@dataclass(frozen=True, kw_only=True)
class SweepRunEnded:
    name: str
    index: int
    status: str
    error: str | None
    epochs_completed: int | None


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    name: str
    status: str
    dice: float | None
    error: str | None


@dataclass(frozen=True, kw_only=True)
class SweepFinished:
    out: Path
    rows: tuple[SweepRow, ...]
    #: the HTML report written by this pass (None when stopped, nothing was done, or it failed)
    report: Path | None
    report_error: str | None
    stopped: bool

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.rows) or self.report_error is not None


# the sweep file ----------------------------------------------------------------------------------------------
def run_name(labels: tuple[tuple[str, str], ...]) -> str:
    """The run's folder name: its labels joined by ``__``, each reduced to ``A-Z a-z 0-9 . _ + = -``."""
    parts = [(_UNSAFE.sub("-", label).strip(".- ") or "x")[:48] for _, label in labels]
    name = "__".join(parts)
    return name + "_" if name.split(".")[0].upper() in _RESERVED else name


def _bad(message: str, path: Path, fix: str = _FIX) -> SweepError:
    return SweepError(message, path=path, fix=fix)


def _overrides(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise _bad(f"{where} must be a list of KEY=VALUE strings, e.g. [\"loss.terms=focal\"].", path)
    return tuple(value)


def _apply(base: TrainConfig, overrides: tuple[str, ...], where: str, path: Path) -> TrainConfig:
    try:
        return base.with_overrides(overrides)
    except SegstudioError as e:
        culprit = next((o for o in overrides if _refused(base, o)), None)
        what = f"the override {culprit!r}" if culprit else f"the overrides {list(overrides)}"
        raise _bad(f"{where}: the config refuses {what}: {e.message}", path,
                   fix=e.fix or "Use a config key and value docs/training.md lists.") from None


def _refused(base: TrainConfig, override: str) -> bool:
    try:
        base.with_overrides([override])
    except SegstudioError:
        return True
    return False


def _check_registries(cfg: TrainConfig) -> None:
    """What the config accepts but a registry would refuse only when training starts."""
    from segstudio.core.errors import UnknownKeyError
    from segstudio.engine.augment import preset_names
    from segstudio.engine.config import ConfigError
    from segstudio.engine.losses import loss_names
    from segstudio.engine.models import check_encoder

    check_encoder(cfg.model.architecture, cfg.model.encoder)
    for term in cfg.loss.terms:
        if term.name not in loss_names():
            raise UnknownKeyError("loss", term.name, loss_names())
    if cfg.augment.preset not in preset_names():
        raise UnknownKeyError("augmentation preset", cfg.augment.preset, preset_names())
    if any(t.name == "aux" for t in cfg.loss.terms) and not cfg.model.aux_head:
        raise ConfigError("The loss has an 'aux' term but the model has no auxiliary head.",
                          fix="Set model.aux_head=true, or leave 'aux' out of loss.terms.")


def _base_config(doc: Mapping[str, Any], path: Path) -> TrainConfig:
    from segstudio.engine.recipes import load_recipe

    if "recipe" in doc and "config" in doc:
        raise _bad("The sweep file names both a recipe and a config file.", path, fix="Keep one of them.")
    try:
        if "recipe" in doc:
            if not isinstance(doc["recipe"], str):
                raise _bad("'recipe' must be a recipe name, e.g. \"lungs-lr\".", path)
            return load_recipe(doc["recipe"])
        if "config" in doc:
            if not isinstance(doc["config"], str):
                raise _bad("'config' must be the path of a training config JSON file.", path)
            return TrainConfig.load(path.parent / Path(doc["config"]).expanduser())
    except SweepError:
        raise
    except SegstudioError as e:
        where = f" ({e.path})" if e.path is not None else ""
        raise _bad(f"The sweep's base config cannot be used{where}: {e.message}", path,
                   fix=e.fix or "Name a recipe segstudio has, or an existing config file.") from None
    return TrainConfig()


def _dataset(doc: Mapping[str, Any], path: Path) -> tuple[Path, str | None]:
    ds = doc.get("dataset")
    if isinstance(ds, Mapping):
        unknown = [k for k in ds if k not in DATASET_KEYS]
        if unknown or not isinstance(ds.get("path"), str) or not isinstance(ds.get("format", ""), str | None):
            raise _bad(f"'dataset' must be a path, or {{\"path\": PATH, \"format\": NAME}} (unknown key(s): "
                       f"{', '.join(map(str, unknown)) or 'none'}).", path)
        where, fmt = ds["path"], ds.get("format") or None
    elif isinstance(ds, str):
        where, fmt = ds, None
    else:
        raise _bad("The sweep file needs a 'dataset': the dataset folder or annotation file to train on.", path)
    p = Path(where).expanduser()
    p = p if p.is_absolute() else path.parent / p
    if not p.exists():
        raise _bad(f"The sweep's dataset {p} does not exist.", path,
                   fix="Correct 'dataset' in the sweep file (a relative path is read from the sweep file's folder).")
    return p.resolve(), fmt


def load_sweep(path: str | Path, *, dataset: str | Path | None = None, format: str | None = None) -> SweepPlan:  # noqa: A002
    """Read and check a sweep file: its keys, the dataset's existence, the base config, and every run's config
    (each override, each combination, and the architecture, encoder, loss and augmentation registries). Any
    problem is a :class:`SweepError` naming the file; nothing is written. ``dataset`` (read as ``format``): what
    the sweep trains on when the file names no dataset (the app's open dataset); the file's own wins."""
    src = Path(path).expanduser()
    doc = read_json_document(src, error=SweepError, what="sweep file")
    if not isinstance(doc, dict):
        raise _bad("A sweep file is a JSON object with 'dataset', 'recipe' or 'config', 'set' and 'grid'.", src)
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        raise _bad(f"Unknown key(s) in the sweep file: {', '.join(map(repr, unknown))}. Valid keys: "
                   f"{', '.join(SWEEP_KEYS)}.", src)
    if "dataset" in doc or dataset is None:
        return _plan(doc, src, _dataset(doc, src))
    where = Path(dataset).expanduser()
    if not where.exists():
        raise _bad(f"The dataset {where} to train the sweep on does not exist.", src,
                   fix="Open the dataset again, or name one in the sweep file's 'dataset'.")
    return _plan(doc, src, (where.resolve(), format or None))


def load_sweep_folder(folder: str | Path) -> SweepPlan:
    """The plan a sweep folder records (``sweep.json``: the sweep file's content as it was, and its dataset),
    checked as :func:`load_sweep` checks a file: to resume a sweep whose file is gone, moved or edited since, or
    that trained on the app's open dataset. A damaged plan or a dataset that is not there is a
    :class:`SweepError` with the fix."""
    out = Path(folder).expanduser()
    recorded = read_json_document(out / PLAN_NAME, error=SweepError, what="sweep plan")
    try:
        doc, source, ds = recorded["document"], Path(recorded["file"]), recorded["dataset"]
        where, fmt = Path(ds["path"]).expanduser(), ds.get("format") or None
        if not isinstance(doc, dict):
            raise TypeError(doc)
    except (KeyError, TypeError):
        raise SweepError(f"The sweep folder's {PLAN_NAME} is damaged.", path=out / PLAN_NAME,
                         fix="Restore it, or run the sweep file into a new folder.") from None
    if not where.exists():
        raise SweepError(f"The sweep's dataset {where} is not there on this computer.", path=out / PLAN_NAME,
                         fix="Mount or copy the dataset to that path, or run the sweep file (its 'dataset' "
                             "corrected) into a new folder.")
    return _plan(doc, source, (where.resolve(), fmt))


def _plan(doc: dict[str, Any], src: Path, ds: tuple[Path, str | None]) -> SweepPlan:
    dataset, fmt = ds
    common = _overrides(doc.get("set", []), "'set'", src)
    base = _apply(_base_config(doc, src), common, "'set'", src)
    grid = doc.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise _bad("The sweep file needs a 'grid': axes, each an object of label -> list of overrides.", src)
    axes: list[list[tuple[str, str, tuple[str, ...]]]] = []
    for axis, values in grid.items():
        if not isinstance(values, dict) or not values:
            raise _bad(f"The grid's axis {axis!r} is empty: it needs at least one value (a label and its "
                       f"overrides, e.g. {{\"focal\": [\"loss.terms=focal\"]}}).", src)
        row = []
        for label, value in values.items():
            if not label.strip():
                raise _bad(f"The grid's axis {axis!r} has an empty label.", src)
            over = _overrides(value, f"grid.{axis}.{label}", src)
            _apply(base, over, f"grid.{axis}.{label}", src)
            row.append((axis, label, over))
        axes.append(row)
    total = 1
    for row in axes:
        total *= len(row)
    if total > MAX_RUNS:
        raise _bad(f"The grid asks for {total} runs; a sweep holds at most {MAX_RUNS}.", src,
                   fix="Split it into several sweep files.")
    runs: list[PlannedRun] = []
    seen: dict[str, str] = {}
    for combo in itertools.product(*axes):
        labels = tuple((axis, label) for axis, label, _ in combo)
        over = tuple(o for *_, os_ in combo for o in os_)
        shown = " × ".join(label for _, label in labels)
        name = run_name(labels)
        if name in seen:
            raise _bad(f"The runs {seen[name]!r} and {shown!r} get the same folder name {name!r}.", src,
                       fix="Make the labels differ in their letters or digits.")
        seen[name] = shown
        cfg = _apply(base, over, f"the run {shown}", src)
        try:
            _check_registries(cfg)
        except SegstudioError as e:
            raise _bad(f"The run {shown} cannot train: {e.message}", src, fix=e.fix or _FIX) from None
        runs.append(PlannedRun(name=name, labels=labels, overrides=over, config=cfg))
    return SweepPlan(source=src.resolve(), document=doc, dataset=dataset, format=fmt, runs=tuple(runs))


# the sweep folder --------------------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x))


def check_folder(plan: SweepPlan, out: Path) -> dict[str, dict[str, Any]]:
    """Check ``out`` against ``plan`` without writing: new or empty, or a sweep of the same runs (more runs
    are allowed). Returns the recorded state of each run (an empty dict for a new folder)."""
    if out.exists() and not out.is_dir():
        raise SweepError("The sweep folder path is a file.", path=out, fix="Give --out a folder name.")
    if not (out / PLAN_NAME).is_file():
        if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
            raise SweepError(f"This folder holds other files and no {PLAN_NAME}: it is not a sweep folder.",
                             path=out, fix="Give --out a new or empty folder.")
        return {}
    old = read_json_document(out / PLAN_NAME, error=SweepError, what="sweep plan")
    try:
        old_runs = {r["name"]: r["config"] for r in old["runs"]}
        old_ds = old["dataset"]
    except (KeyError, TypeError):
        raise SweepError(f"The sweep folder's {PLAN_NAME} is damaged.", path=out / PLAN_NAME,
                         fix="Restore it, or run the sweep into a new --out folder.") from None
    new_runs = {r.name: _jsonable(r.config.to_dict()) for r in plan.runs}
    problems = []
    if old_ds != {"path": str(plan.dataset), "format": plan.format}:
        problems.append(f"the dataset was {old_ds.get('path')} and is now {plan.dataset}")
    removed = [n for n in old_runs if n not in new_runs]
    changed = [n for n in old_runs if n in new_runs and new_runs[n] != old_runs[n]]
    if removed:
        problems.append(f"run(s) no longer in the grid: {', '.join(removed)}")
    if changed:
        problems.append(f"run(s) whose config changed: {', '.join(changed)}")
    if problems:
        raise SweepError(f"The sweep file {plan.source} does not match the sweep in this folder: "
                         f"{'; '.join(problems)}. A sweep folder only takes added runs.", path=out / PLAN_NAME,
                         fix="Undo the change, or run the changed sweep into a new --out folder.")
    return _read_state(plan, out)


def _read_state(plan: SweepPlan, out: Path) -> dict[str, dict[str, Any]]:
    """The recorded state; a missing or damaged ``state.json`` is rebuilt from the run folders."""
    try:
        doc = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))
        runs = {k: dict(v) for k, v in doc["runs"].items() if isinstance(v, dict) and v.get("status") in STATUSES}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("sweep %s: %s missing or unreadable; rebuilt from the run folders", out, STATE_NAME)
        runs = {}
        for r in plan.runs:
            folder = out / RUNS_DIR / r.name
            info = _run_info(folder)
            status = "done" if info and not info.get("cancelled") else "stopped" if holds_run(folder) else "pending"
            runs[r.name] = {"status": status}
    return runs


def _run_info(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def run_status(plan: SweepPlan, out: Path) -> dict[str, str]:
    """Each planned run's status in ``out`` (pending where the folder has none); checks the folder first."""
    state = check_folder(plan, out)
    return {r.name: str(state.get(r.name, {}).get("status", "pending")) for r in plan.runs}


class _State:
    def __init__(self, plan: SweepPlan, out: Path, recorded: dict[str, dict[str, Any]]) -> None:
        self.path = out / STATE_NAME
        self.runs = {r.name: recorded.get(r.name) or {"status": "pending"} for r in plan.runs}

    def set(self, name: str, status: str, **fields: Any) -> None:
        entry = self.runs[name]
        entry.update(fields, status=status, updated=time.strftime(STAMP_FORMAT))
        if status != "failed":
            entry.pop("error", None)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {"version": 1, "runs": self.runs})


class _Lock:
    """One sweep process per folder: an ``flock`` the kernel drops however the process ends."""

    def __init__(self, out: Path) -> None:
        self.fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SweepError("Another segstudio sweep is running in this folder.", path=out,
                             fix="Wait for it to end (or stop it with Ctrl+C), then run the command again.") from None

    def release(self) -> None:
        os.close(self.fd)


def _prepare(folder: Path, out: Path) -> bool:
    """Ready a run's folder; True when the run continues from its last checkpoint. A folder that holds a run
    without one (stopped before its first checkpoint) starts over: trainer files without weights are removed,
    partial weights are moved to ``discarded/``."""
    if not holds_run(folder):
        return False
    try:
        check_run_dir(folder, resume=True)
        return True
    except RunFolderError:
        pass
    ckpts = folder / "checkpoints"
    if ckpts.is_dir() and any(ckpts.iterdir()):
        dest = out / DISCARDED_DIR / folder.name
        dest = free_run_dir(dest) if dest.exists() else dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(dest)
        log.warning("sweep: %s had no resumable checkpoint; moved to %s and started over", folder, dest)
    else:
        shutil.rmtree(folder)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# the run loop ------------------------------------------------------------------------------------------------
def run_sweep(plan: SweepPlan, *, out: str | Path, cancel: CancelToken | None = None, device: str | None = None,
              worst: int = 6, dataset: Dataset | None = None, report_only: bool = False) -> Generator[Any, None, None]:
    """Train the plan's runs that are not done into ``out`` one after another, then report on the done ones
    (``report_only``: train nothing, only write the report over the runs done so far).

    Raises before the first event when the folder holds another sweep or a changed one, or the dataset cannot
    be opened. A run that raises is recorded as failed and the next one starts; a cancelled run (``cancel``,
    or a ``KeyboardInterrupt`` through the generator) keeps its last checkpoint, is recorded as stopped and
    ends the pass without a report. ``device`` overrides the configs' device for this pass only."""
    from segstudio.datasets.registry import open_dataset

    folder = Path(out).expanduser()
    check_folder(plan, folder)
    if dataset is None:
        try:
            dataset = open_dataset(plan.dataset, format=plan.format)
        except SegstudioError as e:
            raise SweepError(f"The sweep's dataset cannot be opened: {e.message}", path=e.path or plan.dataset,
                             fix=e.fix or "Correct 'dataset' in the sweep file.") from None
    check_scorable(plan, dataset)
    return _run(plan, folder, cancel or CancelToken(), device, worst, dataset, report_only)


def check_scorable(plan: SweepPlan, dataset: Dataset) -> None:
    """Refuse, before anything trains, a plan whose runs the report could not score: a run trained on every image
    (``data.val_fraction=0``, as the small-data recipes train) of a dataset without a validation split of its own
    has no unseen image to be compared on."""
    from segstudio.engine.data import holds_out

    blind = [r.name for r in plan.runs if not holds_out(dataset, r.config.data)]
    if blind:
        names = ", ".join(blind[:4]) + (f" and {len(blind) - 4} more" if len(blind) > 4 else "")
        raise SweepError(f"A sweep compares its runs on their hold-out, and {len(blind)} of its {len(plan.runs)} "
                         f"run(s) train on every image ({names}): nothing unseen would score them.",
                         path=plan.source,
                         fix="Add \"data.val_fraction=0.2\" to the sweep file's \"set\" so that every run keeps a "
                             "hold-out (or cross-validate one recipe with segstudio cv).")


def _run(plan: SweepPlan, out: Path, cancel: CancelToken, device: str | None, worst: int,
         dataset: Dataset, report_only: bool) -> Generator[Any, None, None]:
    from segstudio.engine.events import Finished
    from segstudio.engine.train import train

    out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    try:
        state = _State(plan, out, check_folder(plan, out))
        doc = plan.to_dict()
        if not (out / PLAN_NAME).is_file() or read_json_document(out / PLAN_NAME, error=SweepError,
                                                                  what="sweep plan") != _jsonable(doc):
            atomic_write_json(out / PLAN_NAME, doc)
        state.save()
        total = len(plan.runs)
        yield SweepStarted(out=out, total=total, done=sum(e["status"] == "done" for e in state.runs.values()))
        stopped = False
        for index, run in enumerate(plan.runs):
            run_dir = out / RUNS_DIR / run.name
            if report_only:
                continue
            if state.runs[run.name]["status"] == "done":
                if (run_dir / "checkpoints").is_dir():
                    continue
                log.warning("sweep: %s was done but its checkpoints are gone; training it again", run_dir)
            if cancel.cancelled:
                stopped = True
                break
            resume = _prepare(run_dir, out)
            cfg = run.config if device is None else run.config.with_overrides([f"device={device}"])
            state.set(run.name, "running", started=state.runs[run.name].get("started") or time.strftime(STAMP_FORMAT))
            yield SweepRunStarted(name=run.name, index=index, total=total, resume=resume)
            finished: Finished | None = None
            error: str | None = None
            try:
                for ev in train(cfg, dataset, run_dir=run_dir, cancel=cancel, resume=resume):
                    if isinstance(ev, Finished):
                        finished = ev
                    yield ev
            except (KeyboardInterrupt, GeneratorExit, SystemExit):
                state.set(run.name, "stopped")
                raise
            except Exception as exc:  # one run's failure is recorded; the sweep goes on
                log.exception("sweep: run %s failed", run.name)
                error = _first_line(exc)
            epochs = finished.epochs_completed if finished is not None else None
            status = "failed" if error else "stopped" if finished is None or finished.cancelled else "done"
            state.set(run.name, status, error=error, epochs_completed=epochs)
            yield SweepRunEnded(name=run.name, index=index, status=status, error=error, epochs_completed=epochs)
            if status == "stopped":
                stopped = True
                break
        report_path, report_error = None, None
        if not stopped:
            report_path, report_error, stopped = yield from _report(plan, out, state, dataset, cancel, device, worst)
        rows = tuple(SweepRow(name=r.name, status=state.runs[r.name]["status"], dice=state.runs[r.name].get("dice"),
                              error=state.runs[r.name].get("error")) for r in plan.runs)
        yield SweepFinished(out=out, rows=rows, report=report_path, report_error=report_error, stopped=stopped)
    finally:
        lock.release()


def _report(plan: SweepPlan, out: Path, state: _State, dataset: Dataset, cancel: CancelToken,
            device: str | None, worst: int) -> Generator[Any, None, tuple[Path | None, str | None, bool]]:
    """The report over the done runs (its comparison table is the sweep's summary); returns
    ``(html path or None, error or None, stopped)``."""
    from segstudio.engine.report import Report, build_report, write_report

    done = [r for r in plan.runs if state.runs[r.name]["status"] == "done"]
    if not done:
        return None, None, False
    report: Report | None = None
    try:
        for ev in build_report([out / RUNS_DIR / r.name for r in done], dataset=dataset, worst=worst,
                               device=device or "auto", cancel=cancel):
            if isinstance(ev, Report):
                report = ev
            else:
                yield ev
        if cancel.cancelled or report is None:
            return None, None, True
        html_path = write_report(report, out / REPORT_NAME)[0]
    except SegstudioError as e:
        if cancel.cancelled:  # stopped while scoring: the next pass writes the report
            return None, None, True
        log.warning("sweep %s: the report failed: %s", out, e)
        return None, str(e), False
    for r, rr in zip(done, report.runs, strict=True):
        state.runs[r.name]["dice"] = rr.evaluation.dice
    state.save()
    return html_path, None, False
