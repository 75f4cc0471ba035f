"""``make recipe-quality`` (part of ``make quality``): 5-fold cross-validation of the ``lungs-lr`` and ``lesion``
recipes on the real data, and the final model of each trained on every image (issue 17).

A recipe's own validation figure is picked and scored on the same 6-8 images; here every image is scored once,
by a model that never saw it (``segstudio cv``, ``engine/crossval.py``): each fold's model is trained as
``segstudio train`` trains (its own inner hold-out picks the checkpoint) and predicts its held-out fold with the
checkpoint's recommended inference (TTA, post-processing), as the app does.

The whole benchmark has ``SEGSTUDIO_QUALITY_MINUTES`` (default 40) of wall time on this machine, shared equally by
the recipes; each recipe's share is split over its k fold runs and its final run. A short calibration run
measures the pace, and the epochs are the recipe's, or fewer so that each run fits its share (the cosine schedule
then anneals within it); ``.minutes`` reports what the recipe took against its share.

Writes ``bench/quality.json`` (the shape of ``bench/results.json``). Figures per recipe (``lungs_lr``, ``lesion``):
``quality.cv.<key>.dice`` / ``.iou`` (out-of-fold, every image pooled; goals: lungs-lr Dice ≥ 0.975, lesion IoU
≥ 0.87), ``.dice_fold_std`` / ``.iou_fold_std`` (spread over the folds), ``.dice.<class>``,
``.final_train_minutes``, ``.minutes`` (the recipe's whole cross-validation), ``.epochs`` (per run),
``.recipe_epochs`` (the recipe's own), ``.step_seconds`` (the calibrated pace) and ``.whole_recipe_minutes`` (the
share that would train every run for the recipe's own epochs). When the share fits fewer epochs than the recipe's,
the run says so in a warning and a closing ``NOTE`` line: on a slower machine (a CPU without bf16 steps about five
times slower) the figures are those of a shorter training, which the recorded ones do not compare with.

``python bench/quality.py [--only lungs-lr|lesion] [--minutes M] [--folds K] [--set KEY=VALUE ...] [--no-final]
[--out FILE] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.__main__ import machine  # noqa: E402
from bench.common import Figure, merge_results  # noqa: E402

SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))
log = logging.getLogger("quality")

#: recipe -> (dataset folder, figure key, headline metric, goal out of fold)
TASKS = {
    "lungs-lr": ("montgomery_cxr/data", "lungs_lr", "dice", 0.975),
    "lesion": ("ph2", "lesion", "iou", 0.87),
}


def _pace(cfg, dataset, steps: int = 8, warm: int = 2) -> tuple[float, float]:
    """``(seconds per optimiser step, seconds of the calibration)`` from a short run: the steps after the first
    ``warm`` (which pay for decoding and for oneDNN building its kernels) are timed."""
    from segstudio.engine.events import BatchEnd
    from segstudio.engine.train import train

    t0 = time.perf_counter()
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        short = cfg.with_overrides(["epochs=1", f"max_steps_per_epoch={steps}", "early_stopping=0", "swa=false"])
        for ev in train(short, dataset, run_dir=tmp):
            if isinstance(ev, BatchEnd):
                stamps.append(time.perf_counter())
    timed = stamps[warm - 1:] if len(stamps) > warm else stamps
    per_step = (timed[-1] - timed[0]) / max(1, len(timed) - 1)
    return per_step, time.perf_counter() - t0


def _train_samples(cfg, dataset):
    from segstudio.engine.data import split_samples
    from segstudio.engine.task import resolve_task

    return split_samples(dataset, cfg.data, task=resolve_task(dataset.schema, cfg.model.mode), seed=cfg.seed).train


def run_task(recipe: str, *, minutes: float, folds: int, work: Path, overrides: tuple[str, ...] = (),
             final: bool = True) -> list[Figure]:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.crossval import CrossValidated, FoldScored, cross_validate
    from segstudio.engine.events import RunStarted
    from segstudio.engine.kfold import FoldStarted
    from segstudio.engine.recipes import load_recipe

    folder, key, metric, target = TASKS[recipe]
    dataset = open_dataset(SHARED / folder)
    cfg = load_recipe(recipe)
    if overrides:
        cfg = cfg.with_overrides(list(overrides))
    wall0 = time.perf_counter()
    per_step, calib_s = _pace(cfg, dataset)
    # optimiser steps of one epoch over all the runs: a fold trains on (k-1)/k of the images, the final model on all
    # (each less its inner hold-out, when the recipe keeps one)
    n = len(_train_samples(cfg, dataset))
    bs = cfg.data.batch_size
    steps = folds * -(-(n * (folds - 1) // folds) // bs) + (-(-n // bs) if final else 0)
    # validation (a fifth of the images, forward only) adds about 10 % to an epoch; SWA's batch-norm pass about a
    # third of one epoch per run
    epoch_s = per_step * steps * (1.1 if cfg.data.val_fraction > 0 else 1.0)
    swa_s = per_step * steps / 3.0 if cfg.swa else 0.0
    budget = minutes * 60.0 - calib_s
    # the calibration times bare steps: an epoch's own bookkeeping (checkpoint, curves, the next batch), the runs'
    # start-up and the held-out predictions take the rest (with 0.85 here the lungs runs ended 12-18 % early)
    epochs = max(1, min(cfg.epochs, int((budget * 0.92 - swa_s) / epoch_s)))
    runs = folds + int(final)
    log.info("%s: %.2f s/step, %d steps per epoch over %d runs: %d of the recipe's %d epochs per run in %.1f min",
             recipe, per_step, steps, runs, epochs, cfg.epochs, minutes)
    recipe_epochs = cfg.epochs
    # the minutes that would train the recipe whole at this pace (the inverse of the sum above)
    whole_min = (calib_s + (cfg.epochs * epoch_s + swa_s) / 0.92) / 60.0
    if epochs < recipe_epochs:
        log.warning("%s: only %d of the recipe's %d epochs fit its %.0f-minute share on this machine (%.2f s a step): "
                    "its figures measure a shorter training than the recipe's; about %.0f minutes would train it whole "
                    "(--minutes)", recipe, epochs, recipe_epochs, minutes, per_step, whole_min)
    cfg = cfg.with_overrides([f"epochs={epochs}"])
    result: CrossValidated | None = None
    for ev in cross_validate(dataset, cfg, k=folds, run_root=work / recipe, final=final):
        if isinstance(ev, FoldStarted):
            log.info("%s fold %d/%d: %d training, %d held out", recipe, ev.fold + 1, ev.folds, ev.train_samples,
                     ev.held_out)
        elif isinstance(ev, RunStarted):
            log.info("%s: a run of %d epochs on %d image(s) (%d inner validation)", recipe, ev.epochs,
                     ev.train_samples, ev.val_samples)
        elif isinstance(ev, FoldScored):
            log.info("%s fold %d: dice %.4f iou %.4f", recipe, ev.score.fold + 1, ev.score.dice, ev.score.iou)
        elif isinstance(ev, CrossValidated):
            result = ev
    assert result is not None and result.evaluation is not None
    ev = result.evaluation
    final_min = (result.final_train_seconds or 0.0) / 60.0
    total_min = (time.perf_counter() - wall0) / 60.0
    figs = [Figure(f"quality.cv.{key}.{metric}", round(getattr(ev, metric), 4), metric, target, "higher")]
    other = "iou" if metric == "dice" else "dice"
    figs.append(Figure(f"quality.cv.{key}.{other}", round(getattr(ev, other), 4), other))
    for m in (metric, other):
        figs.append(Figure(f"quality.cv.{key}.{m}_fold_std", round(result.spread(m)[1], 4), m))
    figs += [
        Figure(f"quality.cv.{key}.final_train_minutes", round(final_min, 2), "min"),
        Figure(f"quality.cv.{key}.minutes", round(total_min, 2), "min", minutes, "lower"),
        Figure(f"quality.cv.{key}.epochs", float(epochs), "epochs"),
        Figure(f"quality.cv.{key}.recipe_epochs", float(recipe_epochs), "epochs"),
        Figure(f"quality.cv.{key}.step_seconds", round(per_step, 3), "s"),
        Figure(f"quality.cv.{key}.whole_recipe_minutes", round(whole_min, 1), "min"),
        Figure(f"quality.cv.{key}.folds_scored", float(len(result.folds)), "folds"),
    ]
    for c in ev.summary.per_class:
        if c.class_id in ev.summary.scored_ids and len(ev.summary.scored_ids) > 1:
            figs.append(Figure(f"quality.cv.{key}.dice.{c.name.replace(' ', '_')}", round(c.dice, 4), "dice"))
    return figs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/quality.py")
    ap.add_argument("--only", choices=list(TASKS), help="one recipe only")
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SEGSTUDIO_QUALITY_MINUTES", "40")),
                    help="wall time of the whole benchmark, shared by the recipes (default 40)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "quality.json")
    ap.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe setting, as `segstudio train --set` does (repeatable): tune a recipe "
                         "against its out-of-fold figure")
    ap.add_argument("--no-final", action="store_true",
                    help="cross-validate only; skip the final model on every image (faster when tuning)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for recipe in [args.only] if args.only else list(TASKS):
            recipes = [args.only] if args.only else list(TASKS)
            figures.extend(run_task(recipe, minutes=args.minutes / len(recipes), folds=args.folds, work=work,
                                    overrides=tuple(args.overrides), final=not args.no_final))
    merge_results(args.out, figures, machine=machine())
    misses = 0
    for f in figures:
        miss = f.misses_budget
        misses += miss
        budget = "" if f.budget is None else f"{'<=' if f.better == 'lower' else '>='} {f.budget:g}"
        print(f"{f.name:<40} {f.value:>10g} {f.unit:<7} {budget}{'  MISSES TARGET' if miss else ''}")
    for note in truncation_notes(figures):
        print(note)
    return 1 if misses else 0


def truncation_notes(figures: list[Figure]) -> list[str]:
    """One line per recipe whose runs trained fewer epochs than the recipe's own (a slower machine, a smaller
    share): its figures are then those of a shorter training, which the recorded ones do not compare with."""
    by = {f.name: f.value for f in figures}
    notes = []
    for _, key, _, _ in TASKS.values():
        done, whole = by.get(f"quality.cv.{key}.epochs"), by.get(f"quality.cv.{key}.recipe_epochs")
        if done is not None and whole is not None and done < whole:
            minutes = by.get(f"quality.cv.{key}.whole_recipe_minutes")
            notes.append(f"NOTE {key}: {done:g} of the recipe's {whole:g} epochs per run fit this machine's share "
                         f"({by.get(f'quality.cv.{key}.step_seconds', float('nan')):g} s a step); the figures above "
                         f"are those of that shorter training. About {minutes:g} minutes would train it whole "
                         "(--minutes, or SEGSTUDIO_QUALITY_MINUTES for make recipe-quality).")
    return notes


if __name__ == "__main__":
    sys.exit(main())
