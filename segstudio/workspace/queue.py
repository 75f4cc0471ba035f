"""The "next to review" queue: which sample a person should look at next, from what the model said about it.

The figures come from the model's per-sample entries in the metrics cache (key ``"gt-vs-model"``, written when the
app predicts): ``suspicion`` = mean per-pixel uncertainty (0..1), ``mean_dice`` = agreement with the reference
(the correction, else the GT), ``data["change"]`` = 1 - Dice between this prediction and the sample's previous one
by another model. Strategies:

- ``uncertainty``: the model's least certain samples first;
- ``disagreement``: the lowest Dice between prediction and GT (or correction) first;
- ``changed``: the samples whose prediction changed most since the previous model first;
- ``pseudo-labels``: unlabelled samples (no GT, no correction) the model is most confident about first — the
  candidates to accept as labels after a look;
- ``suspicion``: the labels most likely wrong first, from the label-suspicion ranking stored under
  :data:`segstudio.workspace.suspicion_store.SUSPICION_KEY` (model-free; made by the app's Review → Rank Labels
  by Suspicion); the item's reason is the strongest reason in words.

Samples already decided (accepted, corrected, rejected, flagged) leave the queue, except under ``pseudo-labels``
where only accepted or corrected ones do (a flagged unlabelled image may still deserve a label).

The figures may also come from a predictions folder the user opened (``SOURCE_FOLDER``): its per-sample entries
(key ``"gt-vs-predictions-folder"``, written when the app scores the folder) carry ``mean_dice`` only, so
``disagreement`` works with them and the others say why they do not (``unavailable_reason``). Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segstudio.workspace.model_predictions import MODEL_METRICS_KEY
from segstudio.workspace.records import MetricsEntry, ReviewStatus
from segstudio.workspace.suspicion_store import SUSPICION_KEY

if TYPE_CHECKING:
    from segstudio.datasets.base import Dataset
    from segstudio.workspace.workspace import Workspace

__all__ = [
    "MODEL_METRICS_KEY",
    "QUEUE_FIELDS",
    "SOURCE_FOLDER",
    "SOURCE_MODEL",
    "STRATEGIES",
    "SUSPICION_KEY",
    "QueueItem",
    "default_strategy",
    "metrics_key_for",
    "next_in_queue",
    "review_queue",
    "unavailable_reason",
    "workspace_entries",
    "workspace_queue",
]

#: the fields of an entry's ``data`` the queue reads (``MetricsStore.entries(data_fields=...)``)
QUEUE_FIELDS = ("uncertainty", "change", "top_reason")

STRATEGIES: dict[str, str] = {
    "uncertainty": "Most uncertain prediction",
    "disagreement": "Most disagreement with GT / correction",
    "changed": "Changed most since the last model",
    "pseudo-labels": "Confident predictions on unlabelled images",
    "suspicion": "Most suspicious label",
}

#: strategies whose figures are not the predictions' but stored under their own metrics key
_OWN_KEYS = {"suspicion": SUSPICION_KEY}

#: where the queue's figures come from: the model's predictions in the workspace, or a predictions folder
SOURCE_MODEL = "model"
SOURCE_FOLDER = "folder"

#: why a strategy cannot work from a predictions folder (a folder holds label maps: no uncertainty, one model)
_FOLDER_UNAVAILABLE = {
    "uncertainty": "Most uncertain needs the model's own predictions (a predictions folder holds label maps, "
                   "without the model's uncertainty): choose disagreement, or predict with a model.",
    "changed": "Changed since the last model needs the predictions of two models; a predictions folder is one "
               "set of predictions: choose disagreement, or predict with two models in turn.",
    "pseudo-labels": "Confident predictions need the model's uncertainty, which a predictions folder does not "
                     "hold: predict with a model to find pseudo-label candidates.",
}


def unavailable_reason(strategy: str, *, source: str) -> str | None:
    """Why ``strategy`` cannot order samples from ``source`` (``SOURCE_MODEL`` / ``SOURCE_FOLDER``); ``None``
    when it can."""
    return _FOLDER_UNAVAILABLE.get(strategy) if source == SOURCE_FOLDER else None


def metrics_key_for(strategy: str, *, source_key: str = MODEL_METRICS_KEY) -> str:
    """Where the figures of ``strategy`` are stored: its own key (``suspicion``), else the prediction source's
    (``source_key``: the model's by default, or a predictions folder's)."""
    return _OWN_KEYS.get(strategy, source_key)


def default_strategy(source: str) -> str:
    """The strategy used until the user picks one: the first that works from ``source``."""
    return next(k for k in STRATEGIES if unavailable_reason(k, source=source) is None)


@dataclass(frozen=True)
class QueueItem:
    sample_id: str
    #: the figure the queue is ordered by (higher = sooner), and a short text for people
    score: float
    reason: str


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def review_queue(
    strategy: str,
    entries: Iterable[MetricsEntry],
    *,
    statuses: Mapping[str, ReviewStatus],
    labelled: set[str],
    order: list[str] | None = None,
) -> list[QueueItem]:
    """The queue under ``strategy``, first item first. ``statuses``: review status per sample (missing =
    unreviewed); ``labelled``: samples with GT or a correction; ``order``: the dataset's order, which breaks ties."""
    if strategy not in STRATEGIES:
        from segstudio.core.errors import UnknownKeyError

        raise UnknownKeyError("review queue strategy", strategy, list(STRATEGIES))
    rank = {sid: i for i, sid in enumerate(order or [])}
    out: list[QueueItem] = []
    for e in entries:
        st = statuses.get(e.sample_id, ReviewStatus.UNREVIEWED)
        unc = _finite(e.suspicion if e.suspicion is not None else e.data.get("uncertainty"))
        if strategy == "pseudo-labels":
            if e.sample_id in labelled or st in (ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED) or unc is None:
                continue
            out.append(QueueItem(e.sample_id, 1.0 - unc, f"unlabelled · uncertainty {unc:.3f}"))
            continue
        if st is not ReviewStatus.UNREVIEWED:
            continue
        if strategy == "suspicion":
            score = _finite(e.suspicion)
            if score is not None:
                top = str(e.data.get("top_reason") or "no reason found")
                out.append(QueueItem(e.sample_id, score, f"suspicion {score:.2f}: {top}"))
        elif strategy == "uncertainty" and unc is not None:
            out.append(QueueItem(e.sample_id, unc, f"uncertainty {unc:.3f}"))
        elif strategy == "disagreement":
            dice = _finite(e.mean_dice)
            if dice is not None:
                out.append(QueueItem(e.sample_id, 1.0 - dice, f"Dice with GT {dice:.3f}"))
        elif strategy == "changed":
            change = _finite(e.data.get("change"))
            if change is not None:
                out.append(QueueItem(e.sample_id, change, f"changed {change:.3f} since the last model"))
    out.sort(key=lambda q: (-q.score, rank.get(q.sample_id, len(rank)), q.sample_id))
    return out


def next_in_queue(queue: list[QueueItem], current: str | None) -> QueueItem | None:
    """The first item that is not ``current`` (the sample on screen is the one being reviewed now)."""
    return next((q for q in queue if q.sample_id != current), None)


def workspace_entries(workspace: Workspace, dataset: Dataset, *, key: str = MODEL_METRICS_KEY) -> list[MetricsEntry]:
    """The per-sample figures the queue reads (only the fields it needs), for the samples of ``dataset``."""
    return [e for e in workspace.metrics.entries(key=key, data_fields=QUEUE_FIELDS) if e.sample_id in dataset]


def workspace_queue(workspace: Workspace, dataset: Dataset, strategy: str, *, key: str | None = None,
                    entries: list[MetricsEntry] | None = None) -> list[QueueItem]:
    """The queue of ``dataset`` under ``strategy`` from what ``workspace`` holds: the figures stored under ``key``
    (default :func:`metrics_key_for` the strategy: the model's, or the label-suspicion ranking's), the review
    states, and which samples have GT or a correction. The app's queue and ``segstudio queue`` both read it here."""
    if entries is None:
        entries = workspace_entries(workspace, dataset, key=key or metrics_key_for(strategy))
    labelled = {s.id for s in dataset.samples if s.has_gt} | workspace.versions.corrected_ids()
    statuses = {sid: st.status for sid, st in workspace.reviews.all().items()}
    return review_queue(strategy, entries, statuses=statuses, labelled=labelled, order=[s.id for s in dataset.samples])
