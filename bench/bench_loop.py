"""The loop's bookkeeping: the promotion gate and the model registry at the sizes of a long-lived workspace.

The gate runs once per retraining round on the GUI's worker thread, after both evaluations; it must never be
what a person waits for next to them (evaluating one 2048² image takes longer than the whole gate should).
The registry is read on every model change and when the Training panel opens; a workspace that has lived
through a thousand rounds must not make that slow (reads are cached while models.json is unchanged). Recording a
promotion rewrites models.json atomically (each entry carries the gate's per-class figures: ~3 kB with 29
classes); it happens once per round — minutes of training — or on a click, so it is budgeted at half a second
with a thousand entries behind it.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from bench.common import Figure, median, time_call

PREFIX = "loop"


def _comparisons(n: int, classes: int, shift: float, seed: int) -> list:
    from segstudio.metrics.compare import ClassScore, SampleComparison

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        per = []
        for c in range(1, classes + 1):
            size = int(rng.integers(2_000, 200_000))
            d = float(np.clip(rng.normal(0.8 + shift, 0.05), 0.0, 1.0))
            tp = round(size * d)
            per.append(ClassScore(c, f"bone {c}", size, size, tp, size - tp, size - tp, d, math.nan, math.nan,
                                  math.nan))
        out.append(SampleComparison(per_class=tuple(per), scored_ids=tuple(range(1, classes + 1)),
                                    mean_dice=float(np.mean([p.dice for p in per])), mean_iou=math.nan,
                                    pixel_accuracy=math.nan, valid_pixels=2048 * 2048, sample_id=f"s{i}"))
    return out


def bench_gate() -> list[Figure]:
    from segstudio.metrics.gate import promotion_gate

    figures = []
    for n, classes in ((200, 3), (1000, 29)):
        before, after = _comparisons(n, classes, 0.0, 1), _comparisons(n, classes, 0.01, 2)
        ms = median(time_call(lambda b=before, a=after: promotion_gate(b, a), repeat=5))
        figures.append(Figure(f"loop.gate_{n}_images_{classes}_classes_ms", round(ms, 1), "ms", budget=1000.0,
                              better="lower"))
    return figures


def bench_registry() -> list[Figure]:
    from segstudio.workspace import Workspace

    with tempfile.TemporaryDirectory() as d:
        with Workspace(Path(d) / "ws") as ws:
            ckpts = []
            for i in range(2):
                p = ws.folder / "runs" / f"r{i}" / "checkpoints" / "best"
                p.mkdir(parents=True)
                (p / "config.json").write_text("{}")
                ckpts.append(p)
            figures_doc = {"gate": {"verdict": "promote", "ci_low": 0.01, "ci_high": 0.02, "mean_delta": 0.015,
                                    "per_class": [{"class_id": c, "name": f"bone {c}", "before": 0.8, "after": 0.81,
                                                   "delta": 0.01, "regressed": False} for c in range(29)]}}
            append_ms = time_call(lambda: ws.models.promote(ckpts[len(ws.models.history()) % 2], run_id="r",
                                                            reason="bench", figures=figures_doc), repeat=1000,
                                  warmup=0)
            read_ms = time_call(ws.models.history, repeat=20)
            cur_ms = time_call(ws.models.current, repeat=20)
    return [
        Figure("loop.registry_promote_at_100_events_ms", round(median(append_ms[90:110]), 2), "ms", budget=100.0,
               better="lower"),
        Figure("loop.registry_promote_at_1000_events_ms", round(median(append_ms[-50:]), 2), "ms", budget=500.0,
               better="lower"),
        Figure("loop.registry_history_1000_events_ms", round(median(read_ms), 2), "ms", budget=200.0, better="lower"),
        Figure("loop.registry_current_1000_events_ms", round(median(cur_ms), 2), "ms", budget=100.0, better="lower"),
    ]
