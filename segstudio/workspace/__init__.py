"""The user's state beside a dataset (DESIGN §3, §6): reviews, mask versions, caches, runs, recovery, settings.

Ring 1: stdlib sqlite3, numpy, OpenCV, psygnal, platformdirs only.
"""

from segstudio.core.atomic import atomic_write_bytes, atomic_write_text
from segstudio.workspace.db import SCHEMA_VERSION, Database, WorkspaceDamagedError
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.journal import JournalWriter, PendingRecovery, RecoveryJournal, replay
from segstudio.workspace.locate import (
    is_writable_dir,
    user_data_dir,
    workspace_dir_for,
    workspace_settings_at,
)
from segstudio.workspace.lock import LockHolder, WorkspaceLock, WorkspaceLockedError
from segstudio.workspace.maskio import read_mask, write_mask
from segstudio.workspace.rebuild import RebuildReport
from segstudio.workspace.records import (
    MaskSource,
    MaskVersion,
    MetricsEntry,
    PredictionEntry,
    ReviewState,
    ReviewStatus,
    RunRecord,
    RunStatus,
)
from segstudio.workspace.settings import WorkspaceSettings, load_workspace_settings, save_workspace_settings
from segstudio.workspace.sweeps import SweepRecord, SweepRun, SweepStore
from segstudio.workspace.workspace import StateStore, Workspace

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "JournalWriter",
    "LockHolder",
    "MaskSource",
    "MaskVersion",
    "MetricsEntry",
    "PendingRecovery",
    "PredictionEntry",
    "RebuildReport",
    "RecoveryJournal",
    "ReviewState",
    "ReviewStatus",
    "RunRecord",
    "RunStatus",
    "StateStore",
    "SweepRecord",
    "SweepRun",
    "SweepStore",
    "Workspace",
    "WorkspaceDamagedError",
    "WorkspaceEvents",
    "WorkspaceLock",
    "WorkspaceLockedError",
    "WorkspaceSettings",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_writable_dir",
    "load_workspace_settings",
    "read_mask",
    "replay",
    "save_workspace_settings",
    "user_data_dir",
    "workspace_dir_for",
    "workspace_settings_at",
    "write_mask",
]
