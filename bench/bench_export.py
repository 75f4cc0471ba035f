"""Export figures (DESIGN §5, issue 14): 1,000 1024² index masks, every one with a correction saved in a workspace,
exported with the real writers — as paired folders (palette index PNGs) and as one COCO RLE file. The time covers
the whole export: choosing each mask, loading the correction and the GT (for the change report), the class counts,
the writer, the checksums of every written file, the manifest and the move into place. The dataset and workspace
are generated in a temporary folder (not timed)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import Figure

PREFIX = "export"
N = int(os.environ.get("SEGSTUDIO_BENCH_EXPORT_N", "1000"))
SIZE = 1024
BUDGET_S = 20.0
CLASSES = ("background", "lung", "heart", "clavicle")


def _make(root: Path) -> tuple[object, object]:
    """A paired dataset of ``N`` images with 4-class index masks, and its workspace with one correction each."""
    from segstudio.datasets.registry import open_dataset
    from segstudio.workspace.workspace import Workspace

    data = root / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    base = ((xx + yy) // 8 % 256).astype(np.uint8)
    rng = np.random.default_rng(0)
    masks = {}
    for i in range(N):
        cv2.imwrite(str(data / "images" / f"case_{i:04d}.png"), np.roll(base, i, axis=1))
        m = np.zeros((SIZE, SIZE), np.uint8)
        cx, cy = (int(v) for v in rng.integers(250, 770, 2))
        cv2.ellipse(m, (cx - 150, cy), (110, 220), 0, 0, 360, 1, -1)
        cv2.ellipse(m, (cx + 150, cy), (110, 220), 0, 0, 360, 1, -1)
        cv2.circle(m, (cx, cy + 120), 90, 2, -1)
        cv2.line(m, (cx - 300, cy - 260), (cx + 300, cy - 260), 3, 12)
        cv2.imwrite(str(data / "masks" / f"case_{i:04d}.png"), m)
        fixed = m.copy()
        cv2.circle(fixed, (cx - 150, cy - 200), 40, 1, -1)  # a stroke added
        fixed[cy + 200 : cy + 230, :] = np.where(fixed[cy + 200 : cy + 230, :] == 2, 0, fixed[cy + 200 : cy + 230, :])
        masks[f"images/case_{i:04d}.png"] = fixed
    ds = open_dataset(data)
    ws = Workspace.for_dataset(ds.root)
    for sid, fixed in masks.items():
        ws.save_mask(sid, fixed, author="bench")
    return ds, ws


def _export_seconds(ds: object, ws: object, *, to: str, out: Path) -> float:
    from segstudio.workspace.export import ExportFinished, ExportRequest, run_export

    t0 = time.perf_counter()
    last = None
    for ev in run_export(ExportRequest(dataset=ds, workspace=ws, to=to, out=out)):  # type: ignore[arg-type]
        last = ev
    s = time.perf_counter() - t0
    assert isinstance(last, ExportFinished) and last.counts["correction"] == N, last
    return s


def _run(to: str, name: str) -> list[Figure]:
    with tempfile.TemporaryDirectory() as d:
        ds, ws = _make(Path(d))
        try:
            s = _export_seconds(ds, ws, to=to, out=Path(d) / "out")
        finally:
            ws.close()  # type: ignore[attr-defined]
    suffix = "" if N == 1000 else f"_n{N}"
    return [Figure(f"export.{name}{suffix}_s", round(s, 3), "s", BUDGET_S if N == 1000 else None, "lower")]


def bench_paired_1000_1024() -> list[Figure]:
    return _run("paired-folders", "paired_1000_1024")


def bench_coco_rle_1000_1024() -> list[Figure]:
    return _run("coco", "coco_rle_1000_1024")
