"""The workspace's sweeps (``ws.sweeps``): its own, trained from the app into ``<workspace>/sweeps/<name>/``, and
sweep folders added by reference — a sweep run with ``segstudio sweep`` elsewhere, or on a cluster — listed in
``<workspace>/sweeps.json`` and never copied.

```
{"version": 1, "folders": [{"path": "/data/cluster/lungs-sweep", "added": 1764868500.0}]}
```

Every look reads the folders afresh (``segstudio.workspace.sweep_records``), so a sweep another process trains
shows its progress the next time the history is drawn. A sweep's id is ``sweeps/<name>`` for the workspace's own
and the folder's absolute path for a referenced one; its runs' ids are ``<sweep id>/runs/<name>`` — never a plain
run's id, which holds no ``/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import SegstudioError
from segstudio.workspace.sweep_records import (
    PLAN_NAME,
    RUNS_DIR,
    SweepRecord,
    SweepRun,
    is_sweep_folder,
    read_sweep,
)

log = logging.getLogger(__name__)

__all__ = ["REFERENCES_NAME", "SWEEPS_DIR", "SweepRecord", "SweepRun", "SweepStore"]

SWEEPS_DIR = "sweeps"
REFERENCES_NAME = "sweeps.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_NOT_A_SWEEP_FIX = ("Choose the folder that `segstudio sweep FILE --out DIR` wrote (DIR: it holds sweep.json, "
                    "state.json and runs/), not a run folder inside it or the folder of the sweep file.")


class SweepStore:
    """``folder``: the workspace folder; ``writable``: raises when the workspace may not be written."""

    def __init__(self, folder: Path, *, writable: Callable[[], None]) -> None:
        self.workspace = Path(folder)
        self.folder = self.workspace / SWEEPS_DIR
        self.references_path = self.workspace / REFERENCES_NAME
        self._writable = writable

    # ids ---------------------------------------------------------------------------------------------------------
    def _own_id(self, folder: Path) -> str | None:
        try:
            rel = folder.resolve().relative_to(self.folder.resolve())
        except (ValueError, OSError):
            return None
        return f"{SWEEPS_DIR}/{rel.as_posix()}" if len(rel.parts) == 1 else None

    @staticmethod
    def is_sweep_run_id(run_id: str) -> bool:
        return f"/{RUNS_DIR}/" in run_id

    # reading -----------------------------------------------------------------------------------------------------
    def references(self) -> list[Path]:
        """The referenced folders, in the order they were added (a damaged list reads as empty, logged)."""
        try:
            doc = json.loads(self.references_path.read_text(encoding="utf-8"))
            return [Path(str(e["path"])) for e in doc["folders"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("the sweep list %s cannot be read (%s); no referenced sweeps shown", self.references_path, e)
            return []

    def own_folders(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.is_dir() and is_sweep_folder(p))
        except OSError:
            return []

    def all(self, *, running: Path | None = None) -> list[SweepRecord]:
        """Every sweep of the workspace, newest first. ``running``: the folder of a sweep the caller is running
        now (its lock is not asked)."""
        out = [self._read(p, referenced=False, running=running) for p in self.own_folders()]
        out += [self._read(p, referenced=True, running=running) for p in self.references()]
        return sorted(out, key=lambda s: s.started, reverse=True)

    def _read(self, folder: Path, *, referenced: bool, running: Path | None) -> SweepRecord:
        sweep_id = str(folder) if referenced else self._own_id(folder) or str(folder)
        known = None if running is None else folder.resolve() == running.resolve()
        return read_sweep(folder, sweep_id=sweep_id, referenced=referenced, running=known or None)

    def get(self, sweep_id: str, *, running: Path | None = None) -> SweepRecord:
        """The sweep ``sweep_id`` (``SegstudioError`` when this workspace has none by that id)."""
        if sweep_id.startswith(f"{SWEEPS_DIR}/") and "/" not in sweep_id[len(SWEEPS_DIR) + 1:]:
            folder = self.folder / sweep_id[len(SWEEPS_DIR) + 1:]
            if is_sweep_folder(folder):
                return self._read(folder, referenced=False, running=running)
        for p in self.references():
            if str(p) == sweep_id:
                return self._read(p, referenced=True, running=running)
        raise SegstudioError(f"No sweep {sweep_id!r} in this workspace.", path=self.workspace,
                             fix="Add its folder with Train → Add Sweep Folder…, or run the sweep again.")

    def find_run(self, run_id: str) -> tuple[SweepRecord, SweepRun] | None:
        """The sweep and run of a sweep run's id (None when ``run_id`` is no sweep run of this workspace)."""
        if not self.is_sweep_run_id(run_id):
            return None
        sweep_id, name = run_id.rsplit(f"/{RUNS_DIR}/", 1)
        try:
            sweep = self.get(sweep_id)
        except SegstudioError:
            return None
        run = sweep.run(name)
        return (sweep, run) if run is not None else None

    def folder_for(self, sweep_file: Path) -> Path:
        """Where the app trains ``sweep_file``: the workspace's sweep folder of that same file when there is one
        (so running it again resumes it), else a new ``sweeps/<file name>[-N]/``."""
        src = Path(sweep_file).expanduser().resolve()
        stem = _UNSAFE.sub("-", src.stem).strip(".- ") or "sweep"
        n = 1
        while True:
            cand = self.folder / (stem if n == 1 else f"{stem}-{n}")
            if not cand.exists():
                return cand
            if cand.is_dir() and (_recorded_file(cand) == str(src) or not any(cand.iterdir())):
                return cand
            n += 1

    # writing -----------------------------------------------------------------------------------------------------
    def add(self, folder: str | Path) -> tuple[SweepRecord, bool]:
        """Reference the sweep in ``folder`` (nothing is copied). Returns its record and whether it was new (a
        folder already in the history is not added twice). ``SegstudioError`` naming the folder when it is no
        sweep folder."""
        p = Path(folder).expanduser()
        p = p.resolve() if p.exists() else p.absolute()
        if not p.is_dir():
            raise SegstudioError(f"The sweep folder {p} does not exist or is not a folder.", path=p,
                                 fix="Choose an existing sweep folder (the --out folder of segstudio sweep).")
        if not is_sweep_folder(p):
            hint = " It is a run folder of a sweep: choose the folder two levels up." if (
                p.parent.name == RUNS_DIR and is_sweep_folder(p.parent.parent)) else ""
            raise SegstudioError(f"The folder {p} is not a sweep folder: it has no {PLAN_NAME}.{hint}", path=p,
                                 fix=_NOT_A_SWEEP_FIX)
        record = read_sweep(p, sweep_id=str(p), referenced=True)
        if record.condition != "ok":
            raise SegstudioError(record.problem.split(" Fix: ")[0], path=p / PLAN_NAME,
                                 fix="Restore sweep.json from a backup, or run the sweep again into a new folder.")
        own = self._own_id(p)
        if own is not None:
            return self.get(own), False
        refs = self.references()
        if any(str(r) == str(p) for r in refs):
            return self.get(str(p)), False
        self._save([*refs, p])
        return self.get(str(p)), True

    def forget(self, sweep_id: str) -> None:
        """Take a referenced sweep out of the history (its folder is left as it is)."""
        refs = self.references()
        kept = [r for r in refs if str(r) != sweep_id]
        if len(kept) == len(refs):
            raise SegstudioError(f"The sweep {sweep_id!r} is not a referenced folder of this workspace.",
                                 fix="Only sweep folders added with Add Sweep Folder… can be removed; the "
                                     "workspace's own sweeps live in its sweeps/ folder.")
        self._save(kept)

    def _save(self, folders: list[Path]) -> None:
        self._writable()
        added = self._added()
        doc: dict[str, Any] = {"version": 1, "folders": [{"path": str(p), "added": added.get(str(p), time.time())}
                                                         for p in folders]}
        if self.references_path.exists() and not self._readable():
            bad = self.references_path.with_name(f"{REFERENCES_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            log.warning("the sweep list %s is damaged; kept as %s", self.references_path, bad.name)
            os.replace(self.references_path, bad)
        atomic_write_json(self.references_path, doc)

    def _readable(self) -> bool:
        try:
            doc = json.loads(self.references_path.read_text(encoding="utf-8"))
            return isinstance(doc, dict) and isinstance(doc.get("folders"), list)
        except (OSError, ValueError):
            return False

    def _added(self) -> dict[str, float]:
        try:
            doc = json.loads(self.references_path.read_text(encoding="utf-8"))
            return {str(e["path"]): float(e.get("added", 0.0)) for e in doc["folders"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}


def _recorded_file(folder: Path) -> str | None:
    """The sweep file a sweep folder was trained from (its plan's ``file``), None when unreadable."""
    try:
        doc = json.loads((folder / PLAN_NAME).read_text(encoding="utf-8"))
        return str(doc["file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
