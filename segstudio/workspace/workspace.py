"""The Workspace: everything a user did to one dataset, in one folder (DESIGN §3).

```
<workspace>/
  workspace.json          what the workspace is about (typed, versioned, human-readable settings)
  workspace.sqlite        review states + history, mask versions, metrics, predictions, runs, state (WAL)
  masks/<sample>/vNNNN.png|npz     corrections, one file per version
  predictions/<checkpoint>/<sample>.png|npz
  runs/<run id>/config.json …     training runs
  journal/<sample>.journal        unsaved strokes (crash recovery)
```
The dataset's own files are never written. Thread-safety: see ``segstudio.workspace.db`` — every method may be
called from the GUI thread and from workers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.workspace.cache import MetricsStore, PredictionStore
from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.journal import PendingRecovery, RecoveryJournal
from segstudio.workspace.locate import is_writable_dir, workspace_dir_for
from segstudio.workspace.records import MaskSource, MaskVersion
from segstudio.workspace.reviews import ReviewStore
from segstudio.workspace.runs import RunStore
from segstudio.workspace.settings import WorkspaceSettings, load_workspace_settings, save_workspace_settings
from segstudio.workspace.versions import VersionStore

log = logging.getLogger(__name__)


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
    (:class:`MetricsStore`), ``predictions`` (:class:`PredictionStore`), ``runs`` (:class:`RunStore`),
    ``journal`` (:class:`RecoveryJournal`), ``state`` (:class:`StateStore`) and ``events``
    (:class:`WorkspaceEvents`).
    """

    def __init__(self, folder: str | Path, *, dataset_root: str | Path | None = None, fsync_journal: bool = True) -> None:
        self.folder = Path(folder).expanduser().resolve()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SegstudioError(f"Cannot create the workspace folder ({e.strerror}).", path=self.folder, fix="Choose a writable workspace folder.") from e
        if not is_writable_dir(self.folder):
            raise SegstudioError("The workspace folder is not writable.", path=self.folder, fix="Choose a writable workspace folder.")
        self.db = Database(self.folder)
        self.events = WorkspaceEvents()
        self.reviews = ReviewStore(self.db, self.events)
        self.versions = VersionStore(self.db, self.events)
        self.metrics = MetricsStore(self.db, self.events)
        self.predictions = PredictionStore(self.db, self.events)
        self.runs = RunStore(self.db, self.events)
        self.journal = RecoveryJournal(self.folder / "journal", fsync=fsync_journal)
        self.state = StateStore(self.db)
        if dataset_root is not None:
            self._remember_dataset(Path(dataset_root).expanduser().resolve())

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, *, data_dir: Path | None = None) -> Workspace:
        """The workspace of a dataset: beside it, or under the user data folder when it is read-only."""
        return cls(workspace_dir_for(dataset_root, data_dir=data_dir), dataset_root=dataset_root)

    def _remember_dataset(self, root: Path) -> None:
        rows = self.db.query("SELECT value FROM meta WHERE key='dataset_root'")
        if rows and rows[0][0] != str(root):
            log.warning("workspace %s was made for %s, now opened for %s", self.folder, rows[0][0], root)
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dataset_root', ?)", (str(root),))
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (str(time.time()),))
        s = self.settings
        if s.dataset_root != str(root):
            self.save_settings(s.replace(dataset_root=str(root)))

    @property
    def settings(self) -> WorkspaceSettings:
        """``workspace.json`` (read fresh: a person may have edited it)."""
        return load_workspace_settings(self.folder)

    def save_settings(self, settings: WorkspaceSettings) -> Path:
        return save_workspace_settings(self.folder, settings)

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
        self.journal.mark_saved(sample_id, version=rec.version, upto_seq=journal_seq)
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

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
