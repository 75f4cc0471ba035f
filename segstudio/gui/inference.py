"""Prediction from the app with the workspace's current model, in the background.

``InferenceController`` runs ``engine.infer.predict`` on a :class:`GeneratorWorker`: one job for the whole
dataset or a selection (progress, ETA, Stop), and a separate small job for "predict the current image" so that it
lands at once even while a long run goes on. Per sample, in the worker thread, the mask is cached in the
workspace's prediction store (by ``predict`` itself), the uncertainty map is written beside it, and the figures
the review queue reads are computed: Dice/IoU against the reference mask (latest correction, else GT), the mean
uncertainty and the change against the previous prediction of that sample by another checkpoint. The GUI thread
gets one :class:`SamplePredicted` per sample and stores the figures under ``MODEL_METRICS_KEY``.

A prediction never touches the mask-version history: corrections stay the editor's base.

Uncertainty of cached results: ``predict`` reads a sample back from the cache (no uncertainty) when the same
weights predicted it before; the uncertainty PNG written the first time is then read back instead.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.gui.workers import GeneratorWorker
from segstudio.metrics.compare import compare_masks
from segstudio.workspace import Workspace
from segstudio.workspace.model_predictions import (
    MODEL_METRICS_KEY,
    load_uncertainty,
    model_metrics_data,
    save_uncertainty,
)

log = logging.getLogger(__name__)

#: results finished in the helper thread but not yet handed on, at most (bounds memory: each holds a mask)
_POST_BACKLOG = 8

NO_MODEL_MESSAGE = ("There is no model to predict with. Train a model or choose one in the run history "
                    "(Training panel → Run history → Use this model).")


@dataclass(frozen=True, eq=False)
class SamplePredicted:
    """One sample predicted (GUI-side event). ``mask``: ``(H, W)``; ``uncertainty``: ``(H, W) float32`` in [0, 1]
    or None; ``comparison``: ``SampleComparison`` vs the reference mask or None (no GT, no correction)."""

    sample_id: str
    index: int
    total: int
    mask: np.ndarray
    uncertainty: np.ndarray | None
    mean_uncertainty: float | None
    comparison: Any
    change: float | None
    checkpoint_id: str
    stamp: str
    entry: Any  # PredictionEntry of the saved mask
    cached: bool
    seconds: float


@dataclass(frozen=True)
class SampleFailed:
    sample_id: str
    index: int
    total: int
    message: str


def _previous_entries(ws: Workspace, ids: set[str], cid: str) -> dict[str, Any]:
    """Newest prediction per sample by another checkpoint than ``cid`` (before this run writes anything)."""
    out: dict[str, Any] = {}
    for e in ws.predictions.entries():
        if e.sample_id in ids and e.checkpoint_id != cid and (e.sample_id not in out or e.time > out[e.sample_id].time):
            out[e.sample_id] = e
    return out


class PredictorCache:
    """Loaded models kept between jobs, so that predicting image after image does not reload (0.5 s) or re-export
    (ONNX, 2.5 s) the network each time. Keyed by checkpoint folder, backend, batch size and the weight file's
    modification time; holds at most ``size`` models. Used from worker threads (one job per key at a time)."""

    def __init__(self, size: int = 2) -> None:
        import threading

        self.size = size
        self._lock = threading.Lock()
        self._items: dict[tuple[Any, ...], tuple[Any, str, str]] = {}

    def get(self, checkpoint: Path, *, backend: str, batch_size: int) -> tuple[Any, str, str]:
        """``(predictor, checkpoint id, model stamp)``; loads on a miss (call it in a worker thread)."""
        from segstudio.engine.infer import checkpoint_id, model_stamp
        from segstudio.engine.predictor import InferenceOptions, Predictor

        weights = Path(checkpoint) / "model.safetensors"
        key = (str(Path(checkpoint).resolve()), backend, batch_size,
               weights.stat().st_mtime_ns if weights.is_file() else 0)
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        predictor = Predictor.load([checkpoint], options=InferenceOptions(uncertainty=True, backend=backend,
                                                                         batch_size=batch_size))
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


def predict_job(*, dataset: Dataset, workspace: Workspace, checkpoint: Path, sample_ids: Sequence[str] | None,
                reference: Callable[[str], np.ndarray | None], backend: str = "auto", batch_size: int = 4,
                cache: PredictorCache | None = None) -> Callable[[Any], Iterator[Any]]:
    """The worker's start function: loads the model (torch is imported here, in the worker thread; ``cache`` keeps
    it for the next job) and yields :class:`SamplePredicted` / :class:`SampleFailed`."""

    def start(token: Any) -> Iterator[Any]:
        from segstudio.engine.infer import Prediction, predict

        predictor, cid, stamp = (cache or PredictorCache(1)).get(checkpoint, backend=backend, batch_size=batch_size)
        ids = list(sample_ids) if sample_ids is not None else [s.id for s in dataset.samples]
        previous = _previous_entries(workspace, set(ids), cid)
        store = workspace.predictions
        schema = dataset.schema

        def finish(ev: Any) -> SamplePredicted:
            entry = store.get(ev.sample_id, checkpoint_id=cid)
            unc = ev.uncertainty
            if entry is not None:
                if unc is not None:
                    save_uncertainty(entry.path, unc)
                else:
                    unc = load_uncertainty(entry.path)
            comp = change = None
            try:
                ref = reference(ev.sample_id)
                if ref is not None and ref.shape == ev.mask.shape:
                    comp = compare_masks(ref, ev.mask, schema=schema, sample_id=ev.sample_id)
                prev = previous.get(ev.sample_id)
                if prev is not None and prev.path.is_file():
                    old = store.load(prev)
                    if old.shape == ev.mask.shape:
                        change = 1.0 - float(compare_masks(old, ev.mask, schema=schema).mean_dice)
            except SegstudioError as exc:  # a damaged reference only costs the figures of that sample
                log.warning("cannot score the prediction of %s: %s", ev.sample_id, exc)
            mean_unc = float(np.mean(unc)) if unc is not None else None
            return SamplePredicted(ev.sample_id, ev.index, ev.total, ev.mask, unc, mean_unc, comp, change, cid, stamp,
                                   entry, ev.cached, ev.seconds)

        # Writing the uncertainty map and scoring run in a helper thread (OpenCV and NumPy release the GIL) while
        # the network goes on with the next batch; results still come out in order.
        pending: deque[Future[Any]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segstudio-predict-post") as pool:
            for ev in predict(dataset, predictor, samples=ids, cancel=token, workspace=workspace):
                if isinstance(ev, Prediction):
                    pending.append(pool.submit(finish, ev))
                else:
                    failed: Future[Any] = Future()
                    failed.set_result(SampleFailed(ev.sample_id, ev.index, ev.total, ev.message))
                    pending.append(failed)
                while pending and (pending[0].done() or len(pending) > _POST_BACKLOG):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    return start


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


class InferenceController(QObject):
    """Predict with the workspace's chosen model. Signals (GUI thread):

    ``sig_started(job, total)`` (job: ``"current"`` or ``"batch"``), ``sig_predicted(SamplePredicted)``,
    ``sig_progress(done, total, eta_s)`` (batch job only; ``eta_s`` None until known), ``sig_ended(job, outcome,
    done, total)`` (outcome ``finished`` / ``cancelled`` / ``errored``), ``sig_errored(message, details)``,
    ``sig_message(text)`` (a line for the status bar)."""

    sig_started = Signal(str, int)
    sig_predicted = Signal(object)
    sig_progress = Signal(int, int, object)
    sig_ended = Signal(str, str, int, int)
    sig_errored = Signal(str, str)
    sig_message = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.workspace: Workspace | None = None
        self.checkpoint: Callable[[], Path | None] = lambda: None
        self.reference: Callable[[str], np.ndarray | None] = lambda _sid: None
        self.workers: dict[str, GeneratorWorker] = {}
        self.predictors = PredictorCache()
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._t0 = 0.0

    def set_context(self, dataset: Dataset | None, workspace: Workspace | None) -> None:
        self.stop_and_wait(30.0)
        self.dataset, self.workspace = dataset, workspace

    def running(self, job: str = "batch") -> bool:
        w = self.workers.get(job)
        return w is not None and w.running

    # starting ---------------------------------------------------------------------------------------------------
    def predict_current(self, sample_id: str) -> bool:
        return self._start("current", [sample_id], backend="torch", batch_size=1)

    def predict_samples(self, sample_ids: Sequence[str] | None = None) -> bool:
        """All samples (None) or these, in the background; False (with ``sig_message``) when it cannot start."""
        if sample_ids is not None and not sample_ids:
            self.sig_message.emit("No images are selected in the sample list.")
            return False
        return self._start("batch", sample_ids)

    def _start(self, job: str, sample_ids: Sequence[str] | None, *, backend: str = "auto",
               batch_size: int = 4) -> bool:
        ds, ws = self.dataset, self.workspace
        if ds is None or ws is None:
            self.sig_message.emit("Open a dataset first.")
            return False
        ckpt = self.checkpoint()
        if ckpt is None or not Path(ckpt).exists():
            self.sig_errored.emit(NO_MODEL_MESSAGE, "")
            return False
        if self.running(job):
            self.sig_message.emit("A prediction run is going on already; stop it first.")
            return False
        total = len(sample_ids) if sample_ids is not None else len(ds)
        worker = GeneratorWorker(predict_job(dataset=ds, workspace=ws, checkpoint=Path(ckpt), sample_ids=sample_ids,
                                             reference=self.reference, backend=backend, batch_size=batch_size,
                                             cache=self.predictors),
                                 name=f"predict-{job}", parent=self)
        worker.sig_progress.connect(lambda ev, j=job: self._on_worker_progress(j, ev))
        worker.sig_finished.connect(lambda _l, j=job: self._on_worker_ended(j, "finished"))
        worker.sig_cancelled.connect(lambda _l, j=job: self._on_worker_ended(j, "cancelled"))
        worker.sig_errored.connect(lambda m, d, j=job: self._on_worker_errored(j, m, d))
        self.workers[job] = worker
        self._done[job], self._total[job] = 0, total
        self._t0 = time.perf_counter()
        log.info("predicting %d sample(s) with %s (%s)", total, ckpt, job)
        worker.start()
        self.sig_started.emit(job, total)
        if job == "batch":
            self.sig_progress.emit(0, total, None)
        return True

    # stopping ---------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the batch job after its current batch (what was predicted so far stays)."""
        w = self.workers.get("batch")
        if w is not None:
            w.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        return all(w.stop_and_wait(timeout_s) for w in list(self.workers.values()))

    # worker handlers --------------------------------------------------------------------------------------------
    def _on_worker_progress(self, job: str, ev: object) -> None:
        self._done[job] = self._done.get(job, 0) + 1
        if isinstance(ev, SamplePredicted):
            self._store_metrics(ev)
            self.sig_predicted.emit(ev)
        elif isinstance(ev, SampleFailed):
            self.sig_message.emit(f"Cannot predict {ev.sample_id}: {ev.message.splitlines()[0]}")
        if job == "batch":
            done, total = self._done[job], self._total[job]
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / done * (total - done) if done else None
            self.sig_progress.emit(done, total, eta)

    def _store_metrics(self, ev: SamplePredicted) -> None:
        ws = self.workspace
        if ws is None:
            return
        comp = ev.comparison
        data = model_metrics_data(checkpoint=ev.checkpoint_id, stamp=ev.stamp, uncertainty=ev.mean_uncertainty,
                                  change=_finite(ev.change), comparison=comp.to_dict() if comp is not None else None)
        ws.metrics.put(ev.sample_id, key=MODEL_METRICS_KEY, data=data,
                       mean_dice=comp.mean_dice if comp is not None else None,
                       mean_iou=comp.mean_iou if comp is not None else None,
                       suspicion=ev.mean_uncertainty, stamp=ev.stamp)

    def _on_worker_ended(self, job: str, outcome: str) -> None:
        done, total = self._done.get(job, 0), self._total.get(job, 0)
        if job == "batch":
            what = "finished" if outcome == "finished" else "stopped"
            self.sig_message.emit(f"Prediction {what}: {done} of {total} image(s) predicted.")
        self.sig_ended.emit(job, outcome, done, total)

    def _on_worker_errored(self, job: str, message: str, details: str) -> None:
        self.sig_errored.emit(message, details)
        self.sig_ended.emit(job, "errored", self._done.get(job, 0), self._total.get(job, 0))

