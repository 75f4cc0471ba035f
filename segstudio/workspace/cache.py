"""Caches that save recomputation: per-sample metrics and predicted masks per checkpoint.

Both are disposable: deleting a row only costs time. A prediction never lands in the mask-version history —
accepting one is an explicit act (``VersionStore.save(..., source=ACCEPTED_PREDICTION)``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.locate import slug
from segstudio.workspace.maskio import read_mask, write_mask
from segstudio.workspace.records import MetricsEntry, PredictionEntry

log = logging.getLogger(__name__)

_FIGURES = ("mean_dice", "mean_iou", "suspicion")


def _num(v: float | None) -> float | None:
    """SQLite has no NaN (it reads back as NULL, i.e. "unknown"), which is what a NaN figure means here too."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


class MetricsStore:
    """Figures per ``(key, sample)``. ``data`` is any JSON-safe dict (e.g. ``SampleComparison.to_dict()``)."""

    def __init__(self, db: Database, events: WorkspaceEvents) -> None:
        self._db = db
        self._events = events

    def put(
        self,
        sample_id: str,
        *,
        key: str,
        data: dict[str, Any],
        mean_dice: float | None = None,
        mean_iou: float | None = None,
        suspicion: float | None = None,
        stamp: str = "",
    ) -> MetricsEntry:
        entry = MetricsEntry(
            sample_id=sample_id,
            key=key,
            data=data,
            mean_dice=_num(mean_dice),
            mean_iou=_num(mean_iou),
            suspicion=_num(suspicion),
            stamp=stamp,
            time=time.time(),
        )
        self.put_many([entry])
        return entry

    def put_many(self, entries: Iterable[MetricsEntry]) -> int:
        """Write many entries in one transaction (a whole-dataset evaluation); returns how many."""
        rows = [
            (e.sample_id, e.key, _num(e.mean_dice), _num(e.mean_iou), _num(e.suspicion), json.dumps(e.data), e.stamp, e.time or time.time())
            for e in entries
        ]
        with self._db.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO metrics(sample_id, key, mean_dice, mean_iou, suspicion, data, stamp, time) "
                "VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
        by_key: dict[str, list[str]] = {}
        for r in rows:
            by_key.setdefault(r[1], []).append(r[0])
        for key, ids in by_key.items():
            self._events.metrics_changed.emit(tuple(ids), key)
        return len(rows)

    def get(self, sample_id: str, *, key: str) -> MetricsEntry | None:
        rows = self._db.query(
            "SELECT sample_id, key, mean_dice, mean_iou, suspicion, data, stamp, time FROM metrics WHERE key=? AND sample_id=?",
            (key, sample_id),
        )
        if not rows:
            return None
        r = rows[0]
        return MetricsEntry(
            sample_id=r[0], key=r[1], mean_dice=r[2], mean_iou=r[3], suspicion=r[4], data=json.loads(r[5]), stamp=r[6], time=r[7]
        )

    def entries(self, *, key: str, data_fields: tuple[str, ...] | None = None) -> list[MetricsEntry]:
        """Every sample's entry under ``key`` in one query. ``data_fields``: read only these top-level keys of
        ``data`` (extracted by SQLite, so a large ``data`` — per-class comparisons — is never parsed); the review
        queue reads the model's figures so on every image change."""
        if data_fields is None:
            cols, n = "data", 1
        else:
            for f in data_fields:
                if not f.isidentifier():
                    raise ValueError(f"not a plain data field name: {f!r}")
            cols, n = ", ".join(f"json_extract(data, '$.{f}')" for f in data_fields) or "NULL", max(1, len(data_fields))
        rows = self._db.query(
            f"SELECT sample_id, key, mean_dice, mean_iou, suspicion, stamp, time, {cols} FROM metrics WHERE key=? ORDER BY sample_id",
            (key,),
        )
        out = []
        for r in rows:
            extra = r[7 : 7 + n]
            data = json.loads(extra[0]) if data_fields is None else dict(zip(data_fields, extra, strict=False))
            out.append(MetricsEntry(sample_id=r[0], key=r[1], mean_dice=r[2], mean_iou=r[3], suspicion=r[4], data=data, stamp=r[5], time=r[6]))
        return out

    def column(self, *, key: str, figure: str = "mean_dice") -> dict[str, float | None]:
        """``sample id -> figure`` for every sample cached under ``key`` (one query, for a browser column)."""
        if figure not in _FIGURES:
            from segstudio.core.errors import UnknownKeyError

            raise UnknownKeyError("metrics figure", figure, list(_FIGURES))
        return {str(r[0]): r[1] for r in self._db.query(f"SELECT sample_id, {figure} FROM metrics WHERE key=?", (key,))}

    def keys(self) -> list[str]:
        return [str(r[0]) for r in self._db.query("SELECT DISTINCT key FROM metrics ORDER BY key")]

    def invalidate(self, *, sample_id: str | None = None, key: str | None = None) -> int:
        """Delete cached entries of a sample and/or key (both ``None``: everything); returns how many."""
        where, args = [], []
        if sample_id is not None:
            where.append("sample_id=?")
            args.append(sample_id)
        if key is not None:
            where.append("key=?")
            args.append(key)
        sql = "DELETE FROM metrics" + (" WHERE " + " AND ".join(where) if where else "")
        with self._db.write() as conn:
            n = conn.execute(sql, args).rowcount
        self._events.metrics_changed.emit(() if sample_id is None else (sample_id,), key or "")
        return int(n)


class PredictionStore:
    """Predicted masks per ``(checkpoint, sample)`` under ``<workspace>/predictions/<checkpoint>/``."""

    def __init__(self, db: Database, events: WorkspaceEvents) -> None:
        self._db = db
        self._events = events
        self.folder = db.folder

    def _entry(self, r: tuple[Any, ...]) -> PredictionEntry:
        return PredictionEntry(sample_id=r[0], checkpoint_id=r[1], model_stamp=r[2], path=self.folder / r[3], time=r[4])

    def save(self, sample_id: str, mask: np.ndarray, *, checkpoint_id: str, model_stamp: str) -> PredictionEntry:
        """Write the predicted mask (lossless, atomic) and record it, replacing an older prediction of that
        checkpoint for that sample."""
        self._db.check_writable()
        stem = self.folder / "predictions" / slug(checkpoint_id) / slug(sample_id)
        path, _ = write_mask(stem, np.ascontiguousarray(mask))
        return self.register(sample_id, checkpoint_id=checkpoint_id, model_stamp=model_stamp, path=path)

    def register(self, sample_id: str, *, checkpoint_id: str, model_stamp: str, path: Any) -> PredictionEntry:
        """Record a prediction file written elsewhere (e.g. by ``segstudio predict``)."""
        from pathlib import Path

        p = Path(path).resolve()
        try:
            stored = p.relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            stored = str(p)  # outside the workspace: keep absolute (joining an absolute path keeps it)
        now = time.time()
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO predictions(sample_id, checkpoint_id, model_stamp, path, time) VALUES (?,?,?,?,?)",
                (sample_id, checkpoint_id, model_stamp, stored, now),
            )
        entry = PredictionEntry(sample_id=sample_id, checkpoint_id=checkpoint_id, model_stamp=model_stamp, path=self.folder / stored, time=now)
        self._events.prediction_saved.emit(entry)
        return entry

    def get(self, sample_id: str, *, checkpoint_id: str) -> PredictionEntry | None:
        rows = self._db.query(
            "SELECT sample_id, checkpoint_id, model_stamp, path, time FROM predictions WHERE checkpoint_id=? AND sample_id=?",
            (checkpoint_id, sample_id),
        )
        return self._entry(rows[0]) if rows else None

    def load(self, entry: PredictionEntry) -> np.ndarray:
        return read_mask(entry.path)

    def entries(self, *, checkpoint_id: str | None = None) -> list[PredictionEntry]:
        sql = "SELECT sample_id, checkpoint_id, model_stamp, path, time FROM predictions"
        rows = self._db.query(sql + " WHERE checkpoint_id=?", (checkpoint_id,)) if checkpoint_id else self._db.query(sql)
        return [self._entry(r) for r in rows]

    def stale(self, *, checkpoint_id: str, model_stamp: str) -> list[str]:
        """Samples whose cached prediction of ``checkpoint_id`` came from other weights than ``model_stamp``."""
        rows = self._db.query(
            "SELECT sample_id FROM predictions WHERE checkpoint_id=? AND model_stamp<>? ORDER BY sample_id", (checkpoint_id, model_stamp)
        )
        return [str(r[0]) for r in rows]

    def remove(self, *, checkpoint_id: str, sample_id: str | None = None) -> int:
        """Forget (and delete the files of) a checkpoint's predictions, or one sample's."""
        doomed = [e for e in self.entries(checkpoint_id=checkpoint_id) if sample_id is None or e.sample_id == sample_id]
        with self._db.write() as conn:
            for e in doomed:
                conn.execute("DELETE FROM predictions WHERE checkpoint_id=? AND sample_id=?", (e.checkpoint_id, e.sample_id))
        for e in doomed:
            if e.path.is_relative_to(self.folder):
                try:
                    e.path.unlink()
                except OSError as err:
                    log.warning("could not delete cached prediction %s: %s", e.path, err)
        return len(doomed)
