"""The figures of the app's metrics dashboard: the open predictions scored against the ground truth or the
corrections the way ``segstudio evaluate`` scores them (:func:`segstudio.engine.evaluate.iter_evaluation`), plus
the pixels' confusion matrix and each class's HD95 and average surface distance per image (in mm when every image
has a pixel spacing). Torch-free: the app runs it on a worker thread (``gui.loop.metrics_dashboard``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.evaluate import Evaluation, Unreadable, iter_evaluation
from segstudio.metrics.compare import class_plane
from segstudio.metrics.confusion import confusion_matrix, counts_from_matrix
from segstudio.metrics.scores import specificity
from segstudio.metrics.surface import surface_figures

__all__ = ["DashboardResult", "dashboard_events"]


@dataclass(frozen=True)
class DashboardResult:
    """What the dashboard shows: ``evaluation`` (``engine.evaluate.Evaluation``) and, for semantic masks, the
    confusion matrix over ``class_ids`` (rows: reference, columns: prediction)."""

    evaluation: Any
    confusion: np.ndarray | None
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    reference: str
    source: str
    #: per sample id, per scored class id: (HD95, average surface distance) in ``surface_unit``
    surface: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    #: "mm" when every scored image has a pixel spacing (DICOM header or classes.json), else "px"
    surface_unit: str = "px"

    def surface_mean(self, class_id: int, which: int) -> tuple[float, int]:
        """Mean over the images of a class's HD95 (``which=0``) or ASD (1) where both masks have it, and how many
        images were left out because exactly one mask lacks the class (an infinite distance)."""
        vals = [d[class_id][which] for d in self.surface.values() if class_id in d]
        finite = [v for v in vals if math.isfinite(v)]
        return (float(np.mean(finite)) if finite else math.nan), sum(1 for v in vals if math.isinf(v))

    def specificity(self) -> dict[int, float]:
        """TN / (TN + FP) per class from the confusion matrix (``metrics.specificity``: NaN for a class in
        neither mask, or without negatives)."""
        if self.confusion is None:
            return {}
        spec = specificity(counts_from_matrix(self.confusion, range(len(self.class_ids))))
        return {cid: float(v) for cid, v in zip(self.class_ids, spec, strict=True)}


def dashboard_events(token: Any, dataset: Dataset, *, sample_ids: Sequence[str],
                     reference: Callable[[str], np.ndarray | None],
                     prediction: Callable[[str], np.ndarray | None], reference_name: str,
                     source: str) -> Iterator[Any]:
    """``SampleEvaluated`` per scored sample, then one :class:`DashboardResult` (runs in the worker thread)."""
    schema = dataset.schema
    ids = tuple(c.id for c in schema if not c.ignore)
    names = tuple(c.name for c in schema if not c.ignore)
    semantic = not schema.multilabel
    size = max((c.id for c in schema), default=0) + 1
    confusion = np.zeros((len(ids), len(ids)), np.int64) if semantic else None
    current: dict[str, np.ndarray | None] = {}
    spacings = {sid: dataset.pixel_spacing(sid) for sid in sample_ids}
    in_mm = bool(spacings) and all(v is not None for v in spacings.values())
    surface: dict[str, dict[int, tuple[float, float]]] = {}

    def ref(sid: str) -> np.ndarray | None:
        current["gt"] = reference(sid)
        return current["gt"]

    def pairs() -> Iterator[tuple[str, np.ndarray | Unreadable | None]]:
        for sid in sample_ids:
            try:
                pred = prediction(sid)
            except (SegstudioError, OSError, ValueError) as exc:
                current["pred"] = None
                yield sid, Unreadable(message=str(exc).splitlines()[0], path=getattr(exc, "path", None))
                continue
            current["pred"] = pred
            yield sid, pred

    for ev in iter_evaluation(dataset, pairs(), total=len(sample_ids), reference=ref, cancel=token,
                              source=source):
        if isinstance(ev, Evaluation):
            yield DashboardResult(evaluation=ev, confusion=confusion, class_ids=ids, class_names=names,
                                  reference=reference_name, source=source, surface=surface,
                                  surface_unit="mm" if in_mm else "px")
            return
        gt, pred = current.get("gt"), current.get("pred")
        if gt is not None and pred is not None:
            sid = str(ev.comparison.sample_id)
            spacing = spacings.get(sid) if in_mm else None
            p = pred.astype(gt.dtype, copy=False)
            surface[sid] = {cid: surface_figures(class_plane(gt, schema=schema, class_id=cid),
                                                 class_plane(p, schema=schema, class_id=cid),
                                                 spacing=spacing or (1.0, 1.0))
                            for cid in ev.comparison.scored_ids}
        if confusion is not None and gt is not None and pred is not None:
            full = confusion_matrix(gt, pred.astype(gt.dtype, copy=False), num_classes=max(size, 256 if gt.dtype
                                    == np.uint8 else size))
            confusion += full[np.ix_(ids, ids)]
        yield ev
