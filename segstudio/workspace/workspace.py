"""The Workspace: everything a user did to one dataset, in one folder (DESIGN §3).

```
<workspace>/
  workspace.json          what the workspace is about (typed, versioned, human-readable settings)
  workspace.sqlite        review states + history, mask versions, metrics, predictions, runs, state (WAL)
  masks/<sample>/vNNNN.png|npz     corrections, one file per version
  predictions/<checkpoint>/<sample>.png|npz
  runs/<run id>/config.json …     training runs
  sweeps/<name>/sweep.json …      sweeps trained from the app; sweeps.json: sweep folders added by reference
  models.json             the model registry: current model, promotions / refusals / rollbacks, frozen split
  journal/<sample>.journal        unsaved strokes (crash recovery)
  workspace.lock          who writes this workspace now (``segstudio.workspace.lock``)
```
The dataset's own files are never written. Thread-safety: see ``segstudio.workspace.db`` — every method may be
called from the GUI thread and from workers.

One process writes a workspace at a time: a writable open takes the workspace lock (a second one gets
``WorkspaceLockedError`` naming the holder) and may then be retried with ``read_only=True``. A read-only
workspace writes nothing at all — every write raises ``ReadOnlyError`` — and is also what a writable open falls
back to when nothing can be written (a full disk, a read-only folder), with ``read_only_reason`` saying why.
A damaged or lost database is rebuilt from the version files and journals as the workspace opens
(``segstudio.workspace.rebuild``; ``rebuild_report`` says what was done), or refused with the fix.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import sweep_stale_temps
from segstudio.core.errors import DiskFullError, ReadOnlyError, SegstudioError, WorkspaceError
from segstudio.workspace.cache import MetricsStore, PredictionStore
from segstudio.workspace.db import Database, WorkspaceDamagedError
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.journal import PendingRecovery, RecoveryJournal
from segstudio.workspace.locate import is_writable_dir, workspace_dir_for
from segstudio.workspace.lock import LockHolder, WorkspaceLock, WorkspaceLockedError, read_holder
from segstudio.workspace.models import ModelRegistry
from segstudio.workspace.rebuild import RebuildReport, assess, rebuild_in_memory, rebuild_on_disk
from segstudio.workspace.records import MaskSource, MaskVersion
from segstudio.workspace.reviews import ReviewStore
from segstudio.workspace.runs import RunStore
from segstudio.workspace.settings import WorkspaceSettings, load_workspace_settings, save_workspace_settings
from segstudio.workspace.sweeps import SweepStore
from segstudio.workspace.versions import VersionStore

log = logging.getLogger(__name__)


_CANNOT_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _cannot_write(err: SegstudioError) -> bool:
    """True for an error that means "nothing can be written here" (a full disk, a read-only folder or file
    system), after which a workspace can still be opened read-only."""
    if isinstance(err, DiskFullError | ReadOnlyError):
        return True
    cause = err.__cause__
    return isinstance(cause, OSError) and cause.errno in _CANNOT_WRITE


class StateStore:
    """Small JSON values per workspace (last sample, sort column, chosen checkpoint…): the ``settings`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str, default: Any = None) -> Any:
        rows = self._db.query("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (``TypeError`` otherwise, before anything is written)."""
        text = json.dumps(value)
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?,?)", (key, text))

    def delete(self, key: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM settings WHERE key=?", (key,))

    def all(self) -> dict[str, Any]:
        return {str(k): json.loads(v) for k, v in self._db.query("SELECT key, value FROM settings")}


class Workspace:
    """Open (creating if needed) the workspace in ``folder``. Use :meth:`for_dataset` to find the folder.

    Parts: ``reviews`` (:class:`ReviewStore`), ``versions`` (:class:`VersionStore`), ``metrics``
    (:class:`MetricsStore`), ``predictions`` (:class:`PredictionStore`), ``runs`` (:class:`RunStore`), ``sweeps``
    (:class:`~segstudio.workspace.sweeps.SweepStore`: its own sweeps and referenced sweep folders),
    ``journal`` (:class:`RecoveryJournal`), ``models`` (:class:`ModelRegistry`: the current model, its history,
    the frozen validation split), ``state`` (:class:`StateStore`) and ``events``
    (:class:`WorkspaceEvents`).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        dataset_root: str | Path | None = None,
        fsync_journal: bool = True,
        read_only: bool = False,
        sample_ids: Iterable[str] | None = None,
        rebuild: bool = False,
    ) -> None:
        """``read_only``: open without writing anything (no lock taken; every write raises ``ReadOnlyError``).
        ``sample_ids``: the dataset's ids, needed only to rebuild a damaged workspace older than the
        self-describing version folders. ``rebuild``: rebuild the database from the files even if it looks
        sound (the user asked, e.g. after a ``WorkspaceDamagedError``)."""
        self.folder = Path(folder).expanduser().resolve()
        self.lock: WorkspaceLock | None = None
        self.rebuild_report: RebuildReport | None = None
        #: who held the workspace before this session took a stale lock over (``None``: nobody)
        self.took_over: LockHolder | None = None
        self.read_only_reason: str | None = None
        if read_only:
            held = read_holder(self.folder) if self.folder.is_dir() else None
            why = f"in use by {held.describe()}" if held is not None and not held.is_stale() else "opened read-only"
            self.db = self._open_read_only(why, sample_ids)
        else:
            self.db = self._open_writable(sample_ids, rebuild=rebuild)
        self.events = WorkspaceEvents()
        self.reviews = ReviewStore(self.db, self.events)
        self.versions = VersionStore(self.db, self.events)
        self.metrics = MetricsStore(self.db, self.events)
        self.predictions = PredictionStore(self.db, self.events)
        self.runs = RunStore(self.db, self.events)
        self.sweeps = SweepStore(self.folder, writable=self.db.check_writable)
        self.journal = RecoveryJournal(self.folder / "journal", fsync=fsync_journal, read_only=self.read_only)
        self.state = StateStore(self.db)
        self.models = ModelRegistry(self.folder, writable=self.db.check_writable, read_only=self.read_only,
                                    legacy_state=self.state.get, on_change=self.events.model_changed.emit,
                                    mirror=self._mirror_current_model)
        if dataset_root is not None and not self.read_only:
            self._remember_dataset(Path(dataset_root).expanduser().resolve())

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def _open_writable(self, sample_ids: Iterable[str] | None, *, rebuild: bool) -> Database:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if not self.folder.is_dir():
                raise WorkspaceError(f"Cannot create the workspace folder ({e.strerror}).", path=self.folder,
                                     fix="Choose a writable workspace folder.") from e  # fmt: skip
        if not is_writable_dir(self.folder):
            return self._fall_back(
                WorkspaceError("The workspace folder is not writable.", path=self.folder), sample_ids
            )
        try:
            self.lock = WorkspaceLock.acquire(self.folder)
        except WorkspaceLockedError:
            raise
        except SegstudioError as e:
            if _cannot_write(e):
                return self._fall_back(e, sample_ids)
            raise
        self.took_over = self.lock.took_over
        try:
            sweep_stale_temps(self.folder)
            reason = "was to be rebuilt on request" if rebuild else assess(self.folder)
            if reason is not None:
                ids = list(sample_ids) if sample_ids is not None else None
                self.rebuild_report = rebuild_on_disk(self.folder, reason=reason, sample_ids=ids)
            try:
                return Database(self.folder)
            except WorkspaceDamagedError as e:
                if self.rebuild_report is not None:
                    raise
                # damage that only the migration's reads met: rebuild once, then open what was rebuilt
                self.rebuild_report = rebuild_on_disk(self.folder, reason=f"is damaged ({e.message})",
                                                      sample_ids=sample_ids)  # fmt: skip
                return Database(self.folder)
        except SegstudioError as e:
            self.lock.release()
            self.lock = None
            if _cannot_write(e):
                return self._fall_back(e, sample_ids)
            raise
        except BaseException:
            self.lock.release()
            self.lock = None
            raise

    def _fall_back(self, err: SegstudioError, sample_ids: Iterable[str] | None) -> Database:
        """Nothing can be written here: open read-only so the work can at least be seen."""
        log.warning("workspace %s opens read-only: %s", self.folder, err)
        return self._open_read_only(err.message, sample_ids)

    def _open_read_only(self, why: str, sample_ids: Iterable[str] | None) -> Database:
        self.read_only_reason = why
        if not self.folder.is_dir():
            raise WorkspaceError("There is no workspace in this folder.", path=self.folder,
                                 fix="Open the workspace writable once, or choose another folder.")  # fmt: skip
        snapshot = not is_writable_dir(self.folder)
        reason = assess(self.folder, snapshot=snapshot)
        db_file = self.folder / Database.FILE_NAME
        if reason is None and db_file.exists():
            db = Database(self.folder, read_only=True, snapshot=snapshot)
        else:
            # nothing usable on disk (no database yet, or a damaged one nobody may rebuild here): a view in memory
            db = Database(self.folder, memory=True)
            if reason is not None:
                self.rebuild_report = rebuild_in_memory(db, reason=reason, sample_ids=sample_ids)
        db.set_read_only(why)
        return db

    def holder(self) -> LockHolder | None:
        """Who holds the workspace lock now (for a read-only window's title), without taking it."""
        return read_holder(self.folder)

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, *, data_dir: Path | None = None, read_only: bool = False,
                    sample_ids: Iterable[str] | None = None) -> Workspace:  # fmt: skip
        """The workspace of a dataset: beside it, or under the user data folder when it is read-only."""
        return cls(workspace_dir_for(dataset_root, data_dir=data_dir), dataset_root=dataset_root,
                   read_only=read_only, sample_ids=sample_ids)  # fmt: skip

    def _remember_dataset(self, root: Path) -> None:
        """Record which dataset this workspace is about — only when that changed, so opening writes nothing in
        the usual case; a failure (a full disk) is logged, never a reason not to open."""
        try:
            rows = self.db.query("SELECT key, value FROM meta WHERE key IN ('dataset_root', 'created')")
            have = dict(rows)
            if have.get("dataset_root") not in (None, str(root)):
                log.warning("workspace %s was made for %s, now opened for %s", self.folder, have["dataset_root"], root)
            if have.get("dataset_root") != str(root) or "created" not in have:
                with self.db.write() as conn:
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dataset_root', ?)", (str(root),))
                    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (str(time.time()),))
            s = self.settings
            if s.dataset_root != str(root):
                self.save_settings(s.replace(dataset_root=str(root)))
        except SegstudioError as e:
            if not _cannot_write(e):
                raise
            log.warning("workspace %s: could not record its dataset (%s); continuing", self.folder, e.message)

    @property
    def settings(self) -> WorkspaceSettings:
        """``workspace.json`` (read fresh: a person may have edited it)."""
        return load_workspace_settings(self.folder, read_only=self.read_only)

    def save_settings(self, settings: WorkspaceSettings) -> Path:
        self.db.check_writable()
        return save_workspace_settings(self.folder, settings)

    def _mirror_current_model(self, checkpoint: str) -> None:
        self.save_settings(self.settings.replace(current_checkpoint=checkpoint))

    @property
    def dataset_root(self) -> Path | None:
        rows = self.db.query("SELECT value FROM meta WHERE key='dataset_root'")
        return Path(rows[0][0]) if rows else None

    # the save / recover cycle ---------------------------------------------------------------------------------
    def save_mask(
        self,
        sample_id: str,
        mask: np.ndarray,
        *,
        source: MaskSource | str = MaskSource.CORRECTION,
        author: str = "",
        note: str = "",
        parent: int | None = None,
        journal_seq: int | None = None,
    ) -> MaskVersion:
        """Save an edited mask as a new version; the sample's recovery journal is cleared (a clean save).

        ``journal_seq``: for a save that runs beside ongoing editing (autosave in a worker), the journal record
        number the mask was copied at (``JournalWriter.seq``); later strokes stay journaled on top of the new
        version. ``None``: the mask includes every journaled stroke.
        """
        rec = self.versions.save(sample_id, mask, source=source, author=author, note=note, parent=parent)
        try:
            self.journal.mark_saved(sample_id, version=rec.version, upto_seq=journal_seq)
        except SegstudioError as e:
            # The version is saved and durable; the journal still replays onto its older base to the same mask
            # (plus any later strokes), so nothing is lost by leaving it as it is.
            log.warning("saved %s v%d, but the recovery journal was not cleared: %s", sample_id, rec.version, e)
        return rec

    def pending_recoveries(self) -> list[PendingRecovery]:
        """Unsaved work a previous session left (offer these at start)."""
        return self.journal.pending()

    def recover(self, sample_id: str, *, gt: np.ndarray | None = None) -> np.ndarray:
        """The unsaved mask of ``sample_id``: the journal replayed over its base (a saved version, loaded here,
        or the dataset GT, passed as ``gt``, for base version 0)."""
        p = self.journal.info(sample_id)
        if p is None:
            raise SegstudioError(f"No unsaved work recorded for {sample_id!r}.", path=self.journal.folder)
        base: np.ndarray | None = None
        if not p.has_snapshot:
            if p.base_version > 0:
                base = self.versions.load(self.versions.get(sample_id, p.base_version))
            elif gt is not None:
                base = gt
            else:
                base = None  # replay names what is missing
        return self.journal.restore(sample_id, base=base)

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
