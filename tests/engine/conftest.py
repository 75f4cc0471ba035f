"""Tiny in-memory datasets for engine tests (no files, no decoding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample


@pytest.fixture(autouse=True)
def _one_thread():
    # the test machine's two cores are shared; one intra-op thread keeps runs predictable
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_dataset(
    *,
    n: int = 6,
    size: int = 32,
    names: tuple[str, ...] = ("background", "left", "right"),
    multilabel: bool = False,
    rgb: bool = False,
    splits: tuple[str | None, ...] | None = None,
    seed: int = 0,
) -> Dataset:
    """``n`` synthetic images: a bright disc on the left (class 1) and a bright square on the right (class 2);
    multi-label adds an overlapping bar (bit 2) over both. Learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images, gts = {}, {}
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cx = size // 4 + rng.integers(-2, 3)
        cy = size // 2 + rng.integers(-4, 5)
        r = size // 6 + rng.integers(0, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        sq = (abs(yy - (size // 2 + rng.integers(-4, 5))) <= r) & (abs(xx - 3 * size // 4) <= r)
        img = (rng.normal(40, 8, (size, size))).clip(0, 255)
        img[disc] += 150
        img[sq] += 100
        img = img.clip(0, 255).astype(np.uint8)
        if rgb:
            img = np.stack([img, img // 2, 255 - img], axis=2)
        if multilabel:
            bar = abs(yy - size // 2) <= 2
            gt = (disc.astype(np.uint64) << np.uint64(0)) | (sq.astype(np.uint64) << np.uint64(1)) | (bar.astype(np.uint64) << np.uint64(2))
        else:
            gt = np.zeros((size, size), np.uint8)
            gt[disc] = 1
            if len(names) > 2:
                gt[sq] = 2
        images[f"img{i}.png"] = img
        gts[f"img{i}.png"] = gt
    schema = ClassSchema.from_names(names, multilabel=multilabel)
    split_list = splits or tuple(None for _ in range(n))
    samples = [Sample(id=k, image=Path("/mem") / k, split=split_list[i], gt=k) for i, k in enumerate(images)]
    return Dataset(
        root=Path("/mem"),
        format_name="test",
        schema=schema,
        samples=samples,
        read_image=lambda ds, s: images[s.id],
        read_gt=lambda ds, s: gts[s.id],
    )


@pytest.fixture
def tiny_dataset() -> Dataset:
    return make_dataset()


def tiny_config(*overrides: str):
    """A seconds-fast config: U-Net on a 3-stage resnet18, 32², batch 2, one epoch, no augmentation."""
    from segstudio.engine.config import TrainConfig

    base = [
        "model.encoder=resnet18",
        "model.encoder_depth=3",
        "image_size=32",
        "batch_size=2",
        "epochs=1",
        "augment.preset=none",
        "normalize=unit",
        "val_fraction=0.34",
    ]
    return TrainConfig().with_overrides([*base, *overrides])
