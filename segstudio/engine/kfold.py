"""Out-of-fold predictions: every labelled image predicted by a model that never trained on it.

A model judging a label it has learned agrees with it, mistakes included; label-quality checks against a model
(:mod:`segstudio.metrics.suspicion`) therefore need out-of-fold predictions. The labelled samples are split into
``k`` folds (seeded, stratified by which classes an image has, so every fold sees every class); for each fold a
model is trained on the other folds (``train(val_ids=fold)``: the fold is the held-out split) and predicts the
fold, with probabilities. Runs go under ``run_root/fold-<i>/``.

```python
for ev in out_of_fold(dataset, config, k=5, run_root=folder):
    ...                                  # training events of each fold, FoldPredicted per fold, OutOfFold last
```
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segstudio.core.errors import DatasetError, SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import TrainConfig
from segstudio.engine.events import Event, Finished

log = logging.getLogger(__name__)

__all__ = ["FoldPredicted", "FoldStarted", "OutOfFold", "fold_ids", "out_of_fold"]


@dataclass(frozen=True, kw_only=True)
class FoldStarted:
    fold: int
    folds: int
    train_samples: int
    held_out: int


@dataclass(frozen=True, kw_only=True)
class FoldPredicted:
    fold: int
    folds: int
    predicted: int
    failed: int


@dataclass(frozen=True, kw_only=True)
class OutOfFold:
    """Every labelled sample's out-of-fold mask and ``(K, H, W) float16`` probabilities, ``K`` in the order of the
    dataset schema's ids (a class the models do not predict has zeros)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    folds: tuple[tuple[str, ...], ...] = ()
    checkpoints: tuple[Path, ...] = ()
    cancelled: bool = False

    def mask(self, sample_id: str) -> np.ndarray | None:
        return self.masks.get(sample_id)

    def probs(self, sample_id: str) -> np.ndarray | None:
        p = self.probabilities.get(sample_id)
        return p.astype(np.float32) if p is not None else None


def fold_ids(dataset: Dataset, k: int, *, seed: int = 0,
             labels: Callable[[str], np.ndarray | None] | None = None) -> list[tuple[str, ...]]:
    """The labelled samples in ``k`` folds: seeded, stratified by the set of classes present."""
    if k < 2:
        raise SegstudioError(f"Out-of-fold predictions need at least 2 folds, not {k}.", fix="Use --folds 5.")
    load = labels or dataset.load_gt
    keyed: dict[tuple[int, ...], list[str]] = {}
    for s in dataset.samples:
        if labels is None and not s.has_gt:
            continue
        m = load(s.id)
        if m is None:
            continue
        key = tuple(int(v) for v in np.unique(m)) if not dataset.schema.multilabel else (int(np.bitwise_or.reduce(
            np.asarray(m, np.uint64), axis=None)),)
        keyed.setdefault(key, []).append(s.id)
    n = sum(len(v) for v in keyed.values())
    if n < k:
        raise SegstudioError(f"{n} labelled image(s) cannot make {k} folds.", path=dataset.root,
                             fix=f"Use at most {max(n, 2)} folds, or label more images.")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    pos = 0
    for key in sorted(keyed):
        ids = list(keyed[key])
        rng.shuffle(ids)
        for sid in ids:
            folds[pos % k].append(sid)
            pos += 1
    return [tuple(f) for f in folds]


def _aligned(probs: np.ndarray, class_ids: list[int], schema_ids: list[int]) -> np.ndarray:
    out = np.zeros((len(schema_ids), *probs.shape[1:]), np.float16)
    where = {cid: i for i, cid in enumerate(class_ids)}
    for j, cid in enumerate(schema_ids):
        if cid in where:
            out[j] = probs[where[cid]]
    return out


def predict_checkpoint(dataset: Dataset, checkpoint: str | Path, *, samples: Sequence[str], device: str | None,
                       masks: dict[str, np.ndarray], probabilities: dict[str, np.ndarray],
                       cancel: CancelToken | None = None,
                       progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Predict ``samples`` with ``checkpoint`` as the app and `segstudio predict` do (its recommended inference:
    TTA, post-processing; a judge that fragments a lung the recipe's post-processing keeps whole is a false alarm),
    into ``masks`` and ``probabilities`` (float16, in the order of the dataset's schema). ``(predicted, failed)``."""
    from segstudio.engine.infer import Prediction, predict
    from segstudio.engine.predictor import Predictor, recommended_options

    predictor = Predictor.load([checkpoint], options=recommended_options(checkpoint, device=device or "auto",
                                                                         probabilities=True))
    class_ids, schema_ids = list(predictor.task.class_ids), list(dataset.schema.ids)
    done = failed = 0
    for ev in predict(dataset, predictor, samples=list(samples), cancel=cancel):
        if isinstance(ev, Prediction):
            masks[ev.sample_id] = ev.mask
            if ev.probabilities is not None:
                probabilities[ev.sample_id] = _aligned(ev.probabilities, class_ids, schema_ids)
            done += 1
        else:
            failed += 1
            log.warning("prediction of %s failed: %s", ev.sample_id, ev.message)
        if progress is not None:
            progress(ev.index + 1, ev.total)
    return done, failed


def _label_of(labels: Callable[[str], np.ndarray | None], dataset: Dataset, sample_id: str) -> np.ndarray:
    m = labels(sample_id)
    if m is None:  # fold_ids kept only the samples with a label; one that lost it since cannot be trained on
        raise DatasetError(f"Sample {sample_id!r} has no label to train on.", path=dataset.get(sample_id).image,
                           fix="Label it, or leave it out.")
    return m


def out_of_fold(dataset: Dataset, config: TrainConfig, *, k: int = 5, run_root: str | Path, seed: int = 0,
                cancel: CancelToken | None = None, device: str | None = None,
                labels: Callable[[str], np.ndarray | None] | None = None,
                ) -> Iterator[Event | FoldStarted | FoldPredicted | OutOfFold]:
    """Train ``k`` models of ``config`` and predict each one's held-out fold; yields the trainer's events,
    :class:`FoldStarted` / :class:`FoldPredicted` per fold, and one :class:`OutOfFold` last. ``labels``: what the
    models train on (default the GT; the labels being judged, e.g. with corrections). A cancel ends the run after
    the current fold's training, with what was predicted so far (``cancelled=True``)."""
    from segstudio.engine.data import excluding
    from segstudio.engine.train import train

    folds = fold_ids(dataset, k, seed=seed, labels=labels)
    cfg = config.with_overrides([f"device={device}"]) if device is not None else config
    corrections = None
    training_set = dataset
    if labels is not None:
        # the folded samples only: one the labels leave out (None) is neither trained on, though the dataset may
        # have its own GT, nor judged
        folded = {sid for fold in folds for sid in fold}
        corrections = {sid: functools.partial(_label_of, labels, dataset, sid) for sid in folded}
        training_set = excluding(dataset, (s.id for s in dataset.samples if s.id not in folded))
    root = Path(run_root)
    result = OutOfFold(folds=tuple(folds))
    checkpoints: list[Path] = []
    for i, held in enumerate(folds):
        yield FoldStarted(fold=i, folds=k, train_samples=sum(len(f) for f in folds) - len(held), held_out=len(held))
        finished: Finished | None = None
        for ev in train(cfg, training_set, run_dir=root / f"fold-{i + 1}", cancel=cancel, corrections=corrections,
                        val_ids=list(held)):
            if isinstance(ev, Finished):
                finished = ev
            yield ev
        if finished is None or finished.last_checkpoint is None or finished.cancelled:
            yield OutOfFold(masks=result.masks, probabilities=result.probabilities, folds=result.folds,
                            checkpoints=tuple(checkpoints), cancelled=True)
            return
        # the last epoch, not the best on the held-out fold: the fold must not choose its own judge
        ckpt = finished.last_checkpoint
        checkpoints.append(ckpt)
        done, failed = predict_checkpoint(dataset, ckpt, samples=list(held), device=cfg.device, cancel=cancel,
                                          masks=result.masks, probabilities=result.probabilities)
        yield FoldPredicted(fold=i, folds=k, predicted=done, failed=failed)
    yield OutOfFold(masks=result.masks, probabilities=result.probabilities, folds=result.folds,
                    checkpoints=tuple(checkpoints))
