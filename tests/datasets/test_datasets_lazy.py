"""Opening any dataset lists files only: no image or mask is decoded, not even a header is read."""

from __future__ import annotations

from pathlib import Path

import pytest

import segstudio.datasets.io as io
from segstudio.datasets.registry import open_dataset


@pytest.fixture()
def no_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("an image file was opened while listing the dataset")

    monkeypatch.setattr(io, "_read_raster", boom)
    monkeypatch.setattr(io.Image, "open", boom)


def test_real_datasets_open_without_touching_pixels(
    no_pixels: None, montgomery: Path, ph2: Path, camvid: Path, facade_coco: Path, sample_dataset_path: Path
) -> None:
    cases = [
        (montgomery, None, 40),
        (montgomery, "paired-folders", 40),
        (ph2, None, 30),
        (camvid, None, 50),
        (facade_coco, None, 50),
        (sample_dataset_path, None, 8),
    ]
    for path, fmt, n in cases:
        ds = open_dataset(path, format=fmt)
        assert len(ds) == n and all(s.has_gt for s in ds)
    assert len(open_dataset(ph2, colours=True)) == 30
    assert len(open_dataset(facade_coco, overlap="multilabel")) == 50
