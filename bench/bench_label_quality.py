"""Label-quality scoring speed: 1,000 images of 1024² with a prediction each (issue 16's budget: under 20 s on this
machine, two cores).

The masks, images and predictions come from a pool of 50 synthetic chest-like samples (two lungs, jittered; the
prediction shifted and eroded a little), handed out by index so that producing them costs nothing next to the
scoring: what is timed is ``rank_dataset`` itself, both passes, images read for the edge check.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.common import Figure

PREFIX = "quality"
N, SIDE, POOL = 1000, 1024, 50


def _pool() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for _ in range(POOL):
        m = np.zeros((SIDE, SIDE), np.uint8)
        for cid, cx in ((1, 0.3), (2, 0.7)):
            centre = (int(SIDE * (cx + rng.uniform(-0.03, 0.03))), int(SIDE * (0.5 + rng.uniform(-0.03, 0.03))))
            axes = (int(SIDE * rng.uniform(0.12, 0.16)), int(SIDE * rng.uniform(0.28, 0.34)))
            cv2.ellipse(m, centre, axes, 0, 0, 360, cid, -1)
        img = (rng.normal(90, 12, (SIDE, SIDE)) + 80 * (m > 0)).clip(0, 255).astype(np.uint8)
        pred = np.roll(m, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
        out.append((m, img, pred))
    return out


def bench_score_1000_1024() -> list[Figure]:
    from segstudio.core.types import ClassSchema
    from segstudio.datasets.base import Dataset, Sample
    from segstudio.metrics.suspicion import rank_dataset

    pool = _pool()
    ids = [f"s{i:04d}.png" for i in range(N)]
    which = {sid: i % POOL for i, sid in enumerate(ids)}
    schema = ClassSchema.from_names(("background", "left lung", "right lung"))
    ds = Dataset(root=Path("/mem"), format_name="bench", schema=schema,
                 samples=[Sample(id=s, image=Path("/mem") / s, gt=s) for s in ids],
                 read_image=lambda _ds, s: pool[which[s.id]][1], read_gt=lambda _ds, s: pool[which[s.id]][0])
    t0 = time.perf_counter()
    ranked = rank_dataset(ds, predictions=lambda sid: pool[which[sid]][2])
    secs = time.perf_counter() - t0
    assert len(ranked) == N
    return [Figure("quality.score_1000_1024_s", round(secs, 2), "s", budget=20.0, better="lower")]
