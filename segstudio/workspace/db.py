"""The SQLite store under a workspace: connections, transactions and versioned schema migrations.

Thread-safety: every thread gets its own connection (``threading.local``); WAL mode lets readers in any thread
read while one writer writes. Writes go through :meth:`Database.write`, which holds a process-wide lock and
``BEGIN IMMEDIATE`` so two threads never race for the write lock (SQLite's ``busy`` deadlock); other
processes wait up to ``busy_timeout_ms``. The GUI thread and background workers can therefore call every store
method directly.

Schema versions live in ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades an older file step by step inside
one transaction each, so a workspace from an older segstudio opens and a crash mid-upgrade leaves the old
version intact.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from segstudio.core.errors import SegstudioError

log = logging.getLogger(__name__)

_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE reviews(
  sample_id TEXT PRIMARY KEY, status TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '',
  reviewer TEXT NOT NULL DEFAULT '', time REAL NOT NULL);
CREATE TABLE review_history(
  id INTEGER PRIMARY KEY AUTOINCREMENT, sample_id TEXT NOT NULL, status TEXT NOT NULL,
  comment TEXT NOT NULL DEFAULT '', reviewer TEXT NOT NULL DEFAULT '', time REAL NOT NULL);
CREATE INDEX review_history_sample ON review_history(sample_id, id);
CREATE TABLE mask_versions(
  sample_id TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, time REAL NOT NULL,
  author TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '', PRIMARY KEY(sample_id, version));
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# v2: mask versions describe themselves (source, dtype, shape, checksum, parent); metrics cache, prediction
# cache and training runs.
_V2 = """
ALTER TABLE mask_versions ADD COLUMN source TEXT NOT NULL DEFAULT 'correction';
ALTER TABLE mask_versions ADD COLUMN dtype TEXT NOT NULL DEFAULT '';
ALTER TABLE mask_versions ADD COLUMN shape TEXT NOT NULL DEFAULT '';
ALTER TABLE mask_versions ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE mask_versions ADD COLUMN parent INTEGER;
CREATE TABLE metrics(
  sample_id TEXT NOT NULL, key TEXT NOT NULL, mean_dice REAL, mean_iou REAL, suspicion REAL,
  data TEXT NOT NULL, stamp TEXT NOT NULL DEFAULT '', time REAL NOT NULL, PRIMARY KEY(key, sample_id));
CREATE TABLE predictions(
  sample_id TEXT NOT NULL, checkpoint_id TEXT NOT NULL, model_stamp TEXT NOT NULL, path TEXT NOT NULL,
  time REAL NOT NULL, PRIMARY KEY(checkpoint_id, sample_id));
CREATE INDEX predictions_sample ON predictions(sample_id);
CREATE TABLE runs(
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', config TEXT NOT NULL, status TEXT NOT NULL,
  best_metric REAL, best_metric_name TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
  created REAL NOT NULL, started REAL, finished REAL);
"""


def _backfill_v2(conn: sqlite3.Connection, folder: Path) -> None:
    """v1 rows knew only a path: read each file once to record dtype, shape and checksum."""
    import hashlib

    from segstudio.workspace.maskio import read_mask

    rows = conn.execute("SELECT sample_id, version, path FROM mask_versions").fetchall()
    for sample_id, version, rel in rows:
        path = folder / rel
        try:
            arr = read_mask(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except SegstudioError as e:
            log.warning("migration: mask version %s v%s is unreadable (%s); left without checksum", sample_id, version, e)
            continue
        conn.execute(
            "UPDATE mask_versions SET dtype=?, shape=?, sha256=? WHERE sample_id=? AND version=?",
            (str(arr.dtype), ",".join(map(str, arr.shape)), digest, sample_id, version),
        )


Migration = Callable[[sqlite3.Connection, Path], None]


def _script(sql: str) -> Migration:
    def run(conn: sqlite3.Connection, folder: Path) -> None:
        for stmt in sql.split(";"):
            if stmt.strip():
                conn.execute(stmt)

    return run


def _v2(conn: sqlite3.Connection, folder: Path) -> None:
    _script(_V2)(conn, folder)
    _backfill_v2(conn, folder)


#: ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Migration, ...] = (_script(_V1), _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, folder: Path, *, target: int = SCHEMA_VERSION) -> int:
    """Upgrade the database to ``target``; returns the version it had. Each step commits on its own."""
    start = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if start > SCHEMA_VERSION:
        raise SegstudioError(
            f"The workspace was written by a newer segstudio (schema {start}; this one knows {SCHEMA_VERSION}).",
            path=folder,
            fix="Update segstudio, or choose another workspace folder.",
        )
    for v in range(start, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[v](conn, folder)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if v:
            log.info("workspace %s: schema upgraded %d -> %d", folder, v, v + 1)
    return start


class Database:
    """``workspace.sqlite`` in ``folder``: per-thread connections, serialised writes, migrated on open."""

    FILE_NAME = "workspace.sqlite"

    def __init__(self, folder: Path, *, busy_timeout_ms: int = 10000) -> None:
        self.folder = folder
        self.path = folder / self.FILE_NAME
        self._busy_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        conn = self.connection()
        migrate(conn, folder)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, autocommit; transactions via :meth:`write`)."""
        if self._closed:
            raise SegstudioError("The workspace is closed.", path=self.path, fix="Open the workspace again.")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000)
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                # WAL + NORMAL survives any process crash (kill -9); only a power cut can undo the last commits.
                # Mask files themselves are fsync'd, so the worst case is a version row to re-save, never a
                # row pointing at a missing file.
                conn.execute("PRAGMA synchronous = NORMAL" if mode == "wal" else "PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as e:
                raise SegstudioError(f"Cannot open the workspace database ({e}).", path=self.path, fix="Check that the folder is writable and the disk is not full.") from e
            self._local.conn = conn
            with self._all_lock:
                # Threads that ended leave their connection behind; close those here so short-lived workers do
                # not pile up open files until the workspace closes.
                dead = [c for t, c in self._all if not t.is_alive()]
                self._all = [(t, c) for t, c in self._all if t.is_alive()]
                self._all.append((threading.current_thread(), conn))
            for c in dead:
                c.close()
        return conn

    def open_connections(self) -> int:
        """How many connections are open (one per live thread that used the workspace)."""
        with self._all_lock:
            return len(self._all)

    def journal_mode(self) -> str:
        return str(self.connection().execute("PRAGMA journal_mode").fetchone()[0])

    def schema_version(self) -> int:
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query on this thread's connection."""
        return self.connection().execute(sql, params).fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commits when the block ends, rolls back on an exception."""
        with self._write_lock:
            conn = self.connection()
            if conn.in_transaction:  # nested use inside one thread joins the outer transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection; the WAL is checkpointed into the main file by the last close."""
        with self._all_lock:
            conns, self._all = [c for _, c in self._all], []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error as e:
                log.warning("closing a workspace connection failed: %s", e)
        self._closed = True
