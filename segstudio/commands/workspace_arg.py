"""The ``--workspace`` of ``predict`` and ``evaluate``: a cache of predictions, shared with the app.

While the app (or another command) holds the workspace, the command still runs: it opens the workspace read-only,
reads the cached predictions, writes none, and says so on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def open_cache_workspace(folder: str | Path, *, dataset_root: Path, dataset_format: str = "") -> Any:
    """The workspace at ``folder``, writable when free, else read-only with a note on stderr. A writable one
    remembers ``dataset_format``, as the app does (the loop's commands and the app reopen the dataset alike)."""
    from segstudio.workspace.lock import WorkspaceLockedError
    from segstudio.workspace.workspace import Workspace

    try:
        ws = Workspace(folder, dataset_root=dataset_root)
    except WorkspaceLockedError as e:
        ws = Workspace(folder, read_only=True)
        who = e.holder.describe() if e.holder is not None else "another process"
        print(f"note: the workspace is in use by {who}; it is read as a cache and nothing is written to it",
              file=sys.stderr)
        return ws
    if ws.read_only:
        print(f"note: the workspace opens read-only ({ws.read_only_reason}); nothing is written to it",
              file=sys.stderr)
    elif dataset_format and ws.settings.dataset_format != dataset_format:
        from segstudio.core.errors import SegstudioError

        try:
            ws.save_settings(ws.settings.replace(dataset_format=dataset_format))
        except SegstudioError as exc:
            print(f"note: could not remember the dataset's format: {exc}", file=sys.stderr)
    return ws
