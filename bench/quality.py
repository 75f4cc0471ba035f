"""``make recipe-quality``: train the ``lungs-lr`` and ``lesion`` recipes on the real data and score their validation splits.

Each recipe gets at most ``SEGSTUDIO_QUALITY_MINUTES`` (default 15) of wall time on this machine, no pretrained
weights. A short calibration run (a few steps) measures the pace; the number of epochs is then the recipe's, or
fewer so that the whole run fits the budget (the cosine schedule then anneals within it). A timer cancels the run
at the budget as a safety net: the trainer keeps its best checkpoint. The best checkpoint is evaluated on the
validation hold-out the trainer used (reproduced from the checkpoint's config and seed), with the inference each
task deserves: mirrored TTA (lungs swap sides when mirrored) and keep-largest / fill-holes post-processing.

Writes ``bench/quality.json`` (the shape of ``bench/results.json``). Figures: ``quality.lungs_lr.dice`` (mean of
left and right lung, ≥ 0.97), ``quality.lesion.iou`` (≥ 0.85), ``quality.<recipe>.train_minutes`` (≤ 15,
calibration included), plus the figures before post-processing (``*_raw``), of the last epoch's checkpoint
instead of the best one (``*_last_epoch``: the split that picks the best epoch is also the one scored, which
flatters it on 6-8 images) and the epochs run.

``python bench/quality.py [--only lungs-lr|lesion] [--minutes M] [--out FILE]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.__main__ import machine  # noqa: E402
from bench.common import Figure, merge_results  # noqa: E402

SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))
log = logging.getLogger("quality")

#: recipe -> (dataset folder, figure key, headline metric, target); the inference is the recipe's own ``infer``
#: (stored in its checkpoints: what the app and ``segstudio predict`` run)
TASKS = {
    "lungs-lr": ("montgomery_cxr/data", "lungs_lr", "dice", 0.97),
    "lesion": ("ph2", "lesion", "iou", 0.85),
}


def _pace(cfg, dataset, steps: int = 4) -> tuple[float, int, float]:
    """``(seconds per optimiser step, steps per epoch, seconds of the calibration)`` from a short run."""
    from segstudio.engine.events import BatchEnd, RunStarted
    from segstudio.engine.train import train

    t0 = time.perf_counter()
    stamps, steps_per_epoch = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        short = cfg.with_overrides(["epochs=1", f"max_steps_per_epoch={steps}", "early_stopping=0"])
        for ev in train(short, dataset, run_dir=tmp):
            if isinstance(ev, RunStarted):
                steps_per_epoch = ev.steps_per_epoch
            elif isinstance(ev, BatchEnd):
                stamps.append(time.perf_counter())
    per_step = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)  # the first step pays for decoding and caching
    full_steps = -(-len(_train_samples(cfg, dataset)) // cfg.data.batch_size)
    return per_step, max(steps_per_epoch, full_steps), time.perf_counter() - t0


def _train_samples(cfg, dataset):
    from segstudio.engine.data import split_samples
    from segstudio.engine.task import resolve_task

    return split_samples(dataset, cfg.data, task=resolve_task(dataset.schema, cfg.model.mode), seed=cfg.seed).train


def run_task(recipe: str, *, minutes: float, work: Path) -> list[Figure]:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.checkpoint import load_checkpoint
    from segstudio.engine.evaluate import evaluate_checkpoint, run_to_end, select_samples
    from segstudio.engine.events import EpochEnd, Finished
    from segstudio.engine.infer import InferenceOptions, Predictor
    from segstudio.engine.predictor import recommended_options
    from segstudio.engine.recipes import load_recipe
    from segstudio.engine.train import train

    folder, key, metric, target = TASKS[recipe]
    dataset = open_dataset(SHARED / folder)
    cfg = load_recipe(recipe)
    wall0 = time.perf_counter()
    per_step, steps, calib_s = _pace(cfg, dataset)
    # validation (a fifth of the images, forward only) adds about 10% to an epoch (measured on Montgomery)
    epoch_s = per_step * steps * 1.1
    budget_s = minutes * 60.0 - calib_s
    epochs = max(1, min(cfg.epochs, int(budget_s * 0.95 / epoch_s)))
    log.info("%s: %.2f s/step, %d steps/epoch: %d of the recipe's %d epochs fit %.1f min", recipe, per_step, steps,
             epochs, cfg.epochs, minutes)
    cfg = cfg.with_overrides([f"epochs={epochs}"])
    token = CancelToken()
    # the cancel lands after the current batch, and the last checkpoint is written then: leave room for both
    timer = threading.Timer(max(1.0, minutes * 60.0 - 20.0 - (time.perf_counter() - wall0)), token.cancel)
    timer.start()
    fin = None
    try:
        for ev in train(cfg, dataset, run_dir=work / recipe, cancel=token):
            if isinstance(ev, EpochEnd):
                log.info("%s epoch %d/%d: loss %.4f dice %.4f iou %.4f (%.0fs)", recipe, ev.epoch + 1, epochs,
                         ev.train_loss, ev.dice, ev.iou, ev.seconds)
            elif isinstance(ev, Finished):
                fin = ev
    finally:
        timer.cancel()
    train_min = (time.perf_counter() - wall0) / 60.0
    assert fin is not None
    chosen = fin.best_checkpoint or fin.last_checkpoint  # no best when the budget ran out inside epoch 1
    if chosen is None:
        raise RuntimeError(f"{recipe}: no checkpoint within {minutes} minutes (pace {per_step:.1f} s/step)")
    ckpt = load_checkpoint(chosen)
    samples = select_samples(dataset, "val", checkpoint=ckpt)
    results = {}
    for label, opts in (("raw", InferenceOptions(device=cfg.device, uncertainty=False)),
                        ("", recommended_options(ckpt.config, device=cfg.device, uncertainty=False))):
        ev = run_to_end(evaluate_checkpoint(dataset, Predictor([ckpt], options=opts), samples=samples, split="val"))
        results[label] = ev
        log.info("%s %s: dice %.4f iou %.4f per class %s", recipe, label or "tta+post", ev.dice, ev.iou,
                 {c.name: round(c.dice, 4) for c in ev.summary.per_class})
    # the epoch the validation split itself picked flatters that split (6-8 images); the last epoch does not
    swa = fin.run_dir / "checkpoints" / "swa"
    last_path = swa if (swa / "config.json").is_file() else fin.last_checkpoint  # the run's final weights
    if last_path is not None and chosen != last_path:
        last_ckpt = load_checkpoint(last_path)
        results["last"] = run_to_end(evaluate_checkpoint(
            dataset, Predictor([last_ckpt], options=recommended_options(last_ckpt.config, device=cfg.device,
                                                                        uncertainty=False)),
            samples=samples, split="val"))
    else:
        results["last"] = results[""]
    best, raw = results[""], results["raw"]
    figs = [
        Figure(f"quality.{key}.{metric}", round(getattr(best, metric), 4), metric, target, "higher"),
        Figure(f"quality.{key}.{metric}_raw", round(getattr(raw, metric), 4), metric),
        Figure(f"quality.{key}.{metric}_last_epoch", round(getattr(results["last"], metric), 4), metric),
        Figure(f"quality.{key}.train_minutes", round(train_min, 2), "min", 15.0, "lower"),
        Figure(f"quality.{key}.epochs", float(fin.epochs_completed), "epochs"),
        Figure(f"quality.{key}.val_samples", float(len(samples)), "images"),
    ]
    other = "iou" if metric == "dice" else "dice"
    figs.append(Figure(f"quality.{key}.{other}", round(getattr(best, other), 4), other))
    for c in best.summary.per_class:
        if c.class_id in best.summary.scored_ids and len(best.summary.scored_ids) > 1:
            figs.append(Figure(f"quality.{key}.dice.{c.name.replace(' ', '_')}", round(c.dice, 4), "dice"))
    return figs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/quality.py")
    ap.add_argument("--only", choices=list(TASKS), help="one recipe only")
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SEGSTUDIO_QUALITY_MINUTES", "15")))
    ap.add_argument("--out", type=Path, default=HERE / "quality.json")
    ap.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for recipe in [args.only] if args.only else list(TASKS):
            figures.extend(run_task(recipe, minutes=args.minutes, work=work))
    merge_results(args.out, figures, machine=machine())
    misses = 0
    for f in figures:
        miss = f.misses_budget
        misses += miss
        budget = "" if f.budget is None else f"{'<=' if f.better == 'lower' else '>='} {f.budget:g}"
        print(f"{f.name:<40} {f.value:>10g} {f.unit:<7} {budget}{'  MISSES TARGET' if miss else ''}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
