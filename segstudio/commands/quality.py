"""``segstudio quality DATASET --out FILE``: rank the dataset's labels, most likely wrong first, with the reasons.

Without a model the checks are the model-free ones (missing or split classes, area and position against the
class's distribution, outlines off the image's edges, coarse polygons, specks, holes, declared rules). With
``--checkpoint`` or ``--predictions`` the model's disagreement is added (a checkpoint also gives probabilities:
confident learning). ``--folds K`` trains K models on the dataset and predicts each image with the one that did
not train on it (out-of-fold), so no model judges a label it has learned — the most reliable ranking, at the cost
of K short trainings. See docs/quality.md for every check and its weight.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode

EXAMPLES = """examples:
  segstudio quality ~/data/lungs --out lungs-quality.csv
  segstudio quality ~/data/lungs --folds 5 --recipe lungs-lr --set epochs=10 --out lungs-quality.csv
  segstudio quality ~/data/lungs --checkpoint runs/lungs/checkpoints/best --rules lung-rules.json --out q.json
  segstudio quality ~/data/coco/annotations.json --predictions ~/preds/coco --out q.csv --top 20
"""

HELP = "rank the labels most likely wrong first, with reasons (CSV + JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset folder or annotation file (format detected)")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="where the ranking goes: FILE.csv and FILE.json are both written")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", type=Path, metavar="DIR", help="a checkpoint folder to predict with")
    model.add_argument("--predictions", type=Path, metavar="DIR", help="a folder of predicted masks (named like the "
                       "images, as segstudio predict writes them)")
    model.add_argument("--folds", type=int, metavar="K", help="train K models and use out-of-fold predictions")
    parser.add_argument("--recipe", metavar="NAME", help="with --folds: the training recipe (default: the defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="with --folds: override a config field (repeatable), e.g. --set epochs=10")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, mps (with a model)")
    parser.add_argument("--rules", type=Path, metavar="FILE",
                        help="per-class rules (parts, area, image side, allowed overlaps; docs/quality.md); default: "
                        "the dataset's classes.json when it declares some")
    parser.add_argument("--no-images", action="store_true", help="do not read the images (no outline-vs-edges check)")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="print the N most suspicious (default 10)")
    add_progress_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _outputs(out: Path) -> tuple[Path, Path]:
    stem = out.with_suffix("") if out.suffix.lower() in (".csv", ".json") else out
    return stem.with_suffix(".csv"), stem.with_suffix(".json")


def _rules(args: argparse.Namespace, dataset: Any) -> Any:
    from segstudio.metrics.label_rules import LabelRules, read_rules

    if args.rules is not None:
        return read_rules(args.rules, dataset.schema)
    own = Path(dataset.root) / "classes.json"
    if own.is_file():
        try:
            return read_rules(own, dataset.schema)
        except Exception as exc:  # noqa: BLE001 - a classes.json that declares no usable rules: learn them instead
            print(f"note: {own} declares no usable rules ({exc}); the rules are learned from the dataset",
                  file=sys.stderr)
    return LabelRules()


def _model(args: argparse.Namespace, dataset: Any, bar: Progress) -> tuple[Any, Any, dict[str, Any]]:
    """``(predictions, probabilities, description)`` callables by sample id, or Nones."""
    if args.predictions is not None:
        from segstudio.datasets.predictions import PredictionFolder

        folder = PredictionFolder(args.predictions, dataset)
        return (lambda sid: folder.load(sid)), None, {"kind": "predictions folder", "path": str(args.predictions)}
    if args.checkpoint is not None:
        from segstudio.engine.kfold import predict_checkpoint

        masks: dict[str, Any] = {}
        probs: dict[str, Any] = {}
        ids = [s.id for s in dataset.samples if s.has_gt]
        predict_checkpoint(dataset, args.checkpoint, samples=ids, device=args.device, masks=masks,
                           probabilities=probs, progress=bar.update)
        note = {"kind": "checkpoint", "path": str(args.checkpoint),
                "warning": "a checkpoint trained on these labels has learned them; --folds judges more fairly"}
        return masks.get, (lambda sid: probs[sid].astype("float32") if sid in probs else None), note
    if args.folds is not None:
        from segstudio.engine.config import TrainConfig
        from segstudio.engine.events import EpochEnd
        from segstudio.engine.kfold import FoldPredicted, FoldStarted, OutOfFold, out_of_fold
        from segstudio.engine.recipes import load_recipe

        cfg = (load_recipe(args.recipe) if args.recipe else TrainConfig()).with_overrides(args.overrides)
        oof: OutOfFold | None = None
        with tempfile.TemporaryDirectory(prefix="segstudio-folds-") as root:
            for ev in out_of_fold(dataset, cfg, k=args.folds, run_root=root, device=args.device):
                if isinstance(ev, FoldStarted):
                    bar.note(f"fold {ev.fold + 1}/{ev.folds}: training on {ev.train_samples} image(s), "
                             f"{ev.held_out} held out")
                elif isinstance(ev, EpochEnd):
                    bar.note(f"  epoch {ev.epoch + 1}: loss {ev.train_loss:.4f}, held-out Dice {ev.dice:.3f}")
                elif isinstance(ev, FoldPredicted):
                    bar.note(f"fold {ev.fold + 1}: {ev.predicted} image(s) predicted"
                             + (f", {ev.failed} failed" if ev.failed else ""))
                elif isinstance(ev, OutOfFold):
                    oof = ev
        assert oof is not None
        return oof.mask, oof.probs, {"kind": "out-of-fold", "folds": args.folds, "recipe": args.recipe or "defaults",
                                     "overrides": list(args.overrides)}
    return None, None, {"kind": "none"}


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.datasets.registry import open_dataset
    from segstudio.metrics.suspicion import CHECKS, rank_dataset

    if args.top < 0:
        raise SegstudioError(f"--top must be 0 or more, not {args.top}.", fix="Use --top 10.")
    csv_path, json_path = _outputs(args.out)
    for p in (csv_path, json_path):
        if p.parent and not p.parent.exists():
            raise SegstudioError("The folder for the ranking does not exist.", path=p.parent,
                                 fix="Create it, or give --out in an existing folder.")
    dataset = open_dataset(args.dataset, format=args.format)
    rules = _rules(args, dataset)
    t0 = time.perf_counter()
    bar = Progress("quality", mode=progress_mode(args))
    try:
        predictions, probabilities, model = _model(args, dataset, bar)
        ranked = rank_dataset(dataset, predictions=predictions, probabilities=probabilities, rules=rules,
                              use_images=not args.no_images, progress=lambda i, n: bar.update(i, n))
    finally:
        bar.close()
    secs = time.perf_counter() - t0
    judged = {n for s in ranked for n in s.per_class}
    names = [c.name for c in dataset.schema if c.name in judged]
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "sample_id", "score", "top_reason", "checks", *[f"score:{n}" for n in names], "error"])
        for i, s in enumerate(ranked, 1):
            w.writerow([i, s.sample_id, f"{s.score:.4f}", s.reasons[0].text if s.reasons else "",
                        ";".join(sorted({r.check for r in s.reasons})),
                        *[f"{s.per_class[n]:.4f}" if n in s.per_class else "" for n in names], s.error or ""])
    doc = {"dataset": str(dataset.root), "format": dataset.format_name, "model": model,
           "rules": rules.source or ("none declared; learned from the dataset" if rules.empty else "declared"),
           "weights": {k: v[0] for k, v in CHECKS.items()}, "seconds": round(secs, 2),
           "samples": [s.to_dict() for s in ranked]}
    json_path.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")
    width = max((len(s.sample_id) for s in ranked[: args.top]), default=10)
    for i, s in enumerate(ranked[: args.top], 1):
        reason = s.reasons[0].text if s.reasons else (s.error or "nothing suspicious")
        print(f"{i:>4}  {s.sample_id:<{width}}  {s.score:.3f}  {reason}")
    flagged = sum(1 for s in ranked if s.score >= 0.5)
    errors = sum(1 for s in ranked if s.error)
    judge = {"none": "without a model", "checkpoint": "with the checkpoint's predictions",
             "predictions folder": "with the predictions folder", "out-of-fold": f"with {args.folds}-fold out-of-fold "
             "predictions"}.get(model["kind"], model["kind"])
    print(f"{len(ranked)} label(s) ranked in {secs:.1f} s ({judge}); {flagged} with a score of 0.5 or more"
          f"{f', {errors} unreadable' if errors else ''}\nwritten: {csv_path}, {json_path}")
    return 1 if errors else 0
