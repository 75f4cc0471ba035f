"""One round of the human-in-the-loop loop (DESIGN §1), owned by the engine: fine-tune the workspace's current
model on GT ∪ corrections, score the new model and the current one on the frozen validation split, let the
promotion gate judge, and record the verdict in the workspace's model registry. The app and ``segstudio retrain``
run the same code:

```python
plan = plan_round(ws, epochs=5)                     # no torch: the run record, retrain.json, the fine-tune config
for ev in run_round(ws, dataset, plan):             # in a worker thread / the command
    ...                                             # training events, RetrainProgress, then RetrainCompared
```

The fine-tune starts from the current weights with the current model's own config, loaded once (a fifth of its
learning rate by default, no warm-up), over every labelled sample outside the validation split: the dataset's GT,
overridden by the user's corrections and accepted predictions (pseudo-labels included), the reviewed ones drawn
``reviewed_weight`` times as often. Its *last* checkpoint is compared — not the epoch that scored best on the
validation split, which would let the split pick the winner and flatter the new model. Both models are scored
against the same references (the correction where the user made one, else the GT), with the same inference.

The validation split is frozen in the registry the first time (from the current model's config) and reused by
every round after, so that rounds are compared on the same images. The verdict is
:func:`segstudio.metrics.gate.promotion_gate`'s: a better model is promoted by itself when the workspace's
``auto_promote`` says so; a refused or unproven one is recorded as refused and the current model stays.

Files of a round's run folder, written atomically: ``retrain.json`` (what it started from, its settings) and
``comparison.json`` (both evaluations, the gate's result, the decision).

This module imports no torch at import time (the app plans a round on its GUI thread); the trainer and the
predictor are imported when a round runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segstudio.core.atomic import atomic_write_json
from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.config import TrainConfig, fine_tune_config
from segstudio.engine.events import Event, Finished, RetrainCompared, RetrainProgress
from segstudio.metrics.gate import GateResult, GateThresholds, Verdict, promotion_gate
from segstudio.workspace import RunRecord, RunStatus, Workspace
from segstudio.workspace.models import CurrentModel

if TYPE_CHECKING:
    from segstudio.engine.data import Corrections
    from segstudio.engine.evaluate import Evaluation

log = logging.getLogger(__name__)

__all__ = [
    "COMPARISON_FILE",
    "RETRAIN_EPOCHS",
    "ROUND_FILE",
    "Decision",
    "RetrainCompared",
    "RetrainProgress",
    "RoundPlan",
    "fine_tune_config",
    "plan_round",
    "promote_round",
    "read_comparison",
    "retrain",
    "run_round",
    "validation_ids",
]

#: default length of a retraining round (epochs of fine-tuning)
RETRAIN_EPOCHS = 5
#: in a round's run folder: what it started from (a round is judged as a whole, so never resumed)
ROUND_FILE = "retrain.json"
#: in a round's run folder: both evaluations, the gate's result and the decision
COMPARISON_FILE = "comparison.json"


class Decision:
    """What a round did with its model (``RetrainCompared.decision``)."""

    PROMOTED = "promoted"  #: the gate said promote and auto-promotion is on: the new model is current
    AWAITING = "awaiting"  #: the gate said promote, auto-promotion is off: a person decides
    KEPT = "kept"  #: refused or not proven: the current model stays (recorded as a refusal)
    UNDECIDED = ""  #: :func:`retrain` alone (no workspace) decides nothing


def validation_ids(dataset: Dataset, config: TrainConfig) -> tuple[str, ...]:
    """The validation hold-out a run of ``config`` uses on ``dataset`` (GT only, no corrections): the split to
    freeze for the retraining rounds that follow. A model trained on every image (``val_fraction=0``, the
    small-data recipes) has none; its rounds still need one to judge the new model on, so they hold out the
    default share (:class:`DataConfig`'s ``val_fraction``)."""
    import dataclasses

    from segstudio.engine.config import DataConfig
    from segstudio.engine.data import split_samples
    from segstudio.engine.task import resolve_task

    task = resolve_task(dataset.schema, config.model.mode)
    data = config.data
    if data.val_fraction <= 0:
        data = dataclasses.replace(data, val_fraction=DataConfig.val_fraction)
    return tuple(s.id for s in split_samples(dataset, data, task=task, seed=config.seed).val)


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
    epochs: int = RETRAIN_EPOCHS,
    lr_scale: float = 0.2,
    cancel: CancelToken | None = None,
    device: str | None = None,
    config: TrainConfig | None = None,
    thresholds: GateThresholds | None = None,
) -> Iterator[Event | RetrainProgress | RetrainCompared]:
    """Fine-tune ``base_checkpoint`` and compare (no workspace: nothing is recorded, ``decision`` is empty);
    yields the trainer's events, :class:`RetrainProgress` while scoring, and one :class:`RetrainCompared` last.
    ``config``: the fine-tune config when the caller has loaded it already (else it is read from the checkpoint).
    A cancelled fine-tune ends after its ``Finished`` event (nothing is compared). Raises ``SegstudioError``
    before training when the validation split is empty."""
    from segstudio.engine.evaluate import SampleEvaluated, evaluate_checkpoint
    from segstudio.engine.predictor import Predictor, recommended_options
    from segstudio.engine.train import train

    base_path = Path(base_checkpoint)
    if config is None:
        config = fine_tune_config(TrainConfig.load(base_path / "config.json"), epochs=epochs, lr_scale=lr_scale)
    cfg = config.with_overrides([f"device={device}"]) if device is not None else config
    corr = dict(corrections or {})
    val_samples = [dataset.get(i) for i in val_ids if i in dataset]
    val_samples = [s for s in val_samples if s.has_gt or s.id in corr]
    if not val_samples:
        raise SegstudioError("The validation split has no labelled image to compare the models on.",
                             path=dataset.root, fix="Reset the validation split (it is chosen again from the GT).")
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

    results: dict[str, Evaluation] = {}
    for label, path in (("current", base_path), ("new", new_path)):
        # each model judged as it predicts: with its checkpoint's recommended inference (TTA, post-processing)
        predictor = Predictor.load([path], options=recommended_options(path, device=cfg.device, uncertainty=False))
        for item in evaluate_checkpoint(dataset, predictor, samples=val_samples, cancel=cancel, split="fixed val",
                                        reference=reference):
            if isinstance(item, SampleEvaluated):
                yield RetrainProgress(model=label, index=item.index, total=item.total)
            else:
                results[label] = item
        if cancel is not None and cancel.cancelled:
            return
    metric = _headline(cfg)
    before, after = results["current"], results["new"]
    gate = promotion_gate(before.samples, after.samples, thresholds=thresholds)
    log.info("retrain round: %s %.4f -> %.4f; gate: %s", metric, float(getattr(before, metric)),
             float(getattr(after, metric)), gate.reason)
    yield RetrainCompared(base_checkpoint=base_path, new_checkpoint=new_path, before=before, after=after,
                          metric=metric, gate=gate, val_ids=frozen, reviewed=len(weights),
                          epochs=finished.epochs_completed, train_seconds=finished.train_seconds)


# the workspace's round ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RoundPlan:
    """A round about to run: its run record (created, with ``retrain.json``), the model it starts from, the
    fine-tune config (loaded once), and the settings it runs with."""

    run: RunRecord
    base: CurrentModel
    config: TrainConfig
    base_config: TrainConfig
    epochs: int
    reviewed_weight: float
    lr_scale: float
    thresholds: GateThresholds
    auto_promote: bool
    author: str = ""


_ROUND_SUFFIX = re.compile(r"(?:retrain of )*(.*?)(?: · round \d+)?$")


def round_name(workspace: Workspace, base: CurrentModel) -> str:
    """``"<the first model's run name> · round N"``: N counts the rounds the workspace has judged, plus this one."""
    try:
        name = workspace.runs.get(base.run_id).name if base.run_id else ""
    except SegstudioError:  # a sweep's run ("<sweep>/runs/<name>"), or a run no longer recorded
        found = workspace.sweeps.find_run(base.run_id)
        name = found[1].record().name if found is not None else ""
    match = _ROUND_SUFFIX.fullmatch(name or base.run_id or base.checkpoint.parent.parent.name)
    root = (match.group(1) if match else name) or "model"
    n = 1 + sum(1 for ev in workspace.models.history() if ev.verdict and not ev.figures.get("by_hand"))
    return f"{root} · round {n}"


def plan_round(workspace: Workspace, *, epochs: int = RETRAIN_EPOCHS, reviewed_weight: float | None = None,
               lr_scale: float = 0.2, device: str | None = None, author: str = "",
               auto_promote: bool | None = None) -> RoundPlan:
    """Check that a round can run, load the current model's config once, create the round's run record and write
    its ``retrain.json``. ``reviewed_weight`` / ``auto_promote``: None = the workspace's settings (a given
    ``reviewed_weight`` is saved as the new setting). Raises ``SegstudioError`` with the fix when there is no
    current model or its checkpoint is gone."""
    cur = workspace.models.current()
    if cur is None:
        raise SegstudioError("There is no current model to retrain.", path=workspace.folder,
                             fix="Train a model first, or choose one (the app's run history → Use this model, or "
                                 "segstudio models promote CHECKPOINT).")
    if not (cur.checkpoint / "config.json").is_file():
        raise SegstudioError("The current model's checkpoint is gone.", path=cur.checkpoint,
                             fix="Choose another model (segstudio models list / promote), or roll back.")
    settings = workspace.settings
    weight = float(reviewed_weight if reviewed_weight is not None else settings.reviewed_weight)
    if not 0.0 <= weight <= 100.0:
        raise SegstudioError(f"The weight of reviewed samples must be between 0 and 100, not {weight}.",
                             fix="Use 1 for as often as the others, 3 for three times as often.")
    if weight != settings.reviewed_weight:
        workspace.save_settings(settings.replace(reviewed_weight=weight))
    thresholds = GateThresholds(**settings.gate_thresholds())
    base_config = TrainConfig.load(cur.checkpoint / "config.json")
    config = fine_tune_config(base_config, epochs=epochs, lr_scale=lr_scale)
    if device is not None:
        config = config.with_overrides([f"device={device}"])
    run_name = round_name(workspace, cur)
    run = workspace.runs.create(config.to_dict(), name=run_name)
    atomic_write_json(run.folder / ROUND_FILE, {
        "base_checkpoint": str(cur.checkpoint), "base_run": cur.run_id, "epochs": epochs, "lr_scale": lr_scale,
        "reviewed_weight": weight, "gate": thresholds.to_dict(),
        "auto_promote": settings.auto_promote if auto_promote is None else auto_promote, "author": author})
    return RoundPlan(run=run, base=cur, config=config, base_config=base_config, epochs=epochs,
                     reviewed_weight=weight, lr_scale=lr_scale, thresholds=thresholds,
                     auto_promote=settings.auto_promote if auto_promote is None else auto_promote, author=author)


def _figures(comp: RetrainCompared, run_id: str) -> dict[str, Any]:
    return {"run": run_id, "metric": comp.metric, "before": comp.before_value, "after": comp.after_value,
            "validation_images": len(comp.val_ids), "epochs": comp.epochs, "reviewed_samples": comp.reviewed,
            "gate": comp.gate.to_dict()}


def run_round(workspace: Workspace, dataset: Dataset, plan: RoundPlan, *, cancel: CancelToken | None = None,
              ) -> Iterator[Event | RetrainProgress | RetrainCompared]:
    """Run a planned round (call it in a worker thread or a command): freeze the validation split if none is,
    fine-tune, compare, judge, record in the registry and in the run record, write ``comparison.json``. Yields
    what :func:`retrain` yields; the last :class:`RetrainCompared` carries the ``decision``."""
    from segstudio.engine.data import corrections_from, excluding
    from segstudio.workspace import ReviewStatus

    runs, run_id = workspace.runs, plan.run.id
    # a label the person rejected is wrong and not yet fixed: it neither trains nor judges the models
    dataset = excluding(dataset, workspace.reviews.with_status(ReviewStatus.REJECTED))
    runs.update(run_id, status=RunStatus.RUNNING)
    compared: RetrainCompared | None = None
    finished: Finished | None = None
    try:
        split = workspace.models.validation_split()
        if split is None:
            ids = validation_ids(dataset, plan.base_config)
            split = workspace.models.freeze_validation(ids, from_run=plan.base.run_id)
        for ev in retrain(dataset, base_checkpoint=plan.base.checkpoint, run_dir=plan.run.folder, val_ids=split.ids,
                          corrections=corrections_from(workspace.versions), reviewed_weight=plan.reviewed_weight,
                          epochs=plan.epochs, cancel=cancel, config=plan.config, thresholds=plan.thresholds):
            if isinstance(ev, RetrainCompared):
                compared = ev
                continue
            if isinstance(ev, Finished):
                finished = ev
            yield ev
    except BaseException as exc:
        message = exc.message if isinstance(exc, SegstudioError) else f"{type(exc).__name__}: {exc}"
        runs.update(run_id, status=RunStatus.FAILED, message=message.splitlines()[0] if message else "failed")
        raise
    if compared is None:
        epochs = finished.epochs_completed if finished is not None else 0
        runs.update(run_id, status=RunStatus.CANCELLED,
                    message=f"stopped by the user after {epochs} complete epoch(s); nothing was compared")
        return
    gate = compared.gate
    figures = _figures(compared, run_id)
    if gate.verdict is Verdict.PROMOTE and plan.auto_promote:
        workspace.models.promote(compared.new_checkpoint, run_id=run_id, reason=f"gate: {gate.reason}",
                                 figures=figures, author=plan.author)
        decision = Decision.PROMOTED
    elif gate.verdict is Verdict.PROMOTE:
        decision = Decision.AWAITING
    else:
        workspace.models.refuse(compared.new_checkpoint, run_id=run_id, reason=f"gate: {gate.reason}",
                                figures=figures, author=plan.author)
        decision = Decision.KEPT
    compared = dataclasses.replace(compared, decision=decision, run_id=run_id)
    atomic_write_json(plan.run.folder / COMPARISON_FILE, comparison_doc(compared))
    message = (f"fine-tuned {compared.epochs} epoch(s) in {compared.train_seconds:.0f} s; {compared.metric} on "
               f"{len(compared.val_ids)} validation image(s) {compared.before_value:.4f} → "
               f"{compared.after_value:.4f}; gate: {gate.verdict.label}; {decision or 'undecided'}")
    after = compared.after_value
    runs.update(run_id, status=RunStatus.FINISHED, message=message,
                best_metric=after if math.isfinite(after) else None,
                best_metric_name=compared.metric if math.isfinite(after) else None)
    yield compared


def comparison_doc(comp: RetrainCompared) -> dict[str, Any]:
    """``comparison.json``: the before/after figures, the gate and the decision stay with the run."""
    return {"metric": comp.metric, "verdict": comp.gate.verdict.value, "decision": comp.decision,
            "run": comp.run_id, "base_checkpoint": str(comp.base_checkpoint),
            "new_checkpoint": str(comp.new_checkpoint), "validation_ids": list(comp.val_ids),
            "reviewed_samples": comp.reviewed, "epochs": comp.epochs, "gate": comp.gate.to_dict(),
            "before": comp.before.to_dict(), "after": comp.after.to_dict()}


def read_comparison(folder: Path) -> dict[str, Any] | None:
    """What a round wrote in its run folder's ``comparison.json``, or None (a training run, an unreadable file)."""
    try:
        doc = json.loads((Path(folder) / COMPARISON_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def promote_round(workspace: Workspace, run_id: str, *, reason: str = "", author: str = "") -> Path:
    """A person promotes a round's model (after an ``awaiting`` decision, or over the gate's refusal): recorded
    with the round's figures and a reason that says whose call it was."""
    run = workspace.runs.get(run_id)
    doc = read_comparison(run.folder)
    if doc is None or "new_checkpoint" not in doc:
        raise SegstudioError(f"Run {run.name or run.id} is not a judged retraining round.", path=run.folder,
                             fix="Promote a round that finished (segstudio models list shows them), or adopt a "
                                 "training run's checkpoint by its path.")
    new = Path(str(doc["new_checkpoint"]))
    verdict = str(doc.get("verdict") or "")
    gate = GateResult.from_dict(doc["gate"]) if isinstance(doc.get("gate"), dict) else None
    why = reason or "promoted by hand"
    if verdict and verdict != Verdict.PROMOTE.value and gate is not None:
        why += f" over the gate's verdict ({gate.verdict.label}: {gate.reason})"
    figures = {"run": run_id, "metric": doc.get("metric"), "validation_images": len(doc.get("validation_ids", [])),
               "gate": doc.get("gate"), "by_hand": True}
    workspace.models.promote(new, run_id=run_id, reason=why, figures=figures, author=author)
    return new
