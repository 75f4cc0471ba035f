"""``segstudio models list|promote|rollback|import WORKSPACE``: the workspace's model registry from the command line.

``list`` shows the current model, the frozen validation split and the history (every adoption, promotion, refusal
and rollback with its verdict, interval and reason). ``promote`` makes a model current: a retraining round's run
id (its figures are recorded with it; over a refusal, as your decision), a training run's id (its best, else last
checkpoint) or a checkpoint folder. ``rollback`` goes back to the model that was current before. ``import`` brings a
run trained elsewhere (a run bundle under torchrun on a cluster, ``segstudio train --out``) into the run history,
copied; ``--promote`` also makes its model current.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from segstudio.commands.loop_workspace import add_workspace_argument, open_loop

EXAMPLES = """examples:
  segstudio models list ~/data/lungs.segstudio
  segstudio models promote ~/data/lungs.segstudio 20261204-101500-ab12cd --reason "borders checked by dr. k"
  segstudio models promote ~/data/lungs runs/lungs/checkpoints/best
  segstudio models rollback ~/data/lungs.segstudio --reason "worse on the new scanner"
  segstudio models import ~/data/lungs.segstudio /mnt/cluster/lungs-bundle/run
  segstudio models import ~/data/lungs.segstudio ~/bundles/lungs-ddp --promote --reason "8-GPU run"
"""

HELP = "list the workspace's models and their history; promote, roll back, or import a run trained elsewhere"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the current model, the frozen validation split and the history")
    add_workspace_argument(ls)
    ls.add_argument("--json", action="store_true", help="print it as JSON")
    pr = sub.add_parser("promote", help="make a model current (a round's or run's id, or a checkpoint folder)")
    add_workspace_argument(pr)
    pr.add_argument("target", metavar="RUN|CHECKPOINT", help="a run id of the workspace, or a checkpoint folder")
    pr.add_argument("--reason", default="", help="why (recorded in the history)")
    pr.add_argument("--author", default="", help="who (recorded in the history)")
    rb = sub.add_parser("rollback", help="go back to the model that was current before")
    add_workspace_argument(rb)
    rb.add_argument("--reason", default="rolled back from the command line", help="why (recorded in the history)")
    rb.add_argument("--author", default="", help="who (recorded in the history)")
    im = sub.add_parser("import", help="copy a finished run folder (or a run bundle's run) into the run history")
    add_workspace_argument(im)
    im.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="the run folder (train_config.json, run.json, checkpoints/), or a run bundle's folder")
    im.add_argument("--name", default=None, help="the run's name in the history (default: '<folder> (imported)')")
    im.add_argument("--promote", action="store_true", help="also make its model the workspace's current model")
    im.add_argument("--reason", default="", help="with --promote: why (recorded in the history)")
    im.add_argument("--author", default="", help="with --promote: who (recorded in the history)")


def _interval(figures: Any) -> str:
    gate = figures.get("gate") if isinstance(figures, dict) else None
    if not isinstance(gate, dict):
        return ""
    vals = [gate.get(k) for k in ("mean_delta", "ci_low", "ci_high")]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in vals):
        return ""
    return f"{vals[0]:+.4f} [{vals[1]:+.4f}, {vals[2]:+.4f}]"


def _list(ws: Any, args: argparse.Namespace) -> int:
    cur, split, history = ws.models.current(), ws.models.validation_split(), ws.models.history()
    if args.json:
        print(json.dumps({
            "current": None if cur is None else {"checkpoint": str(cur.checkpoint), "run": cur.run_id},
            "validation": None if split is None else {"ids": list(split.ids), "from_run": split.from_run},
            "history": [{"seq": e.seq, "action": e.action.value, "checkpoint": str(e.checkpoint), "run": e.run_id,
                         "previous": str(e.previous) if e.previous else None, "reason": e.reason,
                         "author": e.author, "time": e.time, "verdict": e.verdict, "figures": dict(e.figures)}
                        for e in history]}, indent=2, default=str))
        return 0
    print(f"current model: {cur.checkpoint} (run {cur.run_id or '—'})" if cur else "current model: none yet")
    print(f"validation split: {len(split.ids)} image(s), frozen from run {split.from_run or '—'}" if split
          else "validation split: not frozen yet (the first round chooses it)")
    if not history:
        print("history: empty")
        return 0
    print("history (oldest first):")
    for e in history:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.time))
        verdict = f" · gate {e.verdict}" if e.verdict else ""
        interval = _interval(e.figures)
        print(f"  {e.seq:>3}  {when}  {e.action.value:<8} run {e.run_id or '—'} ({e.checkpoint.name}){verdict}"
              f"{' · Δ Dice ' + interval if interval else ''}")
        print(f"       {e.reason}{' — ' + e.author if e.author else ''}")
    return 0


def _promote(ws: Any, args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.engine.retrain import promote_round, read_comparison
    from segstudio.workspace.models import run_checkpoint

    target = str(args.target)
    run = next((r for r in ws.runs.all() if r.id == target), None)
    if run is not None and read_comparison(run.folder) is not None:
        path = promote_round(ws, run.id, reason=args.reason, author=args.author)
    elif run is not None:
        checkpoint = run_checkpoint(run.folder)
        if checkpoint is None:
            raise SegstudioError(f"Run {run.name or run.id} has no checkpoint.", path=run.folder,
                                 fix="Choose a run that trained at least one epoch (segstudio models list).")
        ws.models.adopt(checkpoint, run_id=run.id, reason=args.reason or "chosen from the command line",
                        author=args.author)
        path = checkpoint
    else:
        folder = Path(target).expanduser()
        if not (folder / "config.json").is_file():
            raise SegstudioError(f"{target!r} is neither a run of this workspace nor a checkpoint folder.",
                                 path=folder, fix="Give a run id (segstudio models list) or a run's "
                                                  "checkpoints/best folder.")
        owner = next((r for r in ws.runs.all() if folder.resolve().is_relative_to(r.folder.resolve())), None)
        ws.models.adopt(folder.resolve(), run_id=owner.id if owner else "",
                        reason=args.reason or "chosen from the command line", author=args.author)
        path = folder.resolve()
    print(f"current model: {path}")
    return 0


def _import(ws: Any, dataset: Any, args: argparse.Namespace) -> int:
    from segstudio.engine.run_check import check_run_for_import
    from segstudio.workspace.models import run_checkpoint
    from segstudio.workspace.run_import import import_run_folder

    schema = dataset.schema if dataset is not None else None
    rec = import_run_folder(ws.runs, args.run_dir, name=args.name,
                            check=lambda summary: check_run_for_import(summary, schema=schema))
    best = f", best {rec.best_metric_name} {rec.best_metric:.4f}" if rec.best_metric is not None else ""
    print(f"imported run {rec.id} ({rec.name}, {rec.status.value}{best}) into {rec.folder}")
    model = run_checkpoint(rec.folder)
    if args.promote and model is not None:
        ws.models.adopt(model, run_id=rec.id, reason=args.reason or f"imported from {args.run_dir}",
                        author=args.author)
        print(f"current model: {model}")
    else:
        print(f"make it the current model with: segstudio models promote {args.workspace} {rec.id}")
    return 0


def run(args: argparse.Namespace) -> int:
    ws, dataset = open_loop(args, writable=args.action != "list", need_dataset=args.action == "import")
    try:
        if args.action == "list":
            return _list(ws, args)
        if args.action == "promote":
            return _promote(ws, args)
        if args.action == "import":
            return _import(ws, dataset, args)
        ev = ws.models.rollback(reason=args.reason, author=args.author)
        print(f"rolled back: {ev.checkpoint} is the current model again")
        return 0
    finally:
        ws.close()
