"""``segstudio cv DATASET (--recipe NAME | --config FILE) [--set key=value ...] [--folds 5] [--final] --out DIR``.

k-fold cross-validation of a recipe (``engine/crossval.py``): each fold is trained as ``segstudio train`` trains,
without the fold, and scored on it; the out-of-fold figures (every image judged by a model that never saw it)
and their spread over the folds are printed and written to ``DIR/cv.json``. Ctrl+C stops after the current
batch; what was scored so far is reported.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from segstudio.commands.progress import add_progress_arguments, ctrl_c_cancels, progress_mode

EXAMPLES = """examples:
  segstudio cv ~/data/lungs --recipe lungs-lr --out cv/lungs                 # 5 folds
  segstudio cv ~/data/ph2 --recipe lesion --folds 5 --final --out cv/lesion  # and the final model on all images
  segstudio cv ~/data/lungs --recipe lungs-lr --set image_size=320 --out cv/lungs-320 --json
"""

HELP = "cross-validate a recipe: k folds, each scored on images its model never saw (out-of-fold Dice/IoU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segstudio.commands.train import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--final", action="store_true",
                        help="then train the final model on every labelled image (DIR/final) and time it")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the fold runs (fold-1 ... fold-K, final) and cv.json")
    parser.add_argument("--json", action="store_true", help="print cv.json's summary as JSON instead of a table")
    add_progress_arguments(parser, quiet_help="no progress bar; print one line per epoch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def print_table(result: Any) -> None:
    ev = result.evaluation
    print(f"{result.k}-fold cross-validation of {result.config.name or 'the config'}"
          f"{' (stopped early: partial)' if result.cancelled else ''}")
    print(f"{'fold':>4}  {'images':>6}  {'Dice':>7}  {'IoU':>7}  {'epochs':>6}  {'train s':>8}")
    for f in result.folds:
        print(f"{f.fold + 1:>4}  {f.samples:>6}  {_f(f.dice):>7}  {_f(f.iou):>7}  {f.epochs:>6}  {f.train_seconds:>8.0f}")
    for key, label in (("dice", "Dice"), ("iou", "IoU")):
        m, s = result.spread(key)
        print(f"fold {label}: {_f(m)} ± {_f(s)} (mean ± std over {len(result.folds)} folds)")
    if ev is not None:
        print(f"out-of-fold, {len(ev.samples)} images pooled: Dice {_f(ev.dice)}, IoU {_f(ev.iou)} "
              f"(per image: Dice {_f(ev.sample_dice)}, IoU {_f(ev.sample_iou)})")
        scored = set(ev.summary.scored_ids)
        for c in ev.summary.per_class:
            if c.class_id in scored:
                print(f"  {c.name:<24} Dice {_f(c.dice)}  IoU {_f(c.iou)}")
    if result.final_checkpoint is not None:
        print(f"final model: {result.final_checkpoint} ({result.final_train_seconds:.0f} s of training)")
    print(f"wall time {result.wall_seconds:.0f} s")


def run(args: argparse.Namespace) -> int:
    from segstudio.commands.train import EpochProgress, _load_config, refuse_under_torchrun, report_event
    from segstudio.core.errors import SegstudioError
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.crossval import RESULT_NAME, CrossValidated, FoldScored, cross_validate
    from segstudio.engine.kfold import FoldStarted

    refuse_under_torchrun("cv", "Launch one torchrun job per fold (segstudio train --set data.folds=K --set "
                          "data.fold=I), as docs/cluster.md shows; run segstudio cv on one machine.")

    if args.folds < 2:
        raise SegstudioError(f"--folds {args.folds}: cross-validation needs at least 2 folds.", fix="Use --folds 5.")
    args.resume = False
    cfg = _load_config(args)
    dataset = open_dataset(args.dataset, format=args.format)
    cancel = CancelToken()
    bar = EpochProgress(progress_mode(args))

    result: CrossValidated | None = None
    model = cfg.model.describe()
    with ctrl_c_cancels(cancel, bar.line):
        try:
            for ev in cross_validate(dataset, cfg, k=args.folds, run_root=args.out, seed=args.seed,
                                     final=args.final, cancel=cancel):
                if isinstance(ev, CrossValidated):
                    result = ev
                elif isinstance(ev, FoldStarted):
                    bar.end_epoch()
                    bar.line(f"fold {ev.fold + 1}/{ev.folds}: training on {ev.train_samples} image(s), "
                             f"{ev.held_out} held out")
                elif isinstance(ev, FoldScored):
                    s = ev.score
                    bar.line(f"fold {s.fold + 1}/{ev.folds}: Dice {_f(s.dice)}, IoU {_f(s.iou)} on {s.samples} "
                             f"held-out image(s)")
                else:
                    report_event(bar, ev, model=model)
        finally:
            bar.close()
    assert result is not None
    if args.json:
        doc = result.to_dict()
        doc.pop("config", None)
        if doc.get("out_of_fold"):
            doc["out_of_fold"].pop("per_sample", None)
        print(json.dumps(doc, indent=2))
    else:
        print_table(result)
        print(f"figures: {args.out / RESULT_NAME}")
    return 130 if result.cancelled else 0
