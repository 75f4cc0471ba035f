"""Augmentation ops that albumentations lacks, as albumentations transforms for the per-sample loader path.

Imported only when a preset uses one (albumentations is a slow import); ``torch_pixel`` holds the same ops on
batches for the device-resident path, with the same formula and parameter ranges.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np


def haze_profile(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """``(H, W) float32`` in 0..1: an elliptical Gaussian centred at ``(cy, cx)`` with radii ``(ry, rx)`` (all as
    fractions of the image's height and width; pixel centres at ``(i + 0.5) / side``)."""
    yy = ((np.arange(h, dtype=np.float32) + 0.5) / h - np.float32(cy)) / np.float32(ry)
    xx = ((np.arange(w, dtype=np.float32) + 0.5) / w - np.float32(cx)) / np.float32(rx)
    return np.exp(np.float32(-0.5) * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)


def apply_haze(img: np.ndarray, amount: float, profile: np.ndarray) -> np.ndarray:
    """``img`` (uint8) pulled towards white by ``amount × profile``: ``floor(v + a·g·(255 − v))``, never past 255."""
    v = img.astype(np.float32)
    g = (np.float32(amount) * profile)[..., None] if img.ndim == 3 else np.float32(amount) * profile
    return np.floor(v + g * (np.float32(255) - v)).astype(np.uint8)


class Haze(A.ImageOnlyTransform):
    """A soft white haze over a random elliptical region, labels unchanged: what an opacity (consolidation, an
    effusion, scar tissue) does to the lung on a chest film, whose outline a model must then draw from the shape
    around it rather than from the dark air inside."""

    def __init__(self, amount: tuple[float, float], radius: tuple[float, float], centre: tuple[float, float],
                 p: float = 0.5) -> None:
        super().__init__(p=p)
        self.amount, self.radius, self.centre = tuple(amount), tuple(radius), tuple(centre)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        u = self.py_random.uniform
        # the same order of draws as torch_augment: amount, centre (y, x), radii (y, x)
        return {"amount": u(*self.amount), "cy": u(*self.centre), "cx": u(*self.centre),
                "ry": u(*self.radius), "rx": u(*self.radius)}

    def apply(self, img: np.ndarray, amount: float, cy: float, cx: float, ry: float, rx: float,
              **params: Any) -> np.ndarray:
        return apply_haze(img, amount, haze_profile(img.shape[0], img.shape[1], cy, cx, ry, rx))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("amount", "radius", "centre")
