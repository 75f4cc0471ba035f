"""``segstudio evaluate CHECKPOINT DATASET [--json]``: per-class and mean Dice, IoU and pixel accuracy.

CHECKPOINT may also be a folder of predicted masks (the layout ``segstudio predict`` writes): then nothing is
predicted, the masks are scored as they are. A sample whose GT or prediction cannot be read is left out of the
figures, listed (stderr, and ``problems`` in the JSON), and the exit code is 1; 0 when every sample was scored.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segstudio.commands.predict import add_inference_arguments, inference_options
from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode

EXAMPLES = """examples:
  segstudio evaluate runs/lungs/checkpoints/best ~/data/lungs --split val
  segstudio evaluate ~/preds/lungs ~/data/lungs               # a folder of predicted masks, scored as it is
  segstudio evaluate runs/lungs/checkpoints/best ~/data/lungs --json --per-sample > scores.json
"""

HELP = "score a checkpoint or predictions folder against GT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder, or a folder of predicted masks")
    parser.add_argument("dataset", help="dataset folder or annotation file (format detected)")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--split", default="all", metavar="NAME",
                        help="all (default), a split of the dataset, or val / train: the checkpoint's own hold-out")
    parser.add_argument("--ignore-index", type=int, metavar="ID", help="a GT value left out of every figure")
    parser.add_argument("--json", action="store_true", help="print JSON (means, per class) instead of a table")
    parser.add_argument("--per-sample", action="store_true", help="with --json: include per-sample figures")
    add_inference_arguments(parser)
    add_progress_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _f(v: float | None) -> str:
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _drain(args: argparse.Namespace, events: Iterator[Any]) -> Any:
    """Run an evaluation generator to its result, with progress on stderr."""
    from segstudio.engine.evaluate import Evaluation, SampleEvaluated

    result = None
    with Progress("evaluate", mode=progress_mode(args)) as bar:
        for ev in events:
            if isinstance(ev, SampleEvaluated):
                bar.update(ev.index + 1, ev.total)
            elif isinstance(ev, Evaluation):
                result = ev
    if result is None:  # pragma: no cover - the generators always end with the Evaluation
        raise RuntimeError("the evaluation ended without a result")
    return result


def run(args: argparse.Namespace) -> int:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.checkpoint import CONFIG_FILE
    from segstudio.engine.evaluate import evaluate_checkpoint, evaluate_folder, select_samples

    dataset = open_dataset(args.dataset, format=args.format)
    if (args.checkpoint / CONFIG_FILE).is_file():
        from segstudio.engine.predictor import Predictor

        predictor = Predictor.load([args.checkpoint, *args.ensemble], options=inference_options(args))
        samples = select_samples(dataset, args.split, checkpoint=predictor.members[0].checkpoint)
        workspace = None
        if args.workspace is not None:
            from segstudio.commands.workspace_arg import open_cache_workspace

            workspace = open_cache_workspace(args.workspace, dataset_root=dataset.root)
        try:
            result = _drain(args, evaluate_checkpoint(dataset, predictor, samples=samples, ignore_index=args.ignore_index,
                                                    workspace=workspace, split=args.split))
        finally:
            if workspace is not None:
                workspace.close()
    else:
        samples = select_samples(dataset, args.split)
        result = _drain(args, evaluate_folder(dataset, args.checkpoint, samples=samples, ignore_index=args.ignore_index,
                                            split=args.split))
    doc = result.to_dict(per_sample=args.per_sample)
    # a sample whose GT or prediction cannot be read is left out and listed; the exit code says so (1)
    status = 1 if doc["problems"] else 0
    for p in doc["problems"]:
        print(f"skipped {p['sample_id']}: {p['message']}" + (f" [{p['path']}]" if p["path"] else ""),
              file=sys.stderr)
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return status
    print(f"{doc['samples']} samples ({args.split}) from {doc['source']}")
    print(f"{'class':<24} {'dice':>7} {'iou':>7} {'prec':>7} {'recall':>7}")
    for c in doc["per_class"]:
        mark = "" if c["scored"] else "  (not in the means)"
        print(f"{c['name']:<24} {_f(c['dice']):>7} {_f(c['iou']):>7} {_f(c['precision']):>7} {_f(c['recall']):>7}{mark}")
    print(f"{'mean':<24} {_f(doc['dice']):>7} {_f(doc['iou']):>7}")
    print(f"pixel accuracy {_f(doc['pixel_accuracy'])}; mean over samples: dice {_f(doc['sample_dice'])}, "
          f"iou {_f(doc['sample_iou'])}")
    if doc["skipped"]:
        print(f"skipped (no GT or no prediction): {len(doc['skipped'])}")
    if doc["problems"]:
        print(f"left out, unreadable (listed on stderr): {len(doc['problems'])}")
    return status
