"""One round of the human-in-the-loop loop (DESIGN §1): fine-tune the current model on GT ∪ corrections, then score
the new model and the current one on the same fixed validation split, and say whether the new one is better.

```python
val = validation_ids(dataset, current)            # once per workspace; keep it fixed across rounds
for ev in retrain(dataset, base_checkpoint=current, run_dir=run, val_ids=val, corrections=corr, epochs=5):
    ...                                           # training events, then RetrainProgress, then RetrainCompared
```

The fine-tune starts from the current weights with the current model's own config (a fifth of its learning rate
by default, no warm-up), over every labelled sample outside the validation split: the dataset's GT, overridden by
the user's corrections and accepted predictions (pseudo-labels included), the reviewed ones drawn
``reviewed_weight`` times as often. Its *last* checkpoint is compared — not the epoch that scored best on the
validation split, which would let the split pick the winner and flatter the new model. Both models are scored
against the same references (the correction where the user made one, else the GT), with the same inference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import TrainConfig, fine_tune_config
from segstudio.engine.data import Corrections, split_samples
from segstudio.engine.evaluate import Evaluation, SampleEvaluated, evaluate_checkpoint
from segstudio.engine.events import Event, Finished
from segstudio.engine.task import resolve_task

log = logging.getLogger(__name__)

__all__ = ["RetrainCompared", "RetrainProgress", "fine_tune_config", "retrain", "validation_ids"]


@dataclass(frozen=True)
class RetrainProgress:
    """Scoring after the fine-tune: ``model`` is ``"current"`` or ``"new"``; ``index`` 0-based of ``total``."""

    model: str
    index: int
    total: int


@dataclass(frozen=True)
class RetrainCompared:
    """The round's verdict. ``improved``: the new model's ``metric`` (mean over the foreground classes, pooled
    over the validation images) is higher than the current one's."""

    base_checkpoint: Path
    new_checkpoint: Path
    before: Evaluation
    after: Evaluation
    metric: str
    improved: bool
    val_ids: tuple[str, ...]
    reviewed: int
    epochs: int

    @property
    def before_value(self) -> float:
        return float(getattr(self.before, self.metric))

    @property
    def after_value(self) -> float:
        return float(getattr(self.after, self.metric))

    @property
    def delta(self) -> float:
        return self.after_value - self.before_value


def validation_ids(dataset: Dataset, config: TrainConfig) -> tuple[str, ...]:
    """The validation hold-out a run of ``config`` uses on ``dataset`` (GT only, no corrections): the split to
    freeze for the retraining rounds that follow."""
    task = resolve_task(dataset.schema, config.model.mode)
    return tuple(s.id for s in split_samples(dataset, config.data, task=task, seed=config.seed).val)


def _headline(config: TrainConfig) -> str:
    return "iou" if config.monitor.split(":")[0] == "iou" else "dice"


def retrain(
    dataset: Dataset,
    *,
    base_checkpoint: str | Path,
    run_dir: str | Path,
    val_ids: Sequence[str],
    corrections: Corrections | None = None,
    reviewed_weight: float = 1.0,
    epochs: int = 5,
    lr_scale: float = 0.2,
    cancel: CancelToken | None = None,
    device: str | None = None,
) -> Iterator[Event | RetrainProgress | RetrainCompared]:
    """Fine-tune ``base_checkpoint`` and compare; yields the trainer's events, :class:`RetrainProgress` while
    scoring, and one :class:`RetrainCompared` last. A cancelled fine-tune ends after its ``Finished`` event
    (nothing is compared). Raises ``SegstudioError`` before training when the validation split is empty."""
    from segstudio.engine.checkpoint import read_info
    from segstudio.engine.infer import InferenceOptions, Predictor
    from segstudio.engine.train import train

    base_path = Path(base_checkpoint)
    # the config only: the weights are loaded once, by the trainer (init_from) and later by the predictor
    base_config = read_info(base_path).config
    corr = dict(corrections or {})
    val_samples = [dataset.get(i) for i in val_ids if i in dataset]
    val_samples = [s for s in val_samples if s.has_gt or s.id in corr]
    if not val_samples:
        raise SegstudioError("The validation split has no labelled image to compare the models on.",
                             path=dataset.root, fix="Reset the validation split (it is chosen again from the GT).")
    cfg = fine_tune_config(base_config, epochs=epochs, lr_scale=lr_scale)
    if device is not None:
        cfg = cfg.with_overrides([f"device={device}"])
    frozen = tuple(s.id for s in val_samples)
    weights = {sid: float(reviewed_weight) for sid in corr if sid not in frozen}
    finished: Finished | None = None
    for ev in train(cfg, dataset, run_dir=run_dir, cancel=cancel, corrections=corr or None, init_from=base_path,
                    val_ids=frozen, sample_weights=weights):
        if isinstance(ev, Finished):
            finished = ev
        yield ev
    if finished is None or finished.cancelled or finished.last_checkpoint is None:
        return
    new_path = finished.last_checkpoint

    def reference(sid: str) -> np.ndarray | None:
        return corr[sid]() if sid in corr else dataset.load_gt(sid)

    opts = InferenceOptions(device=cfg.device, uncertainty=False)
    results: dict[str, Evaluation] = {}
    for label, path in (("current", base_path), ("new", new_path)):
        predictor = Predictor.load([path], options=opts)
        for item in evaluate_checkpoint(dataset, predictor, samples=val_samples, cancel=cancel, split="fixed val",
                                        reference=reference):
            if isinstance(item, SampleEvaluated):
                yield RetrainProgress(label, item.index, item.total)
            else:
                results[label] = item
        if cancel is not None and cancel.cancelled:
            return
    metric = _headline(cfg)
    before, after = results["current"], results["new"]
    b, a = float(getattr(before, metric)), float(getattr(after, metric))
    improved = math.isfinite(a) and (not math.isfinite(b) or a > b)
    log.info("retrain round: %s %.4f -> %.4f (%s)", metric, b, a, "better" if improved else "not better")
    yield RetrainCompared(base_path, new_path, before, after, metric, improved, frozen,
                          reviewed=len(weights), epochs=finished.epochs_completed)
