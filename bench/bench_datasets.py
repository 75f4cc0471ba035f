"""Dataset opening figures (DESIGN §5): a 10,000-image paired-folder dataset and a 10,000-image COCO file to a
listed ``Dataset``, format detection included, no image decoded. Generated in a temporary folder."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import Figure, median, time_call

PREFIX = "datasets"
N = 10_000
BUDGET_S = 1.0


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _make_paired(root: Path) -> Path:
    img = _png_bytes(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    mask = _png_bytes((np.arange(32 * 32).reshape(32, 32) % 7 == 0).astype(np.uint8) * 255)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(N):  # real PNG files; opening must not decode any of them
        (root / "images" / f"case_{i:05d}.png").write_bytes(img)
        (root / "masks" / f"case_{i:05d}.png").write_bytes(mask)
    return root


def _make_coco(root: Path) -> Path:
    img = _png_bytes(np.zeros((64, 64, 3), np.uint8))
    (root / "images").mkdir()
    images, anns = [], []
    rng = np.random.default_rng(1)
    for i in range(N):
        name = f"images/img_{i:05d}.png"
        (root / name).write_bytes(img)
        images.append({"id": 1000 + i, "file_name": name, "height": 64, "width": 64})
        for k in range(3):
            x, y = (float(v) for v in rng.uniform(0, 40, 2))
            poly = [x, y, x + 20, y, x + 20, y + 15, x, y + 15]
            anns.append({"id": 3 * i + k, "image_id": 1000 + i, "category_id": [2, 7, 11][k], "segmentation": [poly],
                         "area": 300.0, "bbox": [x, y, 20, 15], "iscrowd": 0})
    cats = [{"id": 2, "name": "a"}, {"id": 7, "name": "b"}, {"id": 11, "name": "c"}]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "annotations.json"


def _open_seconds(path: Path, expect_format: str) -> float:
    from segstudio.datasets.registry import open_dataset

    def go() -> None:
        ds = open_dataset(path)
        assert ds.format_name == expect_format and len(ds) == N, (ds.format_name, len(ds))

    return median(time_call(go, repeat=3, warmup=1)) / 1000.0


def bench_open_paired_10k() -> list[Figure]:
    with tempfile.TemporaryDirectory() as d:
        root = _make_paired(Path(d))
        s = _open_seconds(root, "paired-folders")
    return [Figure("datasets.open_paired_10k_s", round(s, 4), "s", BUDGET_S, "lower")]


def bench_open_coco_10k() -> list[Figure]:
    with tempfile.TemporaryDirectory() as d:
        f = _make_coco(Path(d))
        s = _open_seconds(f, "coco")
    return [Figure("datasets.open_coco_10k_s", round(s, 4), "s", BUDGET_S, "lower")]
