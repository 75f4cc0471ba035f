"""Predicting into a workspace: the masks cached per (sample, checkpoint), the uncertainty map beside each, and the
figures the review queue reads, stored the same way by the app and by ``segstudio predict --workspace``.

Per sample, in the calling (worker) thread: ``engine.infer.predict`` caches the mask in the workspace's prediction
store; the uncertainty map is written beside it (or read back when the same weights predicted the sample before);
then Dice/IoU against the reference mask (the latest correction, else the GT), the mean uncertainty and the change
against the previous prediction of that sample by another checkpoint are computed and stored under
``MODEL_METRICS_KEY``. One :class:`SamplePredicted` (or :class:`SampleFailed`) is yielded per sample, in order.

A prediction never touches the mask-version history: corrections stay the editor's base.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.metrics.compare import SampleComparison, compare_masks
from segstudio.workspace import Workspace
from segstudio.workspace.model_predictions import (
    MODEL_METRICS_KEY,
    load_uncertainty,
    model_metrics_data,
    save_uncertainty,
)

log = logging.getLogger(__name__)

__all__ = ["PredictorCache", "SampleFailed", "SamplePredicted", "WorkspaceScorer", "predict_into_workspace",
           "store_model_metrics", "workspace_reference"]

#: results finished in the helper thread but not yet handed on, at most (bounds memory: each holds a mask)
_POST_BACKLOG = 8


@dataclass(frozen=True, eq=False, kw_only=True)
class SamplePredicted:
    """One sample predicted. ``mask``: ``(H, W)``; ``uncertainty``: ``(H, W) float32`` in [0, 1] or None;
    ``comparison``: vs the reference mask, or None (no GT, no correction)."""

    sample_id: str
    index: int
    total: int
    mask: np.ndarray
    uncertainty: np.ndarray | None
    mean_uncertainty: float | None
    comparison: SampleComparison | None
    change: float | None
    checkpoint_id: str
    stamp: str
    entry: Any  # PredictionEntry of the saved mask
    cached: bool
    seconds: float


@dataclass(frozen=True, kw_only=True)
class SampleFailed:
    sample_id: str
    index: int
    total: int
    message: str


class PredictorCache:
    """Loaded models kept between jobs, so that predicting image after image does not reload (0.5 s) or re-export
    (ONNX, 2.5 s) the network each time. Keyed by checkpoint folder, backend, batch size and the weight file's
    modification time; holds at most ``size`` models. Used from worker threads (one job per key at a time)."""

    def __init__(self, size: int = 2, *, device: str = "auto") -> None:
        self.size = size
        self.device = device
        self._lock = threading.Lock()
        self._items: dict[tuple[Any, ...], tuple[Any, str, str]] = {}

    def get(self, checkpoint: Path, *, backend: str, batch_size: int) -> tuple[Any, str, str]:
        """``(predictor, checkpoint id, model stamp)``; loads on a miss (call it in a worker thread)."""
        from segstudio.engine.infer import checkpoint_id, model_stamp
        from segstudio.engine.predictor import Predictor, recommended_options

        weights = Path(checkpoint) / "model.safetensors"
        key = (str(Path(checkpoint).resolve()), backend, batch_size,
               weights.stat().st_mtime_ns if weights.is_file() else 0)
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        # the checkpoint's recommended inference (TTA, post-processing, mode): what `segstudio predict` runs
        options = recommended_options(checkpoint, uncertainty=True, backend=backend, batch_size=batch_size,
                                      device=self.device)
        predictor = Predictor.load([checkpoint], options=options)
        value = (predictor, checkpoint_id(predictor), model_stamp(predictor))
        with self._lock:
            for k in [k for k in self._items if k[:3] == key[:3]]:
                del self._items[k]  # the same checkpoint with older weights
            while len(self._items) >= self.size:
                del self._items[next(iter(self._items))]
            self._items[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def workspace_reference(workspace: Workspace, dataset: Dataset) -> Callable[[str], np.ndarray | None]:
    """The reference a prediction is scored against: the sample's latest saved mask version, else its GT."""
    def reference(sample_id: str) -> np.ndarray | None:
        v = workspace.versions.latest(sample_id)
        if v is not None:
            return workspace.versions.load(v)
        return dataset.load_gt(sample_id) if dataset.get(sample_id).has_gt else None

    return reference


def _previous_entries(ws: Workspace, ids: set[str], cid: str) -> dict[str, Any]:
    """Newest prediction per sample by another checkpoint than ``cid`` (before this run writes anything)."""
    out: dict[str, Any] = {}
    for e in ws.predictions.entries():
        if e.sample_id in ids and e.checkpoint_id != cid and (e.sample_id not in out or e.time > out[e.sample_id].time):
            out[e.sample_id] = e
    return out


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def store_model_metrics(workspace: Workspace, ev: SamplePredicted) -> None:
    """The figures of one prediction under ``MODEL_METRICS_KEY`` (what the review queue and the browser read)."""
    comp = ev.comparison
    data = model_metrics_data(checkpoint=ev.checkpoint_id, stamp=ev.stamp, uncertainty=ev.mean_uncertainty,
                              change=_finite(ev.change), comparison=comp.to_dict() if comp is not None else None)
    workspace.metrics.put(ev.sample_id, key=MODEL_METRICS_KEY, data=data,
                          mean_dice=comp.mean_dice if comp is not None else None,
                          mean_iou=comp.mean_iou if comp is not None else None,
                          suspicion=ev.mean_uncertainty, stamp=ev.stamp)


class WorkspaceScorer:
    """Turns each ``engine.infer.Prediction`` of one predictor into the workspace's record of it: the uncertainty
    map beside the cached mask, the figures against the reference and against the previous model's prediction,
    stored under ``MODEL_METRICS_KEY``. Thread-safe for one caller at a time (the app's helper thread, the CLI)."""

    def __init__(self, workspace: Workspace, dataset: Dataset, *, checkpoint_id: str, stamp: str,
                 sample_ids: Sequence[str], reference: Callable[[str], np.ndarray | None] | None = None) -> None:
        if workspace.read_only:
            raise SegstudioError("The workspace is open read-only: predictions cannot be stored in it.",
                                 path=workspace.folder, fix=workspace.read_only_reason or "Close the other instance.")
        self.workspace, self.dataset = workspace, dataset
        self.checkpoint_id, self.stamp = checkpoint_id, stamp
        self.reference = reference or workspace_reference(workspace, dataset)
        self.previous = _previous_entries(workspace, set(sample_ids), checkpoint_id)

    def finish(self, ev: Any) -> SamplePredicted:
        store, schema = self.workspace.predictions, self.dataset.schema
        entry = store.get(ev.sample_id, checkpoint_id=self.checkpoint_id)
        unc = ev.uncertainty
        if entry is not None:
            if unc is not None:
                save_uncertainty(entry.path, unc)
            else:
                unc = load_uncertainty(entry.path)
        comp = change = None
        try:
            r = self.reference(ev.sample_id)
            if r is not None and r.shape == ev.mask.shape:
                comp = compare_masks(r, ev.mask, schema=schema, sample_id=ev.sample_id)
            prev = self.previous.get(ev.sample_id)
            if prev is not None and prev.path.is_file():
                old = store.load(prev)
                if old.shape == ev.mask.shape:
                    change = 1.0 - float(compare_masks(old, ev.mask, schema=schema).mean_dice)
        except SegstudioError as exc:  # a damaged reference only costs the figures of that sample
            log.warning("cannot score the prediction of %s: %s", ev.sample_id, exc)
        mean_unc = float(np.mean(unc)) if unc is not None else None
        out = SamplePredicted(sample_id=ev.sample_id, index=ev.index, total=ev.total, mask=ev.mask, uncertainty=unc,
                              mean_uncertainty=mean_unc, comparison=comp, change=change,
                              checkpoint_id=self.checkpoint_id, stamp=self.stamp, entry=entry, cached=ev.cached,
                              seconds=ev.seconds)
        store_model_metrics(self.workspace, out)
        return out


def predict_into_workspace(dataset: Dataset, workspace: Workspace, checkpoint: Path, *,
                           sample_ids: Sequence[str] | None = None,
                           reference: Callable[[str], np.ndarray | None] | None = None, backend: str = "auto",
                           batch_size: int = 4, cache: PredictorCache | None = None,
                           cancel: CancelToken | None = None, device: str = "auto",
                           ) -> Iterator[SamplePredicted | SampleFailed]:
    """Predict ``sample_ids`` (None: every sample) with ``checkpoint`` into ``workspace`` (see the module's
    docstring); loads the model (``cache`` keeps it for the next call). ``reference``: default
    :func:`workspace_reference`."""
    from segstudio.engine.infer import Prediction, predict

    if workspace.read_only:
        raise SegstudioError("The workspace is open read-only: predictions cannot be stored in it.",
                             path=workspace.folder, fix=workspace.read_only_reason or "Close the other instance.")
    cache = cache or PredictorCache(1, device=device)
    predictor, cid, stamp = cache.get(Path(checkpoint), backend=backend, batch_size=batch_size)
    ids = list(sample_ids) if sample_ids is not None else [s.id for s in dataset.samples]
    scorer = WorkspaceScorer(workspace, dataset, checkpoint_id=cid, stamp=stamp, sample_ids=ids, reference=reference)

    # Writing the uncertainty map and scoring run in a helper thread (OpenCV and NumPy release the GIL) while the
    # network goes on with the next batch; results still come out in order.
    pending: deque[Future[Any]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segstudio-predict-post") as pool:
        for ev in predict(dataset, predictor, samples=ids, cancel=cancel, workspace=workspace):
            if isinstance(ev, Prediction):
                pending.append(pool.submit(scorer.finish, ev))
            else:
                failed: Future[Any] = Future()
                failed.set_result(SampleFailed(sample_id=ev.sample_id, index=ev.index, total=ev.total,
                                               message=ev.message))
                pending.append(failed)
            while pending and (pending[0].done() or len(pending) > _POST_BACKLOG):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
