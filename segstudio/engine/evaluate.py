"""Evaluation of a checkpoint (or a folder of predicted masks) against a dataset's GT.

Per class and mean Dice, IoU and pixel accuracy, multi-class and multi-label, with an ignore index. The counting
and the scores are ``segstudio.metrics``' (``class_counts`` per sample, pooled with ``+``, then
``comparison_from_counts``): the figures are the same ones the review screen shows per sample.

Two means are reported: ``dice``/``iou`` from the counts pooled over the split (each pixel weighs the same;
the standard "dataset Dice"), and ``sample_dice``/``sample_iou``, the mean of the per-sample figures (each
image weighs the same). Means run over the foreground classes (every class but background).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import DatasetError, SegstudioError
from segstudio.datasets.base import Dataset, Sample
from segstudio.engine.cancel import CancelToken
from segstudio.metrics import ClassCounts, SampleComparison, class_counts, comparison_from_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SampleEvaluated:
    """Progress: one sample scored (``index`` 0-based of ``total``)."""

    index: int
    total: int
    comparison: SampleComparison


@dataclass(frozen=True, kw_only=True)
class Unreadable:
    """In place of a predicted mask: the prediction could not be made or read (the sample is skipped and listed
    in :attr:`Evaluation.problems`)."""

    message: str
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class EvaluationProblem:
    """A sample left out of the figures because a file of it could not be read or used."""

    sample_id: str
    message: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class Evaluation:
    """The figures of one evaluation. ``summary`` holds the pooled per-class figures and their means;
    ``samples`` the per-sample comparisons, in dataset order."""

    summary: SampleComparison
    samples: tuple[SampleComparison, ...]
    sample_dice: float
    sample_iou: float
    skipped: tuple[str, ...] = ()
    source: str = ""
    split: str = "all"
    #: samples left out because their GT or prediction could not be read (a corrupt mask, a wrong size, ...)
    problems: tuple[EvaluationProblem, ...] = ()

    @property
    def dice(self) -> float:
        return self.summary.mean_dice

    @property
    def iou(self) -> float:
        return self.summary.mean_iou

    @property
    def pixel_accuracy(self) -> float:
        return self.summary.pixel_accuracy

    def to_dict(self, *, per_sample: bool = False) -> dict[str, Any]:
        """JSON-safe: means, per-class figures (NaN → null), and the per-sample figures when asked for."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 6)

        scored = set(self.summary.scored_ids)
        doc: dict[str, Any] = {
            "source": self.source,
            "split": self.split,
            "samples": len(self.samples),
            "skipped": list(self.skipped),
            "problems": [p.to_dict() for p in self.problems],
            "dice": num(self.dice),
            "iou": num(self.iou),
            "pixel_accuracy": num(self.pixel_accuracy),
            "sample_dice": num(self.sample_dice),
            "sample_iou": num(self.sample_iou),
            "per_class": [
                {
                    "id": c.class_id,
                    "name": c.name,
                    "scored": c.class_id in scored,
                    "dice": num(c.dice),
                    "iou": num(c.iou),
                    "precision": num(c.precision),
                    "recall": num(c.recall),
                    "gt_pixels": c.gt_pixels,
                    "pred_pixels": c.pred_pixels,
                }
                for c in self.summary.per_class
            ],
        }
        if per_sample:
            doc["per_sample"] = [
                {"sample_id": s.sample_id, "dice": num(s.mean_dice), "iou": num(s.mean_iou), "pixel_accuracy": num(s.pixel_accuracy)}
                for s in self.samples
            ]
        return doc


def _valid(gt: np.ndarray, ignore_index: int | None) -> np.ndarray | None:
    if ignore_index is None or np.issubdtype(gt.dtype, np.uint64):
        return None
    return gt != ignore_index


def iter_evaluation(
    dataset: Dataset,
    predictions: Iterator[tuple[str, np.ndarray | Unreadable | None]],
    *,
    total: int,
    ignore_index: int | None = None,
    cancel: CancelToken | None = None,
    source: str = "",
    split: str = "all",
    reference: Callable[[str], np.ndarray | None] | None = None,
) -> Iterator[SampleEvaluated | Evaluation]:
    """Score ``(sample id, predicted mask, None or Unreadable)`` pairs against the dataset's GT; yield a
    :class:`SampleEvaluated` per sample and the :class:`Evaluation` last (also after a cancel, over the samples
    scored so far). ``ignore_index``: a GT value left out of every figure, beside the schema's own.
    ``reference``: the mask to score against per sample id (default: the dataset's GT), e.g. the user's
    correction where there is one. A sample whose GT or prediction cannot be read or used is skipped and
    listed in ``Evaluation.problems`` (the run goes on); only when no sample can be scored is it an error."""
    schema = dataset.schema
    pooled: ClassCounts | None = None
    comps: list[SampleComparison] = []
    skipped: list[str] = []
    problems: list[EvaluationProblem] = []

    def problem(sid: str, message: str, path: Any = None) -> None:
        if path is None:
            try:
                s = dataset.get(sid)
                path = s.gt if isinstance(s.gt, str | Path) else s.image
            except (KeyError, SegstudioError):
                path = None
        problems.append(EvaluationProblem(sample_id=sid, message=message, path=None if path is None else str(path)))
        log.warning("evaluation: sample %s skipped: %s", sid, message)

    for k, (sid, pred) in enumerate(predictions):
        if cancel is not None and cancel.cancelled:
            log.info("evaluation cancelled after %d of %d samples", k, total)
            break
        if isinstance(pred, Unreadable):
            problem(sid, f"no prediction: {pred.message}", pred.path)
            continue
        try:
            gt = reference(sid) if reference is not None else dataset.load_gt(sid)
        except (SegstudioError, OSError, ValueError) as e:  # one bad mask is reported, never ends the run
            problem(sid, f"the ground truth cannot be read: {getattr(e, 'message', None) or e}",
                    getattr(e, "path", None))
            continue
        if gt is None or pred is None:
            skipped.append(sid)
            continue
        if gt.shape != pred.shape:
            problem(sid, f"the prediction is {pred.shape[1]}x{pred.shape[0]}, the GT "
                    f"{gt.shape[1]}x{gt.shape[0]}")
            continue
        try:
            counts = class_counts(gt, pred.astype(gt.dtype, copy=False), schema=schema,
                                  valid=_valid(gt, ignore_index))
        except ValueError as e:  # values that are no class id (a damaged mask, or a missing --ignore-index)
            problem(sid, f"the masks cannot be scored: {e}")
            continue
        pooled = counts if pooled is None else pooled + counts
        comp = comparison_from_counts(counts, schema=schema, sample_id=sid)
        comps.append(comp)
        yield SampleEvaluated(index=k, total=total, comparison=comp)
    if pooled is None:
        why = f" ({len(problems)} could not be read; first: {problems[0].sample_id}: {problems[0].message})" \
            if problems else ""
        raise DatasetError(
            f"No sample had both ground truth and a prediction to compare{why}.",
            path=dataset.root,
            fix="Check that the predictions are named like the dataset's images, that the split has GT, and that "
            "its masks are readable (segstudio info).",
        )
    summary = comparison_from_counts(pooled, schema=schema)
    yield Evaluation(
        summary=summary,
        samples=tuple(comps),
        sample_dice=float(np.mean([c.mean_dice for c in comps])),
        sample_iou=float(np.mean([c.mean_iou for c in comps])),
        skipped=tuple(skipped),
        source=source,
        split=split,
        problems=tuple(problems),
    )


def check_classes(dataset: Dataset, schema: Any) -> None:
    """A checkpoint scored against a dataset must speak its class ids: raise when they differ."""
    own = dataset.schema
    if own.multilabel != schema.multilabel or set(own.ids) != set(schema.ids):
        raise DatasetError(
            f"The checkpoint's classes {[c.name for c in schema]} are not the dataset's {[c.name for c in own]}.",
            path=dataset.root,
            fix="Evaluate a checkpoint trained on this kind of dataset (same class ids).",
        )


def select_samples(dataset: Dataset, split: str | None, *, checkpoint: Any = None) -> list[Sample]:
    """The samples to evaluate: all with GT (``split`` None or ``"all"``), a split of the dataset's own, or
    ``"val"`` / ``"train"`` — the checkpoint's training split reproduced (same config and seed) when the dataset
    has no such split of its own."""
    from segstudio.engine.data import VAL_ALIASES, split_samples

    with_gt = [s for s in dataset.samples if s.has_gt]
    if split in (None, "all"):
        return with_gt
    own = [s for s in with_gt if s.split == split or (split == "val" and s.split in VAL_ALIASES)]
    if own:
        return own
    if split in ("val", "train") and checkpoint is not None:
        parts = split_samples(dataset, checkpoint.config.data, task=checkpoint.task, seed=checkpoint.config.seed)
        if split == "val" and not parts.val:
            raise DatasetError(
                "The model was trained on every labelled image (no validation hold-out, val_fraction=0): it has no "
                "validation split to score.",
                path=dataset.root,
                fix="Score unseen images, or every image (--split all in segstudio predict and evaluate; the model "
                    "has seen them all), or cross-validate the recipe with segstudio cv for an unbiased figure; to "
                    "report or sweep such runs, train them with a hold-out (--set data.val_fraction=0.2, or the "
                    "Training panel's Hold-out).",
            )
        return list(parts.val if split == "val" else parts.train)
    names = sorted({s.split for s in dataset.samples if s.split})
    raise DatasetError(
        f"The dataset has no split named {split!r}.",
        path=dataset.root,
        fix=f"Use one of: all{', val (the training hold-out)' if checkpoint is not None else ''}"
        + (", " + ", ".join(names) if names else "") + ".",
    )


def evaluate_checkpoint(
    dataset: Dataset,
    predictor: Any,
    *,
    samples: Sequence[Sample] | None = None,
    ignore_index: int | None = None,
    cancel: CancelToken | None = None,
    workspace: Any = None,
    split: str = "all",
    reference: Callable[[str], np.ndarray | None] | None = None,
) -> Iterator[SampleEvaluated | Evaluation]:
    """Predict ``samples`` with ``predictor`` (``segstudio.engine.predictor.Predictor``) and score them
    (against ``reference(sample id)`` when given, else the dataset's GT)."""
    from segstudio.engine.infer import Prediction, predict

    check_classes(dataset, predictor.schema)
    chosen = list(samples) if samples is not None else [s for s in dataset.samples if s.has_gt]

    def pairs() -> Iterator[tuple[str, np.ndarray | Unreadable | None]]:
        for r in predict(dataset, predictor, samples=chosen, cancel=cancel, workspace=workspace):
            yield (r.sample_id, r.mask if isinstance(r, Prediction) else Unreadable(message=r.message))

    src = " + ".join(str(p) for p in predictor.checkpoint_paths)
    yield from iter_evaluation(dataset, pairs(), total=len(chosen), ignore_index=ignore_index, cancel=cancel,
                               source=src, split=split, reference=reference)


def evaluate_folder(
    dataset: Dataset,
    folder: str | Path,
    *,
    samples: Sequence[Sample] | None = None,
    ignore_index: int | None = None,
    cancel: CancelToken | None = None,
    split: str = "all",
) -> Iterator[SampleEvaluated | Evaluation]:
    """Score a folder of predicted masks (the layout ``segstudio DATASET --predictions DIR`` reads)."""
    from segstudio.datasets.predictions import PredictionFolder

    pf = PredictionFolder(folder, dataset)
    chosen = list(samples) if samples is not None else [s for s in dataset.samples if s.has_gt]

    def pairs() -> Iterator[tuple[str, np.ndarray | Unreadable | None]]:
        for s in chosen:
            try:
                yield s.id, pf.load(s)
            except (SegstudioError, OSError, ValueError) as e:
                where = getattr(e, "path", None)
                yield s.id, Unreadable(message=getattr(e, "message", None) or str(e),
                                       path=None if where is None else str(where))

    yield from iter_evaluation(dataset, pairs(), total=len(chosen), ignore_index=ignore_index, cancel=cancel,
                               source=str(pf.folder), split=split)


def run_to_end(events: Iterator[SampleEvaluated | Evaluation]) -> Evaluation:
    """Drain an evaluation generator and return its result."""
    result = None
    for ev in events:
        if isinstance(ev, Evaluation):
            result = ev
    assert result is not None
    return result
