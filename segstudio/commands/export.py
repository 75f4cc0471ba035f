"""``segstudio export DATASET --to FORMAT --out DIR``: the dataset with its corrections, in another tool's layout.

The workspace (``--workspace``, else the dataset's own) is only read, so this runs beside the app that holds it.
Progress with an ETA goes to stderr; a summary line to stdout. Exit codes as ``docs/cli.md``: 2 for a user error
(bad filter, non-empty or in-source destination, a format that cannot hold the data), 130 when interrupted (the
destination is left as it was).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode

EXAMPLES = """examples:
  segstudio export ~/data/lungs --to coco --out ~/exports/lungs-coco
  segstudio export ~/data/lungs --to nnunet --out ~/exports/nnunet --status accepted,corrected --split train,val
  segstudio export ~/data/road --to binary-pngs --out /tmp/road --classes road --rename road=drivable
  segstudio export ~/data/lungs --to coco --out /tmp/x --progress json 2> progress.jsonl
"""

HELP = "export the dataset with its corrections to a format (filters, versions, renaming; manifest + change report)"


def _csv(text: str) -> frozenset[str]:
    return frozenset(v.strip() for v in text.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segstudio.datasets.writing import writer_names

    parser.add_argument("dataset", help="dataset folder or annotation file")
    parser.add_argument("--to", required=True, metavar="FORMAT", help="export format: " + ", ".join(writer_names()))
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="destination folder (new or empty)")
    parser.add_argument("--status", type=_csv, metavar="S1,S2",
                        help="review statuses to include: unreviewed, accepted, corrected, rejected, flagged")
    parser.add_argument("--split", type=_csv, metavar="NAME[,NAME]", help="splits to include (unassigned for none)")
    parser.add_argument("--classes", metavar="A,B", help="classes kept; the others become background")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="rename a class, repeatable; classes given one new name merge")
    parser.add_argument("--version", default="latest", metavar="latest|original|N",
                        help="mask version: latest correction (default), original GT, or each sample's version <= N")
    parser.add_argument("--predictions", default="none", choices=("none", "accepted", "unreviewed"),
                        help="accepted: accepted predictions count as labels; unreviewed: also fill images without "
                        "GT or correction with the model's prediction")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="writer option, repeatable (see docs/formats.md)")
    parser.add_argument("--workspace", type=Path, metavar="DIR", help="workspace to read (default: the dataset's)")
    parser.add_argument("--format", metavar="NAME", help="source format, when detection is ambiguous")
    add_progress_arguments(parser, quiet_help="no progress bar")


def _open_workspace(folder: Path | None, dataset_root: Path) -> Any:
    """The workspace read-only (``None`` when the dataset has none yet and none was given)."""
    from segstudio.core.errors import WorkspaceError
    from segstudio.workspace.locate import workspace_dir_for
    from segstudio.workspace.workspace import Workspace

    if folder is None:
        folder = workspace_dir_for(dataset_root)
        if not folder.is_dir():
            return None
    elif not folder.is_dir():
        raise WorkspaceError("There is no workspace in this folder.", path=folder,
                             fix="Give the workspace folder (<dataset>.segstudio by default), or leave --workspace out.")
    return Workspace(folder, read_only=True)


def run(args: argparse.Namespace) -> int:
    from segstudio.commands.info import parse_option
    from segstudio.datasets.registry import open_dataset
    from segstudio.workspace.export import (
        ExportCancelled,
        ExportFinished,
        ExportProgress,
        ExportRequest,
        run_export,
    )

    try:
        options = dict(parse_option(o) for o in args.option)
        rename = dict(_pair(r) for r in args.rename)
    except ValueError as e:
        print(f"segstudio export: error: {e}", file=sys.stderr)
        return 2
    ds = open_dataset(args.dataset, format=args.format)
    ws = _open_workspace(args.workspace, Path(ds.root))
    events = None
    bar: Progress | None = None
    try:
        req = ExportRequest(
            dataset=ds, workspace=ws, to=args.to, out=args.out, statuses=args.status, splits=args.split,
            classes=tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None,
            rename=rename, version=args.version, predictions=args.predictions, options=options,
        )
        bar = Progress("export", mode=progress_mode(args))
        events = run_export(req)
        for ev in events:
            if isinstance(ev, ExportProgress):
                bar.update(ev.done, ev.total, eta_s=ev.eta_s)
            elif isinstance(ev, ExportFinished):
                bar.close()
                c = ev.counts
                used = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items()
                                 if k not in ("images", "changed", "files"))
                print(f"exported {c['images']} images to {ev.out} ({used}; {c['changed']} changed against the GT)")
                print(f"manifest: {ev.manifest}\nchange report: {ev.report}")
            elif isinstance(ev, ExportCancelled):
                return 130
    finally:
        if bar is not None:
            bar.close()
        if events is not None:
            events.close()  # Ctrl+C: the unfinished export's temp folder goes now, not at garbage collection
        if ws is not None:
            ws.close()
    return 0


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"--rename takes OLD=NEW, got {text!r}.")
    old, new = text.split("=", 1)
    return old.strip(), new.strip()
