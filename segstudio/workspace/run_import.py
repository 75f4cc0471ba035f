"""Import a finished run folder into the workspace's run history: a run trained elsewhere — a run bundle under
torchrun on a cluster, ``segstudio train --out`` on another computer — becomes a run of this workspace, with its
curves, metrics and checkpoints, that Use This Model promotes like any other.

The source is never written. Its files are copied into a temp folder beside ``runs/`` (named as the atomic writes
name their temp files, so that a killed import is swept when the workspace next opens), made durable, then renamed
to ``runs/<id>/``; only then is the run recorded. A full disk, a cancel or a crash leaves nothing half-imported.

What is checked here, without torch: the folder is a segstudio run folder, it finished (``run.json`` is written at
the end of a run), ``run.json`` and ``train_config.json`` are readable JSON objects, and it has a checkpoint. That
the checkpoint loads is the engine's to say: the caller passes ``check`` (``segstudio.engine.run_check``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segstudio.core.atomic import TEMP_SUFFIX, fsync_dir, json_safe, sync_tree, temp_path_for
from segstudio.core.errors import SegstudioError, disk_full_error, free_bytes, io_error
from segstudio.workspace.bundles import DEFAULT_OUT, is_bundle_folder, read_bundle
from segstudio.workspace.models import run_checkpoint
from segstudio.workspace.records import RunRecord, RunStatus
from segstudio.workspace.runs import RunStore

log = logging.getLogger(__name__)

__all__ = ["IMPORT_NOTE", "ImportProgress", "RunFolderSummary", "RunImport", "import_run_folder", "imported_as",
           "inspect_run_folder"]

CONFIG_NAME, SUMMARY_NAME = "train_config.json", "run.json"
#: written into an imported run's folder: where it came from, and its run.json's checksum (to spot a second import)
IMPORT_NOTE = "imported.json"
#: a run.json or train_config.json larger than this is not one (both are a few kB)
MAX_JSON_BYTES = 16 * 2**20
_CHUNK = 4 * 2**20
_NOT_A_RUN_FIX = ("Choose the folder that `segstudio train --out RUN_DIR` (or a run bundle's launch script, its OUT) "
                  "wrote: it holds train_config.json, run.json, curves.csv and checkpoints/.")


@dataclass(frozen=True, kw_only=True)
class RunFolderSummary:
    """What a finished run folder says about itself (``run.json``, ``train_config.json``, its checkpoints)."""

    folder: Path
    name: str
    config: dict[str, Any]
    status: RunStatus
    best_metric: float | None
    best_metric_name: str
    train_seconds: float | None
    epochs_completed: int | None
    device: str
    finished: float
    checkpoint: Path
    #: SHA-256 of its ``run.json``: the same finished run, wherever its folder was copied to
    fingerprint: str = ""

    @property
    def started(self) -> float:
        return self.finished - (self.train_seconds or 0.0)

    def message(self) -> str:
        epochs = f"{self.epochs_completed} epoch(s)" if self.epochs_completed is not None else "trained"
        secs = f" in {self.train_seconds:.0f} s" if self.train_seconds is not None else ""
        on = f" on {self.device}" if self.device else ""
        return f"imported from {self.folder}: {epochs}{secs}{on}"


@dataclass(frozen=True)
class ImportProgress:
    """Bytes copied so far of the run folder's ``total``."""

    done: int
    total: int
    file: str = ""


def _read_object(path: Path, what: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes is too large for a {what}")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise io_error(e, path, action="read") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise SegstudioError(f"The run's {path.name} is damaged: {e}.", path=path,
                             fix="Copy the run folder again from where it was trained (a copy may have been cut "
                                 "short), or train the run again.") from None
    if not isinstance(doc, dict):
        raise SegstudioError(f"The run's {path.name} is not a JSON object.", path=path,
                             fix="Copy the run folder again from where it was trained, or train the run again.")
    return doc


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _run_name(folder: Path, bundle: Path | None) -> str:
    doc = read_bundle(bundle) if bundle is not None else None
    if doc is not None and str(doc.get("name") or "").strip():
        return str(doc["name"]).strip()
    # the scripts' default run folder is "run": the folder above says more (the bundle's, or the job's)
    return folder.parent.name if folder.name == DEFAULT_OUT and folder.parent.name else folder.name


def inspect_run_folder(folder: str | Path) -> RunFolderSummary:
    """Check that ``folder`` (or the run of the bundle ``folder``) is a finished segstudio run and read its summary.
    ``SegstudioError`` naming the folder and the fix for a folder that is no run, one still in progress (no
    ``run.json``), a damaged ``run.json`` or ``train_config.json``, and a run without a checkpoint."""
    p = Path(folder).expanduser()
    p = p.resolve() if p.exists() else p.absolute()
    if not p.is_dir():
        raise SegstudioError("The run folder does not exist or is not a folder.", path=p, fix=_NOT_A_RUN_FIX)
    bundle: Path | None = None
    if is_bundle_folder(p):
        bundle, p = p, p / DEFAULT_OUT
        if not p.is_dir():
            raise SegstudioError(f"This run bundle has no run in {DEFAULT_OUT}/ yet: it has not been trained here, or "
                                 "its run was written elsewhere (OUT).", path=bundle,
                                 fix="Run its launch_torchrun.sh (or sbatch segstudio.sbatch), then import again; or "
                                     "choose the folder OUT named.")
    elif is_bundle_folder(p.parent):
        bundle = p.parent
    config_path, summary_path = p / CONFIG_NAME, p / SUMMARY_NAME
    if not config_path.is_file():
        hint = " It looks like a checkpoint folder: choose the run folder two levels up." if (
            (p / "config.json").is_file() and p.parent.name == "checkpoints") else ""
        raise SegstudioError(f"This folder is not a segstudio run: it has no {CONFIG_NAME}.{hint}", path=p,
                             fix=_NOT_A_RUN_FIX)
    if not summary_path.is_file():
        has_last = (p / "checkpoints" / "last" / "config.json").is_file()
        raise SegstudioError(
            f"This run has not finished: it has no {SUMMARY_NAME}, which a run writes when it ends. It is still "
            "training, or it was killed" + (" (its last checkpoint is there)." if has_last else "."), path=p,
            fix="Wait for the run to end, then import it. A killed run continues with RESUME=1 (launch script) or "
                "`segstudio train DATASET --out RUN_DIR --resume`, and can be imported when it has finished.")
    summary = _read_object(summary_path, "run summary")
    try:
        fingerprint = hashlib.sha256(summary_path.read_bytes()).hexdigest()
    except OSError as e:
        raise io_error(e, summary_path, action="read") from e
    config = _read_object(config_path, "training config")
    checkpoint = run_checkpoint(p)
    if checkpoint is None:
        raise SegstudioError("This run has no checkpoint (no checkpoints/best or checkpoints/last with a "
                             "config.json): there is no model to import.", path=p,
                             fix="Copy the run folder again with its checkpoints/ folder, or choose a run that "
                                 "trained at least one epoch.")
    epochs = summary.get("epochs_completed")
    monitor = summary.get("monitor") or config.get("monitor") or ""
    best = _finite(summary.get("best_monitor"))
    try:
        finished = summary_path.stat().st_mtime
    except OSError:
        finished = time.time()
    return RunFolderSummary(
        folder=p, name=_run_name(p, bundle), config=config,
        status=RunStatus.CANCELLED if summary.get("cancelled") is True else RunStatus.FINISHED,
        best_metric=best, best_metric_name=str(monitor) if best is not None else "",
        train_seconds=_finite(summary.get("train_seconds")),
        epochs_completed=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        device=str(summary.get("device") or ""), finished=finished, checkpoint=checkpoint, fingerprint=fingerprint)


def imported_as(runs: RunStore, summary: RunFolderSummary) -> RunRecord | None:
    """The run of this workspace that is an import of the same finished run (None when there is none)."""
    for rec in runs.all():
        try:
            note = json.loads((rec.folder / IMPORT_NOTE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(note, dict) and summary.fingerprint and note.get("run_json_sha256") == summary.fingerprint:
            return rec
    return None


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _files(root: Path) -> list[tuple[Path, int]]:
    """The run folder's regular files (relative) with their sizes; temp files of killed writers and links left out."""
    out: list[tuple[Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _is_temp(d) and not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            full = Path(dirpath) / name
            if _is_temp(name) or full.is_symlink() or not full.is_file():
                continue
            out.append((full.relative_to(root), full.stat().st_size))
    return sorted(out)


class RunImport:
    """One import, in steps, for a caller that shows progress (the app's worker): :meth:`copy` yields
    :class:`ImportProgress` and honours ``cancelled``; :meth:`commit` renames the copy into ``runs/`` and records
    the run. Whatever does not reach :meth:`commit` leaves nothing behind."""

    def __init__(self, runs: RunStore, summary: RunFolderSummary, *, name: str | None = None) -> None:
        if summary.folder.is_relative_to(runs.folder.resolve()):
            raise SegstudioError("This run is one of this workspace's own runs already.", path=summary.folder,
                                 fix="Select it in the Runs tab; import runs trained elsewhere.")
        twin = imported_as(runs, summary)
        if twin is not None:
            raise SegstudioError(f"This run is in the run history already: {twin.name or twin.id} (run {twin.id}), "
                                 "imported before.", path=summary.folder,
                                 fix="Select it in the Runs tab (Use This Model makes it the model), or "
                                     f"`segstudio models promote WORKSPACE {twin.id}`.")
        self.runs, self.summary = runs, summary
        self.name = name if name is not None else f"{summary.name} (imported)"
        self.run_id = runs.new_id(time.time())
        self.target = runs.folder / self.run_id
        self.tmp = temp_path_for(self.target)
        self._copied = False

    def copy(self, *, cancelled: Callable[[], bool] = lambda: False) -> Iterator[ImportProgress]:
        src = self.summary.folder
        try:
            files = _files(src)
        except OSError as e:
            raise io_error(e, src, action="read") from e
        total = sum(size for _, size in files)
        free = free_bytes(self.runs.folder)
        if free is not None and free < total + 16 * 2**20:
            raise disk_full_error(self.target, what=f"the run {self.summary.name}", action="import",
                                  needed=total + 16 * 2**20)
        done = 0
        try:
            self.tmp.mkdir(parents=True)
            for rel, _size in files:
                if cancelled():
                    raise _Cancelled
                dst = self.tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                with open(src / rel, "rb") as fin, open(dst, "wb") as fout:
                    while chunk := fin.read(_CHUNK):
                        fout.write(chunk)
                        done += len(chunk)
                        yield ImportProgress(done, total, rel.as_posix())
                shutil.copystat(src / rel, dst)
            # the record's own config, as RunStore.create writes one for a run of the app, and where it came from
            (self.tmp / "config.json").write_text(
                json.dumps(json_safe(self.summary.config), indent=2, sort_keys=True), encoding="utf-8")
            (self.tmp / IMPORT_NOTE).write_text(json.dumps(
                {"source": str(src), "run_json_sha256": self.summary.fingerprint, "imported": time.time()},
                indent=2), encoding="utf-8")
            sync_tree(self.tmp)
        except _Cancelled:
            self.discard()
            return
        except OSError as e:
            self.discard()
            raise io_error(e, self.target, action="import the run into", needed=total) from e
        except BaseException:
            self.discard()
            raise
        self._copied = True
        yield ImportProgress(total, total, "")

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self) -> RunRecord:
        """The copied run renamed into ``runs/<id>/`` and recorded in the run history."""
        if not self._copied:
            raise SegstudioError("The run was not copied (the import was stopped).", path=self.summary.folder,
                                 fix="Import it again.")
        s = self.summary
        try:
            os.rename(self.tmp, self.target)
        except OSError as e:
            self.discard()
            raise io_error(e, self.target, action="import the run into") from e
        fsync_dir(self.runs.folder)
        try:
            return self.runs.add_existing(self.run_id, config=s.config, name=self.name, status=s.status,
                                          best_metric=s.best_metric, best_metric_name=s.best_metric_name,
                                          message=s.message(), started=s.started, finished=s.finished)
        except BaseException:
            shutil.rmtree(self.target, ignore_errors=True)  # not recorded: no orphan folder in runs/
            raise


class _Cancelled(Exception):
    pass


def import_run_folder(runs: RunStore, folder: str | Path, *, name: str | None = None,
                      check: Callable[[RunFolderSummary], None] | None = None) -> RunRecord:
    """Import the finished run ``folder`` (or a bundle's run) into the run history in one step: inspected, checked
    by ``check`` (the engine's checkpoint check), copied atomically, recorded. Returns the new record."""
    summary = inspect_run_folder(folder)
    if check is not None:
        check(summary)
    runs.check_writable()
    job = RunImport(runs, summary, name=name)
    for _ in job.copy():
        pass
    return job.commit()
