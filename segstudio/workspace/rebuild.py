"""A workspace whose database is gone, empty or damaged is rebuilt from its files, never emptied (DESIGN §6).

:func:`assess` tells, without writing, whether ``workspace.sqlite`` can be trusted: missing while mask versions
or journals are on disk; zero bytes; not SQLite; a damaged page (a full check runs when a query met one, see
``db.SUSPECT_MARK``; the version and review tables are read through at every open); no workspace tables while
work is on disk; or no version rows while version files exist.

A rebuild (:func:`rebuild_on_disk`) builds a complete new database in a temp file, then moves the damaged one
aside as ``workspace.sqlite.damaged-<time>`` (never deleted) and puts the new one in its place:
- rows salvaged from the damaged file, table by table, as far as each can be read (reviews and their history,
  state, runs, caches, and the version rows whose file is there with the recorded checksum);
- a row for every other version file under ``masks/<slug>/vNNNN.png|npz`` (checksum, dtype and shape read from
  the file). The slug cannot be turned back into a sample id: ``masks/<slug>/sample.json`` names it (written
  since this version), else the salvaged rows, the journals' headers, or the ``sample_ids`` the caller passes
  (the dataset's ids; ring 1 does not open datasets itself). A version folder nobody names refuses the
  rebuild — with the fix — before anything is moved.
- the recovery journals stay as they are: they hold their sample ids and are offered again.

A read-only instance cannot write: it rebuilds into memory (:func:`rebuild_in_memory`) to show the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from segstudio.core.atomic import fsync_dir, temp_path_for
from segstudio.core.errors import SegstudioError, WorkspaceError, io_error
from segstudio.workspace.db import (
    SUSPECT_MARK,
    Database,
    WorkspaceDamagedError,
    db_error,
    is_damage,
    migrate,
    to_db,
)
from segstudio.workspace.journal import _read_frames
from segstudio.workspace.locate import slug
from segstudio.workspace.maskio import read_mask
from segstudio.workspace.versions import read_sample_file, versions_on_disk

log = logging.getLogger(__name__)

_MAGIC = b"SQLite format 3\x00"
#: tables copied from a damaged database (``mask_versions`` is handled on its own: rows are checked against files)
_SALVAGE = ("meta", "reviews", "review_history", "settings", "runs", "metrics", "predictions")


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild found and did; :meth:`message` is the sentence to show the user."""

    folder: Path
    reason: str
    damaged: Path | None  #: where the old file was set aside (None: there was none, or rebuilt in memory)
    versions: int
    samples: int
    reviews: int  #: review decisions salvaged from the old file
    journals: int  #: samples with unsaved work in the recovery journal (kept, offered again)
    unreadable: tuple[Path, ...] = field(default=())
    in_memory: bool = False

    def message(self) -> str:
        kept = f" The damaged file is kept as {self.damaged.name}." if self.damaged is not None else ""
        where = "shown rebuilt (read-only, in memory)" if self.in_memory else "rebuilt"
        lost = "" if self.reviews else " No review decisions could be recovered."
        bad = f" {len(self.unreadable)} version file(s) could not be read and were left in place." if self.unreadable else ""
        return (
            f"The workspace database {self.reason}; the workspace was {where} from its files: {self.versions} mask "
            f"version(s) of {self.samples} sample(s), {self.reviews} review decision(s), {self.journals} unsaved "
            f"edit journal(s).{kept}{lost}{bad}"
        )


def _db_path(folder: Path) -> Path:
    return folder / Database.FILE_NAME


def _version_dirs(folder: Path) -> list[Path]:
    masks = folder / "masks"
    try:
        return sorted(p for p in masks.iterdir() if p.is_dir())
    except OSError:
        return []


def _journals(folder: Path) -> list[Path]:
    try:
        return sorted((folder / "journal").glob("*.journal"))
    except OSError:
        return []


def _has_version_files(folder: Path) -> bool:
    return any(versions_on_disk(d) for d in _version_dirs(folder))


def work_on_disk(folder: Path) -> bool:
    """True when mask versions or recovery journals lie in the workspace (work a database must account for)."""
    return _has_version_files(folder) or bool(_journals(folder))


def _connect_ro(path: Path, *, snapshot: bool = False) -> sqlite3.Connection:
    """A read-only connection that writes nothing; falls back to reading the file as it stands (``immutable``)
    where its WAL index cannot be opened (a read-only folder), or reads it so at once with ``snapshot``."""
    if snapshot:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, isolation_level=None)
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA user_version").fetchone()
        return conn
    except sqlite3.OperationalError:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, isolation_level=None)


def assess(folder: Path, *, snapshot: bool = False) -> str | None:
    """Why ``workspace.sqlite`` in ``folder`` cannot be trusted (a phrase: "is empty (0 bytes)"), or ``None``
    when it is sound or absent with nothing to account for (a new workspace). Writes nothing (``snapshot``: not
    even SQLite's -shm file, for a folder nobody may write)."""
    path = _db_path(folder)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing" if work_on_disk(folder) else None
    except OSError as e:
        raise io_error(e, path, action="read") from e
    wal = path.with_name(path.name + "-wal")
    if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return "is empty (0 bytes)"
    if size:
        try:
            with path.open("rb") as f:
                head = f.read(len(_MAGIC))
        except OSError as e:
            raise io_error(e, path, action="read") from e
        if head != _MAGIC:
            return "is not an SQLite database"
    try:
        conn = _connect_ro(path, snapshot=snapshot)
    except sqlite3.Error as e:
        if is_damage(e):
            return f"is damaged ({e})"
        raise db_error(e, path, action="open") from e
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if (folder / SUSPECT_MARK).exists():
            result = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
            if result != ["ok"]:
                return f"is damaged ({'; '.join(result)})"
        if version == 0:
            if tables:
                return "is not a segstudio workspace database"
            return "holds no workspace tables" if work_on_disk(folder) else None
        if "mask_versions" not in tables:
            return "lacks its mask version table"
        # Every page of the two tables that hold people's work is read (a few ms for 10,000 rows); caches and
        # runs are checked only after a query met damage (the mark above).
        n_versions = int(conn.execute("SELECT count(path) FROM mask_versions").fetchone()[0])
        if "reviews" in tables:
            conn.execute("SELECT count(status) FROM reviews").fetchone()
        if n_versions == 0 and _has_version_files(folder):
            return "knows none of the mask versions on disk"
    except sqlite3.Error as e:
        if is_damage(e):
            return f"is damaged ({e})"
        raise db_error(e, path) from e
    finally:
        conn.close()
    return None


# --- the plan: what the new database will hold --------------------------------------------------------------------


@dataclass
class _Plan:
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = field(default_factory=dict)
    versions: list[tuple[Any, ...]] = field(default_factory=list)  # mask_versions rows, full column set
    samples: set[Any] = field(default_factory=set)
    unreadable: list[Path] = field(default_factory=list)
    journals: int = 0


_VERSION_COLS = ("sample_id", "version", "path", "time", "source", "author", "note", "dtype", "shape", "sha256", "parent")


def _salvage(path: Path, *, snapshot: bool = False) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every row that can still be read from a damaged database, per table (a table stops at its first bad
    page; what came before it is kept)."""
    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    if not path.exists() or path.stat().st_size == 0:
        return out
    try:
        conn = _connect_ro(path, snapshot=snapshot)
    except sqlite3.Error as e:
        log.warning("nothing can be salvaged from %s: %s", path, e)
        return out
    try:
        for table in (*_SALVAGE, "mask_versions"):
            try:
                cols = [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]
            except sqlite3.Error:
                continue
            if not cols:
                continue
            rows: list[tuple[Any, ...]] = []
            try:
                for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                    rows.append(tuple(r))
            except sqlite3.Error as e:
                log.warning("salvaging %s from %s stopped after %d rows: %s", table, path, len(rows), e)
            out[table] = (cols, rows)
    finally:
        conn.close()
    return out


def _journal_ids(folder: Path) -> dict[str, str]:
    """slug -> sample id from the recovery journals' headers."""
    out: dict[str, str] = {}
    for p in _journals(folder):
        try:
            frames = _read_frames(p)
        except (OSError, ValueError):
            continue
        if frames and isinstance(frames[0][0].get("sample_id"), str):
            out[p.stem] = frames[0][0]["sample_id"]
    return out


def _plan(folder: Path, *, sample_ids: Iterable[str] | None, salvage_from: Path | None, snapshot: bool = False) -> _Plan:
    plan = _Plan()
    salvaged = _salvage(salvage_from, snapshot=snapshot) if salvage_from is not None else {}
    old_versions: dict[tuple[str, int], dict[str, Any]] = {}
    names: dict[str, Any] = {}  # version folder name -> sample id (str, or the bytes of a non-UTF-8 one)
    if "mask_versions" in salvaged:
        cols, rows = salvaged.pop("mask_versions")
        for r in rows:
            rec = dict(zip(cols, r, strict=True))
            parts = str(rec.get("path", "")).split("/")
            if len(parts) == 3 and parts[0] == "masks":
                names.setdefault(parts[1], rec["sample_id"])
                old_versions[(parts[1], int(rec["version"]))] = rec
    for cols, rows in salvaged.values():
        if "sample_id" in cols:
            i = cols.index("sample_id")
            for r in rows:
                sid = r[i].decode("utf-8", "surrogateescape") if isinstance(r[i], bytes) else str(r[i])
                names.setdefault(slug(sid), r[i])
    plan.tables = salvaged
    for name, sid in _journal_ids(folder).items():
        names.setdefault(name, sid)
    plan.journals = len(_journals(folder))

    dirs = [(d, versions_on_disk(d)) for d in _version_dirs(folder)]
    dirs = [(d, files) for d, files in dirs if files]
    for d, _ in dirs:
        own = read_sample_file(d)
        if own is not None:
            names[d.name] = own
    missing = [d for d, _ in dirs if d.name not in names]
    if missing and sample_ids is not None:
        wanted = {d.name for d in missing}
        for sid in sample_ids:
            s = slug(sid)
            if s in wanted:
                names[s] = sid
        missing = [d for d in missing if d.name not in names]
    if missing:
        raise WorkspaceDamagedError(
            f"The workspace database {'' if salvage_from is None else 'is unusable and '}cannot be rebuilt: "
            f"{len(missing)} mask version folder(s) do not say which sample they belong to "
            f"(e.g. {missing[0].name}).",
            path=_db_path(folder),
            fix="Open the workspace with its dataset in segstudio (it maps the folders back to the dataset's "
            "samples), or restore a backup of workspace.sqlite. Nothing was changed.",
        )
    for d, files in dirs:
        sid = names[d.name]
        for number, path in sorted(files.items()):
            rel = path.relative_to(folder).as_posix()
            try:
                data = path.read_bytes()
            except OSError as e:
                log.warning("rebuild: cannot read %s: %s", path, e)
                plan.unreadable.append(path)
                continue
            digest = hashlib.sha256(data).hexdigest()
            old = old_versions.get((d.name, number))
            if old is not None and old.get("path") == rel and old.get("sha256", "") in ("", digest):
                row = {c: old.get(c) for c in _VERSION_COLS}
                row["sha256"] = digest
                if not row.get("dtype"):
                    row["dtype"], row["shape"] = _describe(path)
            else:
                try:
                    dtype, shape = _describe(path)
                except SegstudioError as e:
                    log.warning("rebuild: %s", e)
                    plan.unreadable.append(path)
                    continue
                row = {"sample_id": sid, "version": number, "path": rel, "time": path.stat().st_mtime,
                       "source": "correction", "author": "", "note": "rebuilt from the file", "dtype": dtype,
                       "shape": shape, "sha256": digest, "parent": None}  # fmt: skip
            plan.versions.append(tuple(row[c] for c in _VERSION_COLS))
            plan.samples.add(sid)
    return plan


def _describe(path: Path) -> tuple[str, str]:
    arr = read_mask(path)
    return str(arr.dtype), ",".join(map(str, arr.shape))


def _fill(conn: sqlite3.Connection, plan: _Plan) -> int:
    """Write the plan into a migrated database in one transaction; returns the review decisions restored."""
    reviews = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, (cols, rows) in plan.tables.items():
            have = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}
            keep = [i for i, c in enumerate(cols) if c in have]
            if not keep or not rows:
                continue
            names = ", ".join(cols[i] for i in keep)
            marks = ",".join("?" * len(keep))
            for r in rows:
                try:
                    conn.execute(f"INSERT OR IGNORE INTO {table}({names}) VALUES ({marks})", [r[i] for i in keep])
                except sqlite3.Error as e:  # a salvaged row that breaks a constraint of today's schema
                    log.warning("rebuild: a %s row was left out: %s", table, e)
            if table == "reviews":
                reviews = len(rows)
        conn.executemany(
            f"INSERT OR REPLACE INTO mask_versions({', '.join(_VERSION_COLS)}) VALUES ({','.join('?' * len(_VERSION_COLS))})",
            [tuple(to_db(v) for v in r) for r in plan.versions],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return reviews


def _report(folder: Path, *, plan: _Plan, reason: str, reviews: int, damaged: Path | None, in_memory: bool) -> RebuildReport:
    return RebuildReport(folder=folder, reason=reason, damaged=damaged, versions=len(plan.versions),
                         samples=len(plan.samples), reviews=reviews, journals=plan.journals,
                         unreadable=tuple(plan.unreadable), in_memory=in_memory)  # fmt: skip


def rebuild_on_disk(folder: Path, *, reason: str, sample_ids: Iterable[str] | None = None) -> RebuildReport:
    """Rebuild ``workspace.sqlite`` (the caller holds the workspace lock and has no connection open to it)."""
    path = _db_path(folder)
    plan = _plan(folder, sample_ids=sample_ids, salvage_from=path if path.exists() else None)
    tmp = temp_path_for(path)  # a kill mid-build leaves a temp that the next writable open sweeps away
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            # No rollback journal beside the temp (nothing to clean up after a kill); FULL: durable at COMMIT.
            conn.execute("PRAGMA journal_mode = MEMORY")
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn, folder)
            reviews = _fill(conn, plan)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except sqlite3.Error as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise db_error(e, tmp, action="rebuild") from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    damaged: Path | None = None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        if path.exists():
            damaged = path.with_name(f"{path.name}.damaged-{stamp}")
            n = 1
            while damaged.exists():
                n += 1
                damaged = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
            for suffix in ("-wal", "-shm", ""):  # the main file last: until it moves, the old state is whole
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.replace(side, damaged.with_name(damaged.name + suffix))
        os.replace(tmp, path)
    except OSError as e:
        raise io_error(e, path, action="put the rebuilt database in place of") from e
    fsync_dir(folder)
    with contextlib.suppress(OSError):
        (folder / SUSPECT_MARK).unlink()
    report = _report(folder, plan=plan, reason=reason, reviews=reviews, damaged=damaged, in_memory=False)
    log.warning("workspace %s: %s", folder, report.message())
    return report


def rebuild_in_memory(db: Database, *, reason: str, sample_ids: Iterable[str] | None = None) -> RebuildReport:
    """Fill ``db`` (a fresh in-memory :class:`Database`) with the workspace in ``db.folder`` rebuilt from its
    files, for a read-only view; nothing on disk is touched."""
    if not db.memory:
        raise WorkspaceError("An in-memory rebuild needs an in-memory database.", path=db.path)
    path = _db_path(db.folder)
    plan = _plan(db.folder, sample_ids=sample_ids, salvage_from=path if path.exists() else None, snapshot=True)
    try:
        reviews = _fill(db.connection(), plan)
    except sqlite3.Error as e:
        raise db_error(e, db.path, action="rebuild") from e
    report = _report(db.folder, plan=plan, reason=reason, reviews=reviews, damaged=None, in_memory=True)
    log.warning("workspace %s: %s", db.folder, report.message())
    return report
