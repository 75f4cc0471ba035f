"""The model's predictions in the workspace as a prediction source: what the prediction layer shows when no
predictions folder was opened.

For each sample the source gives the current checkpoint's prediction when there is one, else the newest
prediction of that sample by another (older) checkpoint, marked *stale* until the sample is predicted again.
It offers what :class:`segstudio.datasets.predictions.PredictionFolder` offers to the review controller
(``__len__``, ``path_for``, ``load(sample, shape=)``, ``folder``) plus ``is_stale``, ``entry`` and
``uncertainty``.

The per-pixel uncertainty (entropy, 0..1) of a prediction is kept beside its mask as an 8-bit PNG
(``<mask stem>.uncertainty.png``, 0..255), so the heat map survives reopening the workspace.

Per-sample figures of the model live in the metrics store under :data:`MODEL_METRICS_KEY`: ``mean_dice``,
``mean_iou`` (prediction vs the latest correction, else GT), ``suspicion`` (= mean uncertainty) and ``data`` =
``{"checkpoint", "stamp", "uncertainty", "change", "comparison"}`` (see :func:`model_metrics_data`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.workspace.cache import MetricsStore, PredictionStore
from segstudio.workspace.records import PredictionEntry

log = logging.getLogger(__name__)

#: metrics key of the model's per-sample figures (read by the "next to review" queue)
MODEL_METRICS_KEY = "gt-vs-model"
UNCERTAINTY_SUFFIX = ".uncertainty.png"


def checkpoint_key(checkpoint: str | Path) -> str:
    """The prediction store's key of a single checkpoint folder (equal to ``engine.infer.checkpoint_id``), computed
    without loading the model."""
    return str(Path(checkpoint).resolve())


def uncertainty_path(mask_path: str | Path) -> Path:
    p = Path(mask_path)
    return p.with_name(p.with_suffix("").name + UNCERTAINTY_SUFFIX)


def save_uncertainty(mask_path: str | Path, uncertainty: np.ndarray) -> Path:
    """Write ``(H, W) float`` entropy in [0, 1] as an 8-bit PNG beside the prediction's mask file (atomic)."""
    u8 = np.clip(np.rint(np.nan_to_num(np.asarray(uncertainty, np.float32)) * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", u8)
    if not ok:
        raise SegstudioError("Cannot encode the uncertainty map.", path=Path(mask_path))
    path = uncertainty_path(mask_path)
    atomic_write_bytes(path, buf.tobytes())
    return path


def load_uncertainty(mask_path: str | Path) -> np.ndarray | None:
    """``(H, W) float32`` in [0, 1], or None when none was saved (or it cannot be read)."""
    path = uncertainty_path(mask_path)
    if not path.is_file():
        return None
    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        log.warning("cannot read the uncertainty map %s", path)
        return None
    return arr.astype(np.float32) / 255.0


def model_metrics_data(*, checkpoint: str, stamp: str, uncertainty: float | None, change: float | None,
                       comparison: dict[str, Any] | None) -> dict[str, Any]:
    """The ``data`` dict stored under :data:`MODEL_METRICS_KEY` (names read by the review queue)."""
    return {"checkpoint": checkpoint, "stamp": stamp, "uncertainty": uncertainty, "change": change,
            "comparison": comparison}


class ModelPredictions:
    """The workspace's predictions of ``dataset`` as seen from the current checkpoint (``None``: no model chosen;
    every prediction is then stale)."""

    def __init__(self, store: PredictionStore, dataset: Dataset, *, checkpoint: str | Path | None) -> None:
        self.store = store
        self.schema: ClassSchema = dataset.schema
        self.folder = store.folder / "predictions"
        self.checkpoint_id = checkpoint_key(checkpoint) if checkpoint is not None else None
        self._ids = {s.id for s in dataset.samples}
        self._lock = threading.Lock()
        self._best: dict[str, PredictionEntry] = {}
        for e in store.entries():
            self._offer(e)

    def _rank(self, e: PredictionEntry) -> tuple[int, float]:
        return (1 if e.checkpoint_id == self.checkpoint_id else 0, e.time)

    def _offer(self, e: PredictionEntry) -> bool:
        if e.sample_id not in self._ids:
            return False
        with self._lock:
            old = self._best.get(e.sample_id)
            if old is None or self._rank(e) >= self._rank(old):
                self._best[e.sample_id] = e
                return True
        return False

    def note(self, entry: PredictionEntry) -> bool:
        """A prediction was saved (e.g. by a run that is still going); True when it is now the one shown."""
        return self._offer(entry)

    # the PredictionFolder interface -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._best)

    def entry(self, sample: Sample | str) -> PredictionEntry | None:
        return self._best.get(sample if isinstance(sample, str) else sample.id)

    def path_for(self, sample: Sample | str) -> Path | None:
        e = self.entry(sample)
        return None if e is None else e.path

    def load(self, sample: Sample | str, *, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        e = self.entry(sample)
        if e is None:
            return None
        arr = self.store.load(e)
        if shape is not None and tuple(arr.shape[:2]) != tuple(shape):
            raise SegstudioError(f"The predicted mask is {arr.shape[1]}x{arr.shape[0]} but the image is "
                                 f"{shape[1]}x{shape[0]}.", path=e.path, fix="Predict this image again.")
        return arr if self.schema.multilabel else arr.astype(self.schema.mask_dtype(), copy=False)

    # more -------------------------------------------------------------------------------------------------------
    def is_stale(self, sample: Sample | str) -> bool:
        """The shown prediction was made by another checkpoint than the current one."""
        e = self.entry(sample)
        return e is not None and e.checkpoint_id != self.checkpoint_id

    def stale_ids(self) -> list[str]:
        return sorted(sid for sid, e in self._best.items() if e.checkpoint_id != self.checkpoint_id)

    def uncertainty(self, sample: Sample | str) -> np.ndarray | None:
        e = self.entry(sample)
        return None if e is None else load_uncertainty(e.path)


def rescore_model_metrics(metrics: MetricsStore, sample_id: str, comparison: Any, *,
                          entry: PredictionEntry | None = None) -> None:
    """A sample's reference mask changed (a correction was saved), or a prediction cached without figures (e.g.
    by ``segstudio predict --workspace``) was scored: replace its Dice/IoU under :data:`MODEL_METRICS_KEY`,
    keeping the model's own figures (uncertainty, change, checkpoint). ``comparison``: a ``SampleComparison`` or
    None; ``entry``: the prediction scored, naming the checkpoint when nothing was stored yet."""
    old = metrics.get(sample_id, key=MODEL_METRICS_KEY)
    if old is not None and entry is not None and old.data.get("checkpoint") != entry.checkpoint_id:
        old = None  # figures of another checkpoint's prediction: start afresh
    data = dict(old.data) if old is not None else model_metrics_data(
        checkpoint=entry.checkpoint_id if entry is not None else "", stamp=entry.model_stamp if entry is not None else "",
        uncertainty=None, change=None, comparison=None)
    data["comparison"] = comparison.to_dict() if comparison is not None else None
    metrics.put(sample_id, key=MODEL_METRICS_KEY, data=data,
                mean_dice=comparison.mean_dice if comparison is not None else None,
                mean_iou=comparison.mean_iou if comparison is not None else None,
                suspicion=old.suspicion if old is not None else None, stamp=str(data.get("stamp") or ""))
