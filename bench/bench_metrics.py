"""Metrics and workspace speed on 2048² masks.

Budgets follow DESIGN §5's "next 2048² image with overlays < 100 ms": the semantic comparison and the error map
run when an image is shown, so together they must leave room for decoding and painting (60 + 40 ms). Multi-label
summaries and suspicion scores are computed once per sample and cached in the workspace, so they get more. A
save runs on image switch and every 10 s, in a worker; a journal append runs after every stroke.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import Figure, median, percentile, time_call

PREFIX = "metrics"


def _semantic_pair(n: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Three-class lung-like masks: two large blobs, the prediction shifted and eroded a little."""
    yy, xx = np.mgrid[:n, :n]
    gt = np.zeros((n, n), np.uint8)
    gt[((yy - n * 0.5) / (n * 0.35)) ** 2 + ((xx - n * 0.3) / (n * 0.15)) ** 2 < 1] = 1
    gt[((yy - n * 0.5) / (n * 0.35)) ** 2 + ((xx - n * 0.7) / (n * 0.15)) ** 2 < 1] = 2
    pred = np.roll(gt, (9, -7), axis=(0, 1))
    pred[n // 2 : n // 2 + 40, :] = 0
    return gt, pred


def _multilabel_pair(n: int = 2048, classes: int = 29) -> tuple[np.ndarray, np.ndarray]:
    """29 overlapping 'bones' (ellipses) as a uint64 bitmask, the prediction shifted by a few pixels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    gt = np.zeros((n, n), np.uint64)
    for c in range(classes):
        cy, cx = rng.uniform(0.15, 0.85, 2) * n
        ry, rx = rng.uniform(0.03, 0.12, 2) * n
        gt[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] |= np.uint64(1 << c)
    return gt, np.roll(gt, (4, 3), axis=(0, 1))


def bench_scores() -> list[Figure]:
    from segstudio.core.types import ClassSchema
    from segstudio.metrics import compare_masks, error_map, hd95

    sem = ClassSchema.from_names(["background", "left lung", "right lung"])
    gt, pred = _semantic_pair()
    ml = ClassSchema.from_names([f"bone{i}" for i in range(29)], multilabel=True)
    gm, pm = _multilabel_pair()
    lesion_a = np.zeros((2048, 2048), bool)
    lesion_a[900:1000, 1200:1310] = True
    lesion_b = np.roll(lesion_a, (5, 8), axis=(0, 1))
    return [
        Figure("metrics.compare_2048_semantic_ms", median(time_call(lambda: compare_masks(gt, pred, schema=sem), repeat=7)), "ms", 60, "lower"),
        Figure("metrics.error_map_2048_semantic_ms", median(time_call(lambda: error_map(gt, pred, schema=sem), repeat=7)), "ms", 40, "lower"),
        Figure("metrics.compare_2048_multilabel29_ms", median(time_call(lambda: compare_masks(gm, pm, schema=ml), repeat=5)), "ms", 150, "lower"),
        Figure("metrics.error_map_2048_multilabel29_ms", median(time_call(lambda: error_map(gm, pm, schema=ml), repeat=5)), "ms", 100, "lower"),
        Figure("metrics.hd95_lesion_in_2048_ms", median(time_call(lambda: hd95(lesion_a, lesion_b), repeat=7)), "ms", 20, "lower"),
        Figure(
            "metrics.compare_2048_semantic_with_hd95_ms",
            median(time_call(lambda: compare_masks(gt, pred, schema=sem, with_hd95=True), repeat=3)),
            "ms",
            400,
            "lower",
        ),
    ]


def bench_quality() -> list[Figure]:
    from segstudio.core.types import ClassSchema
    from segstudio.metrics import assess_mask

    sem = ClassSchema.from_names(["background", "left lung", "right lung"])
    gt, pred = _semantic_pair()
    ml = ClassSchema.from_names([f"bone{i}" for i in range(29)], multilabel=True)
    gm, _ = _multilabel_pair()
    return [
        Figure("metrics.quality_2048_semantic_ms", median(time_call(lambda: assess_mask(gt, schema=sem, prediction=pred), repeat=5)), "ms", 100, "lower"),
        Figure("metrics.quality_2048_multilabel29_ms", median(time_call(lambda: assess_mask(gm, schema=ml), repeat=3)), "ms", 200, "lower"),
    ]


def bench_workspace() -> list[Figure]:
    from segstudio.workspace import MetricsEntry, Workspace

    gt, _ = _semantic_pair()
    gm, _ = _multilabel_pair()
    out: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp, Workspace(Path(tmp) / "ws") as ws:
        out.append(Figure("metrics.workspace_save_version_2048_uint8_ms", median(time_call(lambda: ws.save_mask("a.png", gt), repeat=7)), "ms", 100, "lower"))
        out.append(Figure("metrics.workspace_save_version_2048_uint64_ms", median(time_call(lambda: ws.save_mask("h.png", gm), repeat=3)), "ms", 400, "lower"))
        v = ws.versions.latest("a.png")
        assert v is not None
        out.append(Figure("metrics.workspace_load_version_2048_uint8_ms", median(time_call(lambda: ws.versions.load(v), repeat=7)), "ms", 50, "lower"))
        out.append(Figure("metrics.workspace_set_review_ms", median(time_call(lambda: ws.reviews.set("a.png", "accepted"), repeat=50)), "ms", 10, "lower"))

        w = ws.journal.open("a.png", base_version=0, shape=gt.shape, dtype=gt.dtype)
        patch = gt[1000:1064, 500:564].copy()
        k = {"i": 0}

        def append() -> None:
            k["i"] += 1
            w.append_patch(top=(k["i"] * 7) % 1900, left=500, values=patch)

        times = time_call(append, repeat=200)
        w.close()
        out.append(Figure("metrics.journal_append_64px_stroke.median_ms", median(times), "ms", 10, "lower"))
        out.append(Figure("metrics.journal_append_64px_stroke.p99_ms", percentile(times, 99), "ms", 30, "lower"))
        out.append(Figure("metrics.journal_recover_200_strokes_2048_ms", median(time_call(lambda: ws.recover("a.png", gt=gt), repeat=3)), "ms", 300, "lower"))

        entries = [MetricsEntry(sample_id=f"img{i:05d}.png", key="pred:m", data={"i": i}, mean_dice=i / 1e4) for i in range(10000)]
        out.append(Figure("metrics.workspace_put_metrics_10k_ms", median(time_call(lambda: ws.metrics.put_many(entries), repeat=3)), "ms", 1000, "lower"))
        out.append(Figure("metrics.workspace_dice_column_10k_ms", median(time_call(lambda: ws.metrics.column(key="pred:m"), repeat=5)), "ms", 50, "lower"))
    return out
