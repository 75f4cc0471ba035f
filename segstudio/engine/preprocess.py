"""Image preprocessing shared by training and inference: bit depth, channels, normalisation.

The data pipeline hands ``uint8`` tensors to the device and normalises there (4× fewer bytes to move, and the
GPU does the arithmetic); ``normalize_batch`` is that last step, ``prepare_image`` the whole path for one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segstudio.core.content import content_box

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What a checkpoint needs to turn a raw image into its input: stored in the checkpoint's config.json."""

    image_size: int
    in_channels: int
    normalize: str  # "imagenet" | "unit" | "zscore" | "zscore_channels"
    #: "none" or "content" (``DataConfig.crop``); checkpoints written before it existed crop nothing
    crop: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "in_channels": self.in_channels, "normalize": self.normalize,
                "crop": self.crop}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Preprocessing:
        return Preprocessing(int(d["image_size"]), int(d["in_channels"]), str(d["normalize"]),
                             str(d.get("crop", "none")))


def crop_box(image: np.ndarray, crop: str) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the part of an 8-bit ``image`` (``to_uint8``'s) that a model trained with
    ``crop`` (``DataConfig.crop``) sees, in training (``SegmentationData``) and at inference (``Predictor``)."""
    if crop == "content":
        return content_box(image)
    h, w = image.shape[:2]
    return 0, h, 0, w


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W[, 3])`` uint8/uint16/float image → uint8. 16-bit images are scaled by their own maximum, so a
    12-bit X-ray stored in 16 bits keeps its full contrast."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        lo, hi = float(image.min()), float(image.max())
        if lo >= 0.0 and hi <= 1.0:
            return (image * 255.0 + 0.5).astype(np.uint8)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return ((image - lo) * scale + 0.5).astype(np.uint8)
    top = int(image.max()) if image.size else 0
    if top <= 255:
        return image.astype(np.uint8)
    return (image.astype(np.float32) * (255.0 / top) + 0.5).astype(np.uint8)


def to_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3|4)`` → ``(H, W)`` for 1 channel or ``(H, W, 3)`` for 3 channels."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if in_channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image


def normalize_batch(x, mode: str):
    """``(N, C, H, W) uint8`` torch tensor → float32 normalised per ``mode``."""
    import torch

    xf = x.float().div_(255.0)
    if mode == "unit":
        return xf
    if mode in ("zscore", "zscore_channels"):
        # per image; "zscore_channels" also per channel, which evens out each image's colour cast (grey world)
        dims = (1, 2, 3) if mode == "zscore" else (2, 3)
        mean = xf.mean(dim=dims, keepdim=True)
        std = xf.std(dim=dims, keepdim=True).clamp_min(1e-6)
        return (xf - mean) / std
    c = xf.shape[1]
    mean = torch.tensor(IMAGENET_MEAN if c == 3 else (float(np.mean(IMAGENET_MEAN)),), device=xf.device)
    std = torch.tensor(IMAGENET_STD if c == 3 else (float(np.mean(IMAGENET_STD)),), device=xf.device)
    return (xf - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def prepare_image(image: np.ndarray, pre: Preprocessing, *, resize: bool = True) -> np.ndarray:
    """One raw image → ``(C, S, S) uint8`` (or ``(C, H, W)`` with ``resize=False``), ready for ``normalize_batch``."""
    img = to_channels(to_uint8(image), pre.in_channels)
    if resize and img.shape[:2] != (pre.image_size, pre.image_size):
        interp = cv2.INTER_AREA if pre.image_size < min(img.shape[:2]) else cv2.INTER_LINEAR
        img = cv2.resize(img, (pre.image_size, pre.image_size), interpolation=interp)
    if img.ndim == 2:
        img = img[..., None]
    return np.ascontiguousarray(img.transpose(2, 0, 1))
