"""The label-suspicion ranking kept in a workspace: which labels are most likely wrong, and why.

The ranking (``segstudio.metrics.suspicion.rank_dataset``) is cached in the metrics store under
:data:`SUSPICION_KEY`, one entry per sample: ``suspicion`` = the sample's score (0..1, higher = look first; an
unreadable label has none), ``data`` = ``{"reasons": [...], "per_class": {...}, "top_reason": text, "error": ...}``
(``SampleSuspicion.to_dict()`` plus the strongest reason's text, which the review queue reads) and ``stamp`` = the
label the figures judge: ``"v<N>"``, the sample's latest saved mask version (``"v0"`` = the dataset's GT). A
correction saved after the ranking changes the sample's stamp, so :func:`changed_since_ranking` names the labels
that changed and the app offers to rank again. What the ranking was made with (time, with or without a model)
is kept in the workspace's state under :data:`SUSPICION_STATE_KEY`.

Ring 1 and independent of ``segstudio.metrics``: it stores the plain dicts of ``SampleSuspicion.to_dict()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from segstudio.workspace.records import MetricsEntry

if TYPE_CHECKING:
    from segstudio.datasets.base import Dataset
    from segstudio.workspace.workspace import Workspace

__all__ = [
    "SUSPICION_KEY",
    "SUSPICION_STATE_KEY",
    "changed_since_ranking",
    "label_stamp",
    "label_stamps",
    "ranking_info",
    "stored_ranking",
    "store_ranking",
    "suspicion_scores",
]

#: metrics key of the per-sample label suspicion
SUSPICION_KEY = "label-suspicion"
#: workspace state key: ``{"time", "with_model", "samples", "note"}`` of the last ranking
SUSPICION_STATE_KEY = "label_suspicion"


def label_stamp(version: int) -> str:
    """The stamp of a sample's label: its latest saved mask version (0 = the dataset's GT)."""
    return f"v{int(version)}"


def label_stamps(workspace: Workspace, sample_ids: Iterable[str]) -> dict[str, str]:
    """``sample id -> stamp`` of the labels as saved now (one query)."""
    latest = workspace.versions.latest_all()
    return {sid: label_stamp(latest[sid].version if sid in latest else 0) for sid in sample_ids}


def store_ranking(workspace: Workspace, ranking: Iterable[Mapping[str, Any]], *, stamps: Mapping[str, str],
                  with_model: bool = False, note: str = "", out_of_fold: bool = False) -> int:
    """Replace the stored ranking with ``ranking`` (``SampleSuspicion.to_dict()`` per sample); ``stamps``: the
    labels judged (:func:`label_stamps` taken before ranking). Returns how many samples were stored."""
    now = time.time()
    entries = []
    for d in ranking:
        sid = str(d["sample_id"])
        reasons = list(d.get("reasons") or [])
        error = d.get("error")
        data = {"reasons": reasons, "per_class": dict(d.get("per_class") or {}),
                "top_reason": str(reasons[0]["text"]) if reasons else "", "error": error}
        score = d.get("score")
        entries.append(MetricsEntry(sample_id=sid, key=SUSPICION_KEY, data=data,
                                    suspicion=None if error or score is None else float(score),
                                    stamp=stamps.get(sid, ""), time=now))
    workspace.metrics.invalidate(key=SUSPICION_KEY)
    n = workspace.metrics.put_many(entries)
    workspace.state.set(SUSPICION_STATE_KEY, {"time": now, "with_model": bool(with_model), "samples": n,
                                              "note": note, "out_of_fold": bool(out_of_fold)})
    return n


def ranking_info(workspace: Workspace) -> dict[str, Any] | None:
    """What the last ranking was made with (``None``: the labels were never ranked in this workspace)."""
    info = workspace.state.get(SUSPICION_STATE_KEY)
    return info if isinstance(info, dict) else None


def suspicion_scores(workspace: Workspace) -> dict[str, float | None]:
    """``sample id -> score`` of the stored ranking (one query, for the sample table's column)."""
    return workspace.metrics.column(key=SUSPICION_KEY, figure="suspicion")


def stored_ranking(workspace: Workspace, sample_id: str) -> MetricsEntry | None:
    """A sample's stored entry (its reasons in ``data["reasons"]``, strongest first), or ``None``."""
    return workspace.metrics.get(sample_id, key=SUSPICION_KEY)


def changed_since_ranking(workspace: Workspace, dataset: Dataset) -> list[str]:
    """The ranked samples of ``dataset`` whose label was saved again since the ranking (dataset order)."""
    stored = {e.sample_id: e.stamp for e in workspace.metrics.entries(key=SUSPICION_KEY, data_fields=())}
    if not stored:
        return []
    now = label_stamps(workspace, stored)
    return [s.id for s in dataset.samples if s.id in stored and stored[s.id] != now[s.id]]

