"""The WORKSPACE argument of the loop's commands (``retrain``, ``models``, ``queue``, ``pseudo-label``).

WORKSPACE is a workspace folder (``<dataset>.segstudio``, or wherever the app keeps it) — its ``workspace.json``
names the dataset and the format it was opened with — or a dataset path, whose workspace is then found the way
the app finds it (beside the dataset, else under the user data folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

WORKSPACE_HELP = ("the workspace folder (<dataset>.segstudio), or the dataset (folder or annotation file), whose "
                  "workspace is then found as the app finds it")


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workspace", type=Path, metavar="WORKSPACE", help=WORKSPACE_HELP)
    parser.add_argument("--format", dest="format", metavar="NAME",
                        help="dataset format, when detection is ambiguous (default: the one the workspace remembers)")


def open_loop(args: argparse.Namespace, *, writable: bool = True, need_dataset: bool = True) -> tuple[Any, Any]:
    """``(workspace, dataset)`` for WORKSPACE. ``writable``: take the workspace (refused with the holder's name
    when the app has it open); else open it read-only. ``need_dataset=False``: the dataset is not opened (None)."""
    from segstudio.core.errors import WorkspaceError
    from segstudio.datasets.registry import open_dataset
    from segstudio.workspace.locate import workspace_dir_for, workspace_settings_at
    from segstudio.workspace.workspace import Workspace

    path = Path(args.workspace).expanduser()
    settings = workspace_settings_at(path)
    fmt = getattr(args, "format", None)
    if settings is not None:
        folder = path.parent if path.name in ("workspace.sqlite", "workspace.json") else path
        root = Path(settings.dataset_root)
        fmt = fmt or settings.dataset_format or None
        options = dict(settings.format_options)
    elif (path / "workspace.sqlite").is_file():
        raise WorkspaceError("This workspace does not say which dataset it belongs to.", path=path,
                             fix="Open the dataset once in the app (segstudio DATASET), or give the dataset path.")
    elif not path.exists():
        raise WorkspaceError("There is no workspace or dataset here.", path=path,
                             fix="Give the workspace folder (<dataset>.segstudio by default) or the dataset's path.")
    else:
        root, options = path, {}
        folder = None
    dataset = None
    if need_dataset or folder is None:
        try:
            dataset = open_dataset(root, format=fmt, **options)
        except TypeError:  # options of another format version: detect afresh
            dataset = open_dataset(root, format=fmt)
        root = Path(dataset.root)
        if folder is None:
            folder = workspace_dir_for(root)
            if not (folder / "workspace.sqlite").is_file() and not writable:
                raise WorkspaceError("This dataset has no workspace yet.", path=folder,
                                     fix="Open it in the app, or predict into it (segstudio predict ... "
                                         "--workspace DIR), first.")
    ids = [s.id for s in dataset.samples] if dataset is not None else None
    if not writable:
        return Workspace(folder, read_only=True, sample_ids=ids), dataset
    return take_workspace(folder, root=root, dataset=dataset), dataset


def take_workspace(folder: Path, *, root: Path, dataset: Any = None) -> Any:
    """The workspace at ``folder`` (created when new) opened for writing, for the dataset at ``root``; the
    dataset's format is remembered, as the app does, so that the next command (or the app) reopens it alike.
    Refused with the holder's name when the app or another command has it."""
    from segstudio.core.errors import SegstudioError, WorkspaceError
    from segstudio.workspace.lock import WorkspaceLockedError
    from segstudio.workspace.workspace import Workspace

    ids = [s.id for s in dataset.samples] if dataset is not None else None
    try:
        ws = Workspace(folder, dataset_root=root, sample_ids=ids)
    except WorkspaceLockedError as exc:
        who = exc.holder.describe() if exc.holder is not None else "another process"
        raise WorkspaceError(f"The workspace is in use by {who}.", path=folder,
                             fix="Close it there (or wait for that command to end), then run this again.") from exc
    if ws.read_only:
        reason = ws.read_only_reason
        ws.close()
        raise WorkspaceError(f"The workspace cannot be written ({reason}).", path=folder,
                             fix="Free disk space or fix the folder's permissions, then run this again.")
    fmt = getattr(dataset, "format_name", "") if dataset is not None else ""
    if fmt and ws.settings.dataset_format != fmt:
        try:
            ws.save_settings(ws.settings.replace(dataset_format=fmt))
        except SegstudioError as exc:  # a full disk: the command still runs
            note(f"note: could not remember the dataset's format in {ws.folder}: {exc}")
    return ws


def note(text: str) -> None:
    print(text, file=sys.stderr)
