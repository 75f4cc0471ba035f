"""The SQLite store under a workspace: connections, transactions and versioned schema migrations.

Thread-safety: every thread gets its own connection (``threading.local``); WAL mode lets readers in any thread
read while one writer writes. Writes go through :meth:`Database.write`, which holds a process-wide lock and
``BEGIN IMMEDIATE`` so two threads never race for the write lock (SQLite's ``busy`` deadlock); other
processes wait up to ``busy_timeout_ms``. The GUI thread and background workers can therefore call every store
method directly.

Schema versions live in ``PRAGMA user_version``; :data:`MIGRATIONS` upgrades an older file step by step inside
one transaction each, so a workspace from an older segstudio opens and a crash mid-upgrade leaves the old
version intact. The version is read inside the write transaction, so two processes creating one workspace at
once never both run the same step.

Every SQLite call goes through this module: an ``sqlite3.Error`` becomes our error naming the file and the fix
(:func:`db_error`: a full disk is a ``DiskFullError``, a damaged file a ``WorkspaceDamagedError``). A sample id
that is not valid UTF-8 (a file name decoded with ``os.fsdecode``, holding lone surrogates) is stored as a BLOB
of its original bytes (:func:`to_db`); a BLOB never equals a TEXT value, so such an id can never collide with
a valid one, and rows read back turn it into the same ``str`` again. No table has a BLOB column of its own.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from segstudio.core.errors import (
    ReadOnlyError,
    SegstudioError,
    WorkspaceError,
    disk_full_error,
    free_bytes,
)

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
    """Upgrade the database to ``target``; returns the version it had. Each step commits on its own.

    ``user_version`` is read inside ``BEGIN IMMEDIATE``: a version read before the write lock may be stale by
    the time the lock is ours (another process created the tables meanwhile: "table meta already exists")."""
    start: int | None = None
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            v = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if start is None:
                start = v
            if v > SCHEMA_VERSION:
                raise SegstudioError(
                    f"The workspace was written by a newer segstudio (schema {v}; this one knows {SCHEMA_VERSION}).",
                    path=folder,
                    fix="Update segstudio, or choose another workspace folder.",
                )
            if v >= target:
                conn.execute("COMMIT")
                return start
            MIGRATIONS[v](conn, folder)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if v:
            log.info("workspace %s: schema upgraded %d -> %d", folder, v, v + 1)


# --- ids that are not valid UTF-8 ------------------------------------------------------------------------------


def to_db(value: Any) -> Any:
    """A query parameter SQLite can bind: a ``str`` with lone surrogates (``os.fsdecode`` of a non-UTF-8 name)
    becomes the BLOB of its original bytes; anything else is passed through."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = b""
    if not raw or raw.decode("utf-8", "surrogateescape") != value:
        raise WorkspaceError(
            f"The name {value!r} holds characters that are neither text nor a file-system byte.",
            fix="Rename the file to valid UTF-8 text.",
        )
    return raw


def from_db(value: Any) -> Any:
    """The inverse of :func:`to_db` for a value read back."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _params(params: Sequence[Any] | Iterable[Any]) -> tuple[Any, ...]:
    return tuple(to_db(v) for v in params)


def _row(r: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(from_db(v) for v in r)


# --- errors ----------------------------------------------------------------------------------------------------


#: beside ``workspace.sqlite`` after a query met a damaged page: the next open checks the whole file
SUSPECT_MARK = "workspace.sqlite.suspect"


class WorkspaceDamagedError(WorkspaceError):
    """``workspace.sqlite`` is damaged (not SQLite, a corrupt page) or holds none of the work on disk."""


_REBUILD_FIX = (
    "Close and reopen the workspace: segstudio rebuilds it from the mask versions and the recovery journal "
    "(the damaged file is kept beside it); or restore a backup of workspace.sqlite."
)


def _primary_code(err: sqlite3.Error) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_full(err: sqlite3.Error) -> bool:
    return _primary_code(err) == sqlite3.SQLITE_FULL or "disk is full" in str(err).lower()


def is_damage(err: sqlite3.Error) -> bool:
    """True when ``err`` says the database file is damaged (not SQLite, a corrupt page): what :func:`db_error`
    turns into a :class:`WorkspaceDamagedError`."""
    if _is_full(err):
        return False
    low = str(err).lower()
    return _primary_code(err) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in low or "not a database" in low


def db_error(err: sqlite3.Error, path: Path, *, action: str = "read") -> SegstudioError:
    """Our error for an SQLite error met while doing ``action`` on the database at ``path``."""
    primary = _primary_code(err)
    text = str(err)
    low = text.lower()
    if _is_full(err):
        return disk_full_error(path, what="the workspace database", action=action)
    if is_damage(err):
        return WorkspaceDamagedError(f"The workspace database is damaged ({text}).", path=path, fix=_REBUILD_FIX)
    if primary == sqlite3.SQLITE_READONLY or "readonly" in low:
        return ReadOnlyError(
            f"Cannot {action} the workspace database: it is read-only ({text}).",
            path=path,
            fix=f"Make {path.parent} writable for this user, or open the workspace read-only.",
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return WorkspaceError(
            f"The workspace database stayed locked by another process ({text}).",
            path=path,
            fix="Close the other segstudio (or script) using this workspace, then try again.",
        )
    if primary == sqlite3.SQLITE_IOERR:
        free = free_bytes(path.parent)
        if free is not None and free < 4 * 2**20:  # SQLite reports a write that hit ENOSPC as a plain I/O error
            return db_error(sqlite3.OperationalError("database or disk is full"), path, action=action)
    return WorkspaceError(
        f"Cannot {action} the workspace database ({text}).",
        path=path,
        fix="Check the disk and that the folder is writable, then try again. If it persists: " + _REBUILD_FIX,
    )


# --- the store ----------------------------------------------------------------------------------------------------


ErrorFactory = Callable[[sqlite3.Error, str], SegstudioError]


class Cursor:
    """Rows of one statement, with ids that were stored as BLOBs turned back into ``str``; errors are ours."""

    def __init__(self, cur: sqlite3.Cursor, error: ErrorFactory) -> None:
        self._cur = cur
        self._error = error

    def fetchone(self) -> tuple[Any, ...] | None:
        try:
            r = self._cur.fetchone()
        except sqlite3.Error as e:
            raise self._error(e, "read") from e
        return None if r is None else _row(r)

    def fetchall(self) -> list[tuple[Any, ...]]:
        try:
            rows = self._cur.fetchall()
        except sqlite3.Error as e:
            raise self._error(e, "read") from e
        return [_row(r) for r in rows]

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class Connection:
    """A thread's connection inside :meth:`Database.write`: the statements of one transaction."""

    def __init__(self, conn: sqlite3.Connection, error: ErrorFactory) -> None:
        self.raw = conn
        self._error = error

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return Cursor(self.raw.execute(sql, _params(params)), self._error)
        except sqlite3.Error as e:
            raise self._error(e, "write") from e

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        try:
            return Cursor(self.raw.executemany(sql, (_params(r) for r in rows)), self._error)
        except sqlite3.Error as e:
            raise self._error(e, "write") from e


#: How long a read-only open waits for a database that another process is creating to reach this schema.
_CREATION_WAIT_S = 5.0


class Database:
    """``workspace.sqlite`` in ``folder``: per-thread connections, serialised writes, migrated on open.

    ``read_only``: opened with ``mode=ro`` (nothing is ever written, not even a WAL switch); :meth:`write`
    raises :class:`ReadOnlyError` with ``read_only_reason``; ``snapshot`` also reads the file as it stands
    (``immutable``: for a folder nobody may write). ``memory``: a private in-memory database (shared by
    this object's threads) standing in for a file that cannot be used (a read-only view of a damaged workspace,
    rebuilt in memory; a workspace that does not exist yet where nothing can be written).
    """

    FILE_NAME = "workspace.sqlite"

    def __init__(
        self,
        folder: Path,
        *,
        busy_timeout_ms: int = 10000,
        read_only: bool = False,
        memory: bool = False,
        snapshot: bool = False,
    ) -> None:
        self.folder = folder
        self.path = folder / self.FILE_NAME
        self.memory = memory
        self.read_only_reason: str | None = "opened read-only" if read_only else None
        self._busy_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self._keeper: sqlite3.Connection | None = None
        self._uri: str | None = None
        if memory:
            # A named shared-cache memory database lives as long as one connection to it is open.
            self._uri = f"file:segstudio-{secrets.token_hex(8)}?mode=memory&cache=shared"
            self._keeper = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
        elif read_only:
            # snapshot: the folder is not writable, so nobody writes the file; reading it as it stands also
            # keeps SQLite from making -wal/-shm files there (root may, where the mode bits say "read-only")
            self._uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if snapshot else "")
        conn = self.connection()
        if read_only and not memory:
            have = self.schema_version()
            # A database written moments ago may be one another process is creating right now (it holds the
            # lock and is migrating): wait for it a little rather than call a brand-new workspace outdated.
            deadline = time.monotonic() + _CREATION_WAIT_S
            while have < SCHEMA_VERSION and self._recently_written() and time.monotonic() < deadline:
                time.sleep(0.05)
                have = self.schema_version()
            if have != SCHEMA_VERSION:
                self.close()
                raise WorkspaceError(
                    f"The workspace database has schema {have}; this segstudio reads {SCHEMA_VERSION}, and a "
                    "read-only open cannot upgrade it.",
                    path=self.path,
                    fix="Open the workspace once for writing (close the other segstudio), or update segstudio.",
                )
            return
        try:
            migrate(conn, folder)
        except sqlite3.Error as e:
            self.close()
            raise self._error(e, "set up") from e
        except BaseException:
            self.close()
            raise

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def set_read_only(self, reason: str) -> None:
        """Refuse writes from now on (``reason`` goes into the error a write gets)."""
        self.read_only_reason = reason

    def _connect(self) -> sqlite3.Connection:
        timeout = self._busy_ms / 1000
        if self._uri is not None:
            try:
                conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=timeout)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                if self.memory:
                    raise
                # A WAL database in a folder nobody may write needs its -shm file, which cannot be made there:
                # ``immutable`` reads the file as it stands (a snapshot; nobody can be writing it either).
                conn = sqlite3.connect(
                    f"file:{quote(str(self.path))}?mode=ro&immutable=1", uri=True, isolation_level=None,
                    check_same_thread=False, timeout=timeout,
                )  # fmt: skip
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            return conn
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        mode = self._wal(conn)
        # WAL + NORMAL survives any process crash (kill -9); only a power cut can undo the last commits.
        # Mask files themselves are fsync'd, so the worst case is a version row to re-save, never a
        # row pointing at a missing file.
        conn.execute("PRAGMA synchronous = NORMAL" if mode == "wal" else "PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL. Several processes creating one file at once may see "locked" here without SQLite's
        busy handler being asked (it is skipped where waiting could deadlock), so wait here instead."""
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as e:
                code = getattr(e, "sqlite_errorcode", 0) & 0xFF
                if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.01)

    def _recently_written(self) -> bool:
        try:
            stamps = [p.stat().st_mtime for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                      if p.exists()]  # fmt: skip
        except OSError:
            return False
        return bool(stamps) and time.time() - max(stamps) < _CREATION_WAIT_S

    def connection(self) -> sqlite3.Connection:
        """This thread's raw connection (opened on first use, autocommit; transactions via :meth:`write`)."""
        if self._closed:
            raise WorkspaceError("The workspace is closed.", path=self.path, fix="Open the workspace again.")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except sqlite3.Error as e:
                raise self._error(e, "open") from e
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
        return str(self.query("PRAGMA journal_mode")[0][0])

    def schema_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query on this thread's connection."""
        try:
            rows = self.connection().execute(sql, _params(params)).fetchall()
        except sqlite3.Error as e:
            raise self._error(e, "read") from e
        return [_row(r) for r in rows]

    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyError` when writes are refused (call before writing a file the row will name)."""
        if self.read_only_reason is not None:
            raise ReadOnlyError(
                f"The workspace is open read-only ({self.read_only_reason}); nothing was written.",
                path=self.folder,
                fix="Close the other segstudio using this workspace (or free the disk), then open it again.",
            )

    def _error(self, err: sqlite3.Error, action: str) -> SegstudioError:
        """Our error for ``err``; a damaged file is also marked, so the next open checks it through and
        rebuilds it (a full check at every open would cost time on every start)."""
        out = db_error(err, self.path, action=action)
        if isinstance(out, WorkspaceDamagedError) and not self.read_only and not self.memory:
            try:
                (self.folder / SUSPECT_MARK).touch()
            except OSError as e:
                log.warning("could not mark %s for a check: %s", self.path, e)
        return out

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: commits when the block ends, rolls back on an exception."""
        self.check_writable()
        with self._write_lock:
            conn = Connection(self.connection(), self._error)
            if conn.in_transaction:  # nested use inside one thread joins the outer transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                try:
                    conn.raw.execute("ROLLBACK")
                except sqlite3.Error as e:  # a failed COMMIT/statement may already have ended the transaction
                    log.debug("rollback after a failed write: %s", e)
                raise
            try:
                conn.raw.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.raw.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.raw.execute("ROLLBACK")
                raise self._error(e, "write") from e

    def close(self) -> None:
        """Close every thread's connection; the WAL is checkpointed into the main file by the last close."""
        with self._all_lock:
            conns, self._all = [c for _, c in self._all], []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error as e:
                log.warning("closing a workspace connection failed: %s", e)
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        self._closed = True
