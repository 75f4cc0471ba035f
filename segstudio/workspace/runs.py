"""Training runs of a workspace: id, config, status, best metric and times; files under ``runs/<id>/``."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from segstudio.core.atomic import atomic_write_text
from segstudio.core.errors import SegstudioError
from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.records import RunRecord, RunStatus

_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_COLS = "id, name, config, status, best_metric, best_metric_name, message, created, started, finished"


class RunStore:
    def __init__(self, db: Database, events: WorkspaceEvents) -> None:
        self._db = db
        self._events = events
        self.folder = db.folder / "runs"

    def _record(self, r: tuple[Any, ...]) -> RunRecord:
        return RunRecord(
            id=r[0], name=r[1], config=json.loads(r[2]), status=RunStatus(r[3]), best_metric=r[4], best_metric_name=r[5],
            message=r[6], created=r[7], started=r[8], finished=r[9], folder=self.folder / r[0],
        )  # fmt: skip

    @staticmethod
    def new_id(now: float) -> str:
        """A fresh run id: the UTC time and 6 random hex digits (``20261204-101500-ab12cd``)."""
        return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)

    @staticmethod
    def _check_id(rid: str) -> None:
        if not _RUN_ID.fullmatch(rid):
            raise SegstudioError(
                f"Run id {rid!r} is not a plain folder name.", fix="Use letters, digits, '.', '_' and '-' only, not starting with '.'."
            )

    def check_writable(self) -> None:
        self._db.check_writable()

    def create(self, config: dict[str, Any], *, name: str = "", run_id: str | None = None) -> RunRecord:
        """A new run in status ``created``; its folder exists and holds ``config.json``."""
        now = time.time()
        rid = run_id or self.new_id(now)
        self._check_id(rid)
        text = json.dumps(config, indent=2, sort_keys=True)
        self._db.check_writable()
        atomic_write_text(self.folder / rid / "config.json", text)
        with self._db.write() as conn:
            conn.execute(
                f"INSERT INTO runs({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (rid, name, text, RunStatus.CREATED.value, None, "", "", now, None, None),
            )
        rec = self.get(rid)
        self._events.run_changed.emit(rec)
        return rec

    def add_existing(self, run_id: str, *, config: dict[str, Any], name: str, status: RunStatus,
                     best_metric: float | None, best_metric_name: str, message: str, started: float | None,
                     finished: float | None) -> RunRecord:
        """Record a run whose folder ``runs/<run_id>/`` is in place already, with its own times (an imported run:
        ``segstudio.workspace.run_import``)."""
        self._check_id(run_id)
        if not (self.folder / run_id).is_dir():
            raise SegstudioError(f"Run {run_id!r} has no folder to record.", path=self.folder / run_id)
        text = json.dumps(config, indent=2, sort_keys=True)
        created = started if started is not None else time.time()
        with self._db.write() as conn:
            conn.execute(
                f"INSERT INTO runs({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, text, RunStatus(status).value, best_metric, best_metric_name if best_metric is not None
                 else "", message, created, started, finished),
            )
        rec = self.get(run_id)
        self._events.run_changed.emit(rec)
        return rec

    def update(
        self,
        run_id: str,
        *,
        status: RunStatus | str | None = None,
        best_metric: float | None = None,
        best_metric_name: str | None = None,
        message: str | None = None,
    ) -> RunRecord:
        """Change a run; entering ``running`` stamps ``started``, a final status stamps ``finished``."""
        old = self.get(run_id)
        sets: dict[str, Any] = {}
        if status is not None:
            st = RunStatus(status)
            sets["status"] = st.value
            if st is RunStatus.RUNNING and old.started is None:
                sets["started"] = time.time()
            if st.is_final:
                sets["finished"] = time.time()
        if best_metric is not None:
            sets["best_metric"] = float(best_metric)
        if best_metric_name is not None:
            sets["best_metric_name"] = best_metric_name
        if message is not None:
            sets["message"] = message
        if sets:
            with self._db.write() as conn:
                conn.execute(f"UPDATE runs SET {', '.join(k + '=?' for k in sets)} WHERE id=?", (*sets.values(), run_id))
        rec = self.get(run_id)
        self._events.run_changed.emit(rec)
        return rec

    def get(self, run_id: str) -> RunRecord:
        rows = self._db.query(f"SELECT {_COLS} FROM runs WHERE id=?", (run_id,))
        if not rows:
            raise SegstudioError(f"No run {run_id!r} in this workspace.", path=self.folder, fix="List the runs and pick one of them.")
        return self._record(rows[0])

    def all(self) -> list[RunRecord]:
        """All runs, newest first."""
        return [self._record(r) for r in self._db.query(f"SELECT {_COLS} FROM runs ORDER BY created DESC, id DESC")]
