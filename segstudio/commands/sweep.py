"""``segstudio sweep FILE --out DIR [--dry-run] [--device DEV] [--worst K] [-q]``: train a grid of configs
(architectures × losses × augmentations) one after another into DIR, then report on them.

The sweep file is checked whole before anything trains (docs/cli.md describes it). The first Ctrl+C stops the
current run after its batch, keeping its last checkpoint; running the same command again resumes the sweep.
``segstudio sweep DIR`` (a sweep folder) resumes the sweep recorded there, without its file — a sweep started in
the app, or whose file has moved.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, ctrl_c_cancels, progress_mode

EXAMPLES = """examples:
  segstudio sweep lungs-sweep.json --out sweeps/lungs --dry-run     # the runs and their overrides
  segstudio sweep lungs-sweep.json --out sweeps/lungs               # train them all, then report.html
  segstudio sweep lungs-sweep.json --out sweeps/lungs               # again after Ctrl+C: resumes
  segstudio sweep ~/data/lungs.segstudio/sweeps/lungs-sweep          # resume a sweep folder as recorded
"""

HELP = "train a grid of configs (architectures × losses × augmentations), resumable, with one report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE",
                        help="the sweep file (JSON; docs/cli.md), or a sweep folder to resume as it records")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the sweep folder: sweep.json, state.json, runs/<name>/, report.html (+ .csv, .json); "
                             "needed with a sweep file, FILE itself when FILE is a sweep folder")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their overrides; train nothing")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda, cuda:N or mps for this pass (default: the configs' device)")
    parser.add_argument("--worst", type=int, default=6, metavar="K",
                        help="the K lowest-Dice validation images per run in the report (default 6; 0: none)")
    add_progress_arguments(parser, quiet_help="no progress bar; print one line per epoch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _dry_run(plan: Any, out: Path) -> int:
    from segstudio.engine.sweep import RUNS_DIR, run_status

    status = run_status(plan, out)
    doc = plan.document
    base = f"recipe {doc['recipe']}" if "recipe" in doc else f"config {doc['config']}" if "config" in doc else "defaults"
    common = " ".join(doc.get("set", [])) or "-"
    print(f"sweep {plan.source}: {len(plan.runs)} run(s) on {plan.dataset}\nbase: {base}; set: {common}")
    width = max(len(r.name) for r in plan.runs)
    for r in plan.runs:
        print(f"  {r.name:<{width}}  {status[r.name]:<8}  {' '.join(r.overrides) or '-'}")
    print(f"run folders: {out / RUNS_DIR}/<name> (dry run: nothing trained, nothing written)")
    return 0


def _table(rows: Any) -> str:
    width = max([len("run"), *(len(r.name) for r in rows)])
    lines = [f"{'run':<{width}}  {'status':<8}  mean Dice"]
    for r in rows:
        dice = "-" if r.dice is None or math.isnan(r.dice) else f"{r.dice:.4f}"
        lines.append(f"{r.name:<{width}}  {r.status:<8}  {dice}{'  ' + r.error if r.error else ''}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from segstudio.commands.train import refuse_under_torchrun
    from segstudio.core.errors import SegstudioError
    from segstudio.engine.sweep import load_sweep, load_sweep_folder

    refuse_under_torchrun("sweep", "Launch one torchrun job per run of the sweep (segstudio sweep FILE --dry-run "
                          "lists each run's overrides for segstudio train --set), as docs/cluster.md shows.")
    if args.worst < 0:
        raise SegstudioError(f"--worst must be 0 or more, not {args.worst}.", fix="Use --worst 6.")
    if args.device is not None:
        from segstudio.engine.config import DEVICE_NAME

        if DEVICE_NAME.fullmatch(args.device) is None:
            raise SegstudioError(f"--device {args.device!r} is not a device.", fix="Use auto, cpu, cuda, cuda:N or mps.")
    if args.file.is_dir():
        if args.out is not None and args.out.expanduser().resolve() != args.file.expanduser().resolve():
            raise SegstudioError("A sweep folder resumes in place: --out must be left out or be the same folder.",
                                 path=args.file, fix=f"Run: segstudio sweep {args.file}")
        plan, out = load_sweep_folder(args.file), args.file.expanduser()
    elif args.out is None:
        raise SegstudioError("segstudio sweep FILE needs --out DIR: the folder to train the sweep into.",
                             path=args.file, fix=f"Run: segstudio sweep {args.file} --out sweeps/{args.file.stem}")
    else:
        plan, out = load_sweep(args.file), args.out.expanduser()
    if args.dry_run:
        return _dry_run(plan, out)
    return _sweep(args, plan, out)


def _sweep(args: argparse.Namespace, plan: Any, out: Path) -> int:
    from segstudio.commands.train import EpochProgress, report_event
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.evaluate import SampleEvaluated
    from segstudio.engine.events import Finished
    from segstudio.engine.report import ReportRunStarted
    from segstudio.engine.sweep import SweepFinished, SweepRunEnded, SweepRunStarted, SweepStarted, run_sweep

    cancel = CancelToken()
    mode = progress_mode(args)
    bar = EpochProgress(mode)
    scoring: Progress | None = None
    model = ""

    events = run_sweep(plan, out=out, cancel=cancel, device=args.device, worst=args.worst)
    finished: SweepFinished | None = None
    resume_hint = f"resume with: segstudio sweep {args.file}" + (f" --out {args.out}" if args.out is not None else "")
    stopping = "stopping after this batch (Ctrl+C again to abort); run the same command again to resume..."
    with ctrl_c_cancels(cancel, bar.line, stopping):
        try:
            for ev in events:
                if isinstance(ev, SweepStarted):
                    bar.line(f"sweep of {ev.total} run(s) into {ev.out}; {ev.done} done already")
                elif isinstance(ev, SweepRunStarted):
                    cfg = next(r.config for r in plan.runs if r.name == ev.name)
                    model = cfg.model.describe()
                    bar.line(f"run {ev.index + 1}/{ev.total}: {ev.name}{' (resuming)' if ev.resume else ''}")
                elif isinstance(ev, SweepRunEnded):
                    bar.end_epoch()
                    bar.line(f"run {ev.name}: {ev.status}" + (f" ({ev.error})" if ev.error else "")
                             + (f" after {ev.epochs_completed} epoch(s)" if ev.epochs_completed is not None else ""))
                elif isinstance(ev, ReportRunStarted):
                    if scoring is not None:
                        scoring.close()
                    scoring = Progress(f"report {ev.index + 1}/{ev.total} {ev.name}", ev.samples, mode=mode)
                elif isinstance(ev, SampleEvaluated) and scoring is not None:
                    scoring.update(ev.index + 1, ev.total)
                elif isinstance(ev, SweepFinished):
                    finished = ev
                elif not isinstance(ev, Finished):
                    report_event(bar, ev, model=model)
        except KeyboardInterrupt:
            events.close()  # records the current run as stopped
            bar.close()
            print(f"interrupted; the current run keeps its last checkpoint\n{resume_hint}", file=sys.stderr)
            return 130
        finally:
            bar.close()
            if scoring is not None:
                scoring.close()
    assert finished is not None
    print(_table(finished.rows))
    if finished.report is not None:
        print(f"report: {finished.report} (+ .csv, .json)")
    if finished.report_error:
        print(f"the report could not be written: {finished.report_error}", file=sys.stderr)
    if finished.stopped:
        print(f"stopped; {resume_hint}")
        return 130
    return 1 if finished.failed else 0
