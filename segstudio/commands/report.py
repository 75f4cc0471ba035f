"""``segstudio report RUN [RUN ...] --out report.html [--dataset DATASET] [--worst K]``: one self-contained HTML
report of training runs (config, training time and device, curves, per-class table, worst-k gallery, and a
comparison table for several runs), with ``report.csv`` and ``report.json`` beside it.

Each run's best checkpoint is scored on its validation split exactly as ``segstudio evaluate CKPT DATASET
--split val`` scores it. The dataset is the one the run records (a run inside a workspace: the workspace's);
``--dataset`` names it when the run does not record it, or overrides it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode

EXAMPLES = """examples:
  segstudio report runs/lungs --dataset ~/data/lungs --out lungs-report.html
  segstudio report runs/unet runs/fpn runs/deeplab --dataset ~/data/lungs --out compare.html --worst 8
  segstudio report ~/data/lungs.segstudio/runs/20250101-120000-ab12cd --out report.html   # a workspace's run
"""

HELP = "an HTML report of runs (curves, per-class table, worst images, comparison) + CSV and JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folder(s) (segstudio train --out)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="the HTML file; FILE's .csv and .json are written beside it")
    parser.add_argument("--dataset", metavar="DATASET",
                        help="the dataset to score on (default: the one each run records)")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--worst", type=int, default=6, metavar="K",
                        help="the K validation images with the lowest Dice shown per run (default 6; 0: none)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    add_progress_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.engine.evaluate import SampleEvaluated
    from segstudio.engine.report import Report, ReportRunStarted, build_report, report_paths, write_report

    if args.worst < 0:
        raise SegstudioError(f"--worst must be 0 or more, not {args.worst}.", fix="Use --worst 6.")
    html_path = report_paths(args.out)[0]
    if html_path.exists() and html_path.is_dir():
        raise SegstudioError("--out names a folder.", path=html_path, fix="Give a file name, e.g. --out report.html.")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    report: Report | None = None
    bar: Progress | None = None
    mode = progress_mode(args)
    try:
        for ev in build_report(args.runs, dataset=args.dataset, format=args.format, worst=args.worst,
                               device=args.device):
            if isinstance(ev, ReportRunStarted):
                if bar is not None:
                    bar.close()
                bar = Progress(f"run {ev.index + 1}/{ev.total} {ev.name}", ev.samples, mode=mode)
            elif isinstance(ev, SampleEvaluated) and bar is not None:
                bar.update(ev.index + 1, ev.total)
            elif isinstance(ev, Report):
                report = ev
    finally:
        if bar is not None:
            bar.close()
    assert report is not None
    paths = write_report(report, args.out)
    width = max(len(r.name) for r in report.runs)
    for r in report.runs:
        per = " ".join(f"{n}={d:.4f}" for n, d in r.per_class("dice").items() if not math.isnan(d))
        print(f"{r.name:<{width}}  dice {r.evaluation.dice:.4f}  iou {r.evaluation.iou:.4f}  [{per}]  "
              f"({len(r.evaluation.samples)} val images)")
    print("written: " + ", ".join(str(p) for p in paths))
    return 1 if any(r.evaluation.problems for r in report.runs) else 0
