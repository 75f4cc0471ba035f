"""Input normalisation (``engine.preprocess.normalize_batch``) on a real dermoscopy image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.datasets.registry import open_dataset
from segstudio.engine.config import TrainConfig
from segstudio.engine.preprocess import Preprocessing, normalize_batch, prepare_image


@pytest.fixture(scope="module")
def lesion_image(ph2) -> np.ndarray:
    ds = open_dataset(ph2)
    return ds.load_image(ds.samples[0])


def _batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(prepare_image(image, Preprocessing(96, 3, "zscore_channels")))[None]


def _cast(image: np.ndarray, gain: tuple[float, float, float], offset: tuple[float, float, float]) -> np.ndarray:
    """The same skin under another light: each channel scaled and shifted (kept inside 0..255)."""
    out = image.astype(np.float32) * np.asarray(gain, np.float32) + np.asarray(offset, np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_zscore_channels_takes_a_colour_cast_away(lesion_image):
    x = _batch(lesion_image)
    warm = _batch(_cast(lesion_image, (0.8, 0.65, 0.5), (40, 20, 10)))  # a yellow, dimmer picture
    a, b = normalize_batch(x, "zscore_channels"), normalize_batch(warm, "zscore_channels")
    # every channel of every image: mean 0, std 1
    for t in (a, b):
        assert torch.allclose(t.mean(dim=(2, 3)), torch.zeros(1, 3), atol=1e-4)
        assert torch.allclose(t.std(dim=(2, 3)), torch.ones(1, 3), atol=1e-3)
    # the cast is gone up to rounding to uint8; the per-image z-score keeps it (one mean and std for all channels)
    assert (a - b).abs().mean() < 0.05
    za, zb = normalize_batch(x, "zscore"), normalize_batch(warm, "zscore")
    assert (za - zb).abs().mean() > 0.2


def test_zscore_channels_of_a_flat_channel_is_finite(lesion_image):
    flat = lesion_image.copy()
    flat[..., 2] = 128
    y = normalize_batch(_batch(flat), "zscore_channels")
    assert torch.isfinite(y).all() and y[0, 2].abs().max() == 0


def test_an_unknown_normalisation_is_refused_with_the_choices():
    with pytest.raises(UnknownKeyError, match="zscore_channels"):
        TrainConfig().with_overrides(["data.normalize=zscore_channel"])
