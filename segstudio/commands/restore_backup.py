"""``segstudio restore-backup [WORKSPACE|DATASET] [--list] [BACKUP]``: undo a write-back.

Without BACKUP the newest backup of the workspace is restored (``--list`` shows them all). A GT file changed since
the write-back is skipped and listed (exit 1) unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  segstudio restore-backup ~/data/lungs --list
  segstudio restore-backup ~/data/lungs                     # the newest backup
  segstudio restore-backup ~/data/lungs.segstudio 20240501-101500 --force
"""

HELP = "put back the GT files a write-back replaced (from <workspace>/backups/)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("where", nargs="?", type=Path, default=None, metavar="WORKSPACE|DATASET",
                        help="the workspace folder, or the dataset whose workspace holds the backups")
    parser.add_argument("backup", nargs="?", type=Path, default=None, metavar="BACKUP",
                        help="backup folder or its name under backups/ (default: the newest)")
    parser.add_argument("--list", action="store_true", help="list the backups and exit")
    parser.add_argument("--force", action="store_true", help="also replace files changed since the write-back")


def _workspace_folder(where: Path) -> Path:
    from segstudio.core.errors import SegstudioError
    from segstudio.workspace.locate import workspace_dir_for

    if (where / "workspace.sqlite").exists() or (where / "backups").is_dir():
        return where
    if (where / "backup.json").is_file():
        return where.parent.parent
    folder = workspace_dir_for(where)
    if not folder.is_dir():
        raise SegstudioError("No workspace found for this path.", path=where,
                             fix="Give the workspace folder (<dataset>.segstudio) or the dataset it belongs to.")
    return folder


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.workspace.writeback import list_backups, restore_backup

    if args.where is None:
        raise SegstudioError("Say which workspace or dataset.", fix="segstudio restore-backup DATASET [--list]")
    if args.backup is None and (args.where / "backup.json").is_file():
        backup: Path | None = args.where
        folder = args.where.parent.parent
    else:
        folder = _workspace_folder(args.where)
        backup = args.backup
    backups = list_backups(folder)
    if args.list:
        if not backups:
            print(f"no backups in {folder / 'backups'}")
        for b in backups:
            print(f"{b.path.name}  {b.time}  {b.files} files  {b.state}  {b.dataset_root}")
        return 0
    if backup is None:
        if not backups:
            raise SegstudioError("This workspace has no write-back backups.", path=folder / "backups",
                                 fix="Nothing to restore; --list shows the backups.")
        backup = backups[0].path
    elif not backup.is_dir() and (folder / "backups" / backup).is_dir():
        backup = folder / "backups" / backup
    res = restore_backup(backup, force=args.force)
    print(f"restored {len(res.restored)} files from {res.backup} ({len(res.unchanged)} already as they were)")
    for path, why in res.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    return 1 if res.skipped else 0
