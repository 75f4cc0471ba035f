"""Prediction from the app with the workspace's current model, in the background.

``InferenceController`` runs ``engine.infer.predict`` on a :class:`GeneratorWorker`: one job for the whole
dataset or a selection (progress, ETA, Stop), and a separate small job for "predict the current image" so that it
lands at once even while a long run goes on. Per sample, in the worker thread, the mask is cached in the
workspace's prediction store, the uncertainty map is written beside it, and the figures the review queue reads
are computed and stored — all by :mod:`segstudio.engine.workspace_predict`, the same code
``segstudio predict --workspace`` runs. The GUI thread gets one ``SamplePredicted`` per sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.datasets.base import Dataset
from segstudio.engine.workspace_predict import PredictorCache, SampleFailed, SamplePredicted
from segstudio.gui.common.workers import GeneratorWorker
from segstudio.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = ["NO_MODEL_MESSAGE", "InferenceController", "PredictorCache", "SampleFailed", "SamplePredicted",
           "predict_job"]

NO_MODEL_MESSAGE = ("There is no model to predict with. Train a model or choose one in the run history "
                    "(Training panel → Run history → Use this model).")


def predict_job(*, dataset: Dataset, workspace: Workspace, checkpoint: Path, sample_ids: Sequence[str] | None,
                reference: Callable[[str], np.ndarray | None], backend: str = "auto", batch_size: int = 4,
                cache: PredictorCache | None = None) -> Callable[[Any], Iterator[Any]]:
    """The worker's start function: :func:`segstudio.engine.workspace_predict.predict_into_workspace` (torch is
    imported there, in the worker thread; ``cache`` keeps the model for the next job)."""

    def start(token: Any) -> Iterator[Any]:
        from segstudio.engine.workspace_predict import predict_into_workspace

        return predict_into_workspace(dataset, workspace, checkpoint, sample_ids=sample_ids, reference=reference,
                                      backend=backend, batch_size=batch_size, cache=cache, cancel=token)

    return start


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

    def predict_here(self, image: np.ndarray, box: tuple[int, int, int, int],
                     on_result: Callable[[np.ndarray], None]) -> bool:
        """The current model on the crop ``box`` (y0, x0, y1, x1) of ``image`` in the background; ``on_result``
        gets the mask (the image's size) on the GUI thread. False (with a message) when it cannot start."""
        ckpt = self.checkpoint()
        if ckpt is None or not Path(ckpt).exists():
            self.sig_errored.emit(NO_MODEL_MESSAGE, "")
            return False
        if self.running("here"):
            self.sig_message.emit("The model is predicting the last box; wait for its proposal.")
            return False
        cache = self.predictors

        def start(_token: Any) -> Iterator[Any]:
            from segstudio.engine.infer import predict_region

            predictor, _cid, _stamp = cache.get(Path(ckpt), backend="torch", batch_size=1)
            yield predict_region(predictor, image, box)

        worker = GeneratorWorker(start, name="predict-here", parent=self)
        worker.sig_finished.connect(lambda last: on_result(last) if isinstance(last, np.ndarray) else None)
        worker.sig_errored.connect(lambda m, d: self.sig_errored.emit(m, d))
        self.workers["here"] = worker
        worker.start()
        self.sig_message.emit("Predicting the box with the current model…")
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
            self.sig_predicted.emit(ev)
        elif isinstance(ev, SampleFailed):
            self.sig_message.emit(f"Cannot predict {ev.sample_id}: {ev.message.splitlines()[0]}")
        if job == "batch":
            done, total = self._done[job], self._total[job]
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / done * (total - done) if done else None
            self.sig_progress.emit(done, total, eta)

    def _on_worker_ended(self, job: str, outcome: str) -> None:
        done, total = self._done.get(job, 0), self._total.get(job, 0)
        if job == "batch":
            what = "finished" if outcome == "finished" else "stopped"
            self.sig_message.emit(f"Prediction {what}: {done} of {total} image(s) predicted.")
        self.sig_ended.emit(job, outcome, done, total)

    def _on_worker_errored(self, job: str, message: str, details: str) -> None:
        self.sig_errored.emit(message, details)
        self.sig_ended.emit(job, "errored", self._done.get(job, 0), self._total.get(job, 0))

