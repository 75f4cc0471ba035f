"""GT-vs-prediction comparison over a whole dataset, as a generator (cancellable between samples)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.core.types import ClassSchema
from segstudio.metrics.compare import SampleComparison, compare_masks

log = logging.getLogger(__name__)

MaskLoader = Callable[[str], "np.ndarray | None"]


@dataclass(frozen=True)
class ScoredSample:
    sample_id: str
    comparison: SampleComparison | None
    error: str | None = None


def iter_comparisons(
    sample_ids: Iterable[str],
    *,
    schema: ClassSchema,
    load_reference: MaskLoader,
    load_prediction: MaskLoader,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[ScoredSample]:
    """Compare each sample's reference mask (GT or its latest correction) with its prediction.

    Samples with no prediction or no reference are skipped; a file that cannot be read yields a ``ScoredSample``
    with ``error`` (the message names the file) and the loop goes on.
    """
    for sid in sample_ids:
        if should_stop():
            return
        try:
            pred = load_prediction(sid)
            if pred is None:
                continue
            ref = load_reference(sid)
            if ref is None:
                continue
            if ref.shape != pred.shape:
                yield ScoredSample(sid, None, f"GT {ref.shape} and prediction {pred.shape} differ in size")
                continue
            yield ScoredSample(sid, compare_masks(ref, pred, schema=schema, sample_id=sid))
        except SegstudioError as exc:
            log.warning("cannot score %s: %s", sid, exc)
            yield ScoredSample(sid, None, str(exc))
