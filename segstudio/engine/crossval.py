"""k-fold cross-validation of a training recipe: how well it does on images it never saw (issue 17).

A recipe's own validation figure is chosen and scored on the same few images, so it flatters. Here the labelled
images are dealt into ``k`` folds (``kfold.fold_ids``: seeded, stratified by the classes present); for each fold
the recipe is trained exactly as ``segstudio train`` trains it, on the other folds only (with its own inner
hold-out for the best checkpoint and early stopping, drawn from those folds), and its chosen checkpoint predicts
the held-out fold with the checkpoint's recommended inference (TTA, post-processing), as the app and
``segstudio predict`` would. Nothing about a fold's images reaches its model: not the training, not the choice of
epoch. The figures:

- out-of-fold: every labelled image scored once, by the model that never saw it; pooled per class and mean
  Dice/IoU (``Evaluation``), and the per-image means;
- per fold: the fold's mean Dice/IoU; their spread (standard deviation over folds) says how much one split's
  figure can be trusted;
- optionally the final model: the recipe trained on every labelled image (``final=True``), with its training
  time; it is the model to ship, the out-of-fold figures estimate it.

    for ev in cross_validate(dataset, cfg, k=5, run_root=out):
        ...  # FoldStarted, the trainer's events, FoldScored per fold, CrossValidated last
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_json
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import TrainConfig
from segstudio.engine.data import excluding
from segstudio.engine.evaluate import Evaluation, iter_evaluation
from segstudio.engine.events import Event, Finished
from segstudio.engine.kfold import FoldStarted, fold_ids

log = logging.getLogger(__name__)

__all__ = ["CrossValidated", "FoldScore", "FoldScored", "cross_validate"]

RESULT_NAME = "cv.json"


@dataclass(frozen=True, kw_only=True)
class FoldScore:
    fold: int
    samples: int
    dice: float
    iou: float
    sample_dice: float
    sample_iou: float
    epochs: int
    train_seconds: float
    checkpoint: Path

    def to_dict(self) -> dict[str, Any]:
        return {"fold": self.fold + 1, "samples": self.samples, "dice": _num(self.dice), "iou": _num(self.iou),
                "sample_dice": _num(self.sample_dice), "sample_iou": _num(self.sample_iou), "epochs": self.epochs,
                "train_seconds": round(self.train_seconds, 1), "checkpoint": str(self.checkpoint)}


@dataclass(frozen=True, kw_only=True)
class FoldScored:
    score: FoldScore
    folds: int


@dataclass(frozen=True, kw_only=True)
class CrossValidated:
    """The result. ``evaluation``: every out-of-fold prediction pooled (per class, means, per image)."""

    folds: tuple[FoldScore, ...]
    evaluation: Evaluation | None
    k: int
    seed: int
    config: TrainConfig
    final_checkpoint: Path | None = None
    final_train_seconds: float | None = None
    cancelled: bool = False
    wall_seconds: float = 0.0
    fold_ids: tuple[tuple[str, ...], ...] = field(default=())

    def spread(self, key: str) -> tuple[float, float]:
        """Mean and standard deviation over the folds of ``key`` (``dice``, ``iou``, ``sample_dice`` ...)."""
        vals = [getattr(f, key) for f in self.folds if not math.isnan(getattr(f, key))]
        if not vals:
            return math.nan, math.nan
        return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        ev = self.evaluation
        doc: dict[str, Any] = {
            "k": self.k, "seed": self.seed, "recipe": self.config.name, "cancelled": self.cancelled,
            "wall_seconds": round(self.wall_seconds, 1),
            "out_of_fold": ev.to_dict(per_sample=True) if ev is not None else None,
            "folds": [f.to_dict() for f in self.folds],
        }
        for key in ("dice", "iou", "sample_dice", "sample_iou"):
            m, s = self.spread(key)
            doc[f"fold_{key}_mean"], doc[f"fold_{key}_std"] = _num(m), _num(s)
        if self.final_checkpoint is not None:
            doc["final"] = {"checkpoint": str(self.final_checkpoint),
                            "train_seconds": round(self.final_train_seconds or 0.0, 1)}
        doc["fold_ids"] = [list(f) for f in self.fold_ids]
        doc["config"] = self.config.to_dict()
        return doc


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 6)


def _train(cfg: TrainConfig, dataset: Dataset, run_dir: Path, cancel: CancelToken) -> Iterator[Event]:
    from segstudio.engine.train import train

    yield from train(cfg, dataset, run_dir=run_dir, cancel=cancel)


def cross_validate(dataset: Dataset, config: TrainConfig, *, k: int = 5, run_root: str | Path, seed: int = 0,
                   final: bool = False, cancel: CancelToken | None = None,
                   ) -> Iterator[Event | FoldStarted | FoldScored | CrossValidated]:
    """Train and score ``k`` folds of ``config`` (and the final model with ``final``), into ``run_root/fold-<i>``
    (``run_root/final``); ``run_root/cv.json`` holds the result. A cancel ends after the current fold's training
    with what was scored (``cancelled=True``)."""
    from segstudio.engine.infer import Prediction, predict
    from segstudio.engine.predictor import Predictor, recommended_options

    cancel = cancel or CancelToken()
    root = Path(run_root)
    t_start = time.perf_counter()
    folds = fold_ids(dataset, k, seed=seed)
    scores: list[FoldScore] = []
    pooled: list[tuple[str, np.ndarray | None]] = []
    cancelled = False
    for i, held in enumerate(folds):
        yield FoldStarted(fold=i, folds=k, train_samples=sum(len(f) for f in folds) - len(held), held_out=len(held))
        finished: Finished | None = None
        for ev in _train(config, excluding(dataset, held), root / f"fold-{i + 1}", cancel):
            if isinstance(ev, Finished):
                finished = ev
            yield ev
        # the checkpoint the recipe itself offers (its inner hold-out's best, else SWA, else last), as a user ships it
        ckpt = finished.model_checkpoint if finished is not None and not finished.cancelled else None
        if finished is None or ckpt is None:
            cancelled = True
            break
        predictor = Predictor.load([ckpt], options=recommended_options(ckpt, device=config.device))
        fold_masks: list[tuple[str, np.ndarray | None]] = []
        held_samples = [dataset.get(sid) for sid in held]
        for r in predict(dataset, predictor, samples=held_samples, cancel=cancel):
            fold_masks.append((r.sample_id, r.mask if isinstance(r, Prediction) else None))
        if cancel.cancelled:
            cancelled = True
            break
        result: Evaluation | None = None
        for ev2 in iter_evaluation(dataset, iter(fold_masks), total=len(fold_masks), source=str(ckpt),
                                   split=f"fold {i + 1}/{k}"):
            if isinstance(ev2, Evaluation):
                result = ev2
        assert result is not None
        pooled.extend(fold_masks)
        score = FoldScore(fold=i, samples=len(result.samples), dice=result.dice, iou=result.iou,
                          sample_dice=result.sample_dice, sample_iou=result.sample_iou,
                          epochs=finished.epochs_completed, train_seconds=finished.train_seconds, checkpoint=ckpt)
        scores.append(score)
        log.info("fold %d/%d: Dice %.4f IoU %.4f on %d held-out image(s)", i + 1, k, score.dice, score.iou,
                 score.samples)
        yield FoldScored(score=score, folds=k)
    evaluation: Evaluation | None = None
    if pooled:
        for ev3 in iter_evaluation(dataset, iter(pooled), total=len(pooled), source="out-of-fold",
                                   split=f"{len(scores)} of {k} folds"):
            if isinstance(ev3, Evaluation):
                evaluation = ev3
    final_ckpt, final_s = None, None
    if final and not cancelled:
        fin: Finished | None = None
        for ev in _train(config, dataset, root / "final", cancel):
            if isinstance(ev, Finished):
                fin = ev
            yield ev
        if fin is not None and not fin.cancelled:
            final_ckpt, final_s = fin.model_checkpoint, fin.train_seconds
        else:
            cancelled = True
    out = CrossValidated(folds=tuple(scores), evaluation=evaluation, k=k, seed=seed, config=config,
                         final_checkpoint=final_ckpt, final_train_seconds=final_s, cancelled=cancelled,
                         wall_seconds=time.perf_counter() - t_start, fold_ids=tuple(folds))
    atomic_write_json(root / RESULT_NAME, out.to_dict())
    yield out
