"""Augmentation presets (albumentations) and batch-level CutMix / copy-paste.

Per-sample augmentation runs on ``(S, S[, 3]) uint8`` images already resized to the training size, with the
target as ``(S, S) int16`` class indices (IGNORE for unlabelled pixels) or ``(S, S, C) uint8`` multi-label planes;
masks follow every spatial transform with nearest-neighbour interpolation, and pixels a transform brings in from
outside the image are IGNORE (semantic) rather than a made-up class.

Horizontal mirroring is applied here rather than by albumentations, because anatomy with sides (left/right lung)
must swap its labels when mirrored: ``hflip_swap`` pairs make the flip swap them; ``hflip=False`` disables it.

Presets are declared once, as ``Op`` / ``OneOf`` steps: ``albumentations_pipeline`` builds them for the per-sample
loader path here, ``torch_augment.TorchAugmenter`` for the device-resident batch path (same ops, parameters and
probabilities).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import AugmentConfig, ConfigError
from segstudio.engine.task import IGNORE, Task


@dataclass(frozen=True)
class Op:
    """One transform of a preset, read by both builders (albumentations here, torch in ``torch_augment``).

    ``p`` is its probability; inside a ``OneOf`` it is left ``None`` (albumentations' default p, equal for every
    member, which makes the choice uniform). Pixel-range arguments are fractions of the image side."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    p: float | None = None


@dataclass(frozen=True)
class OneOf:
    """At most one of ``ops``: with probability ``p``, one chosen uniformly."""

    ops: tuple[Op, ...]
    p: float


Step = Op | OneOf


@dataclass(frozen=True)
class Preset:
    description: str
    hflip: bool
    steps: tuple[Step, ...]


def _affine(*, scale=(0.9, 1.1), rotate=(-10, 10), translate=0.05, p=0.7) -> Op:
    return Op("affine", {"scale": scale, "rotate": rotate, "translate": translate}, p)


def _dropout(holes: tuple[int, int], size: tuple[float, float], p: float, *, fill_mask: bool = False) -> Op:
    return Op("dropout", {"holes": holes, "size": size, "fill_mask": fill_mask}, p)


def _brightness_contrast(limit: float, p: float) -> Op:
    return Op("brightness_contrast", {"brightness": limit, "contrast": limit}, p)


def _distortion(alpha: float, distort: float, p: float) -> OneOf:
    return OneOf((Op("elastic", {"alpha": alpha, "sigma": 6}), Op("grid", {"distort_limit": distort})), p)


def _haze(p: float) -> Op:
    """A soft white haze over a random region (``augment_ops.Haze``), labels kept: an opacity on a chest film."""
    return Op("haze", {"amount": (0.25, 0.7), "radius": (0.08, 0.22), "centre": (0.2, 0.8)}, p)


def _equalization(clip: float, p: float) -> OneOf:
    return OneOf((Op("clahe", {"clip_limit": clip}), Op("equalize")), p)


#: the steps of the xray preset, which chest shares
_XRAY_GEOMETRY: tuple[Step, ...] = (_affine(scale=(0.85, 1.15), rotate=(-15, 15), translate=0.08),
                                    Op("grid", {"distort_limit": 0.15}, 0.2))
_XRAY_CONTRAST: tuple[Step, ...] = (_brightness_contrast(0.25, 0.6), Op("clahe", {"clip_limit": 2.0}, 0.3))

PRESETS: dict[str, Preset] = {
    "none": Preset("no augmentation", False, ()),
    "light": Preset("mirror, small affine, brightness/contrast", True, (_affine(p=0.5), _brightness_contrast(0.15, 0.5))),
    "medical": Preset(
        "affine, elastic/grid distortion, brightness/contrast/gamma, CLAHE or equalisation", True,
        (_affine(scale=(0.85, 1.15), rotate=(-12, 12), translate=0.06), _distortion(30, 0.2, 0.25),
         _brightness_contrast(0.2, 0.5), Op("gamma", {"limit": (80, 120)}, 0.3), _equalization(2.0, 0.2)),
    ),
    "dermoscopy": Preset(
        "all flips and 90° turns, affine, colour jitter, cutout", True,
        (Op("vflip", p=0.5), Op("rot90", p=0.5), _affine(scale=(0.8, 1.2), rotate=(-30, 30), translate=0.08),
         Op("color_jitter", {"brightness": 0.2, "contrast": 0.2, "saturation": 0.15, "hue": 0.03}, 0.6),
         _dropout((1, 4), (0.05, 0.12), 0.2)),
    ),
    "street": Preset(
        "mirror, scale-heavy affine, brightness/contrast, hue, cutout", True,
        (_affine(scale=(0.75, 1.3), rotate=(-5, 5), translate=0.1), _brightness_contrast(0.25, 0.6),
         Op("hsv", {"hue": 8, "sat": 15, "val": 10}, 0.3), _dropout((1, 6), (0.04, 0.1), 0.3, fill_mask=True)),
    ),
    "xray": Preset("affine, grid distortion, brightness/contrast, CLAHE", True, _XRAY_GEOMETRY + _XRAY_CONTRAST),
    # xray's steps with a haze between its geometry and its contrast
    "chest": Preset(
        "the xray preset with soft white hazes over random regions, labels kept (opacities on a chest film)", True,
        _XRAY_GEOMETRY + (_haze(0.5),) + _XRAY_CONTRAST,
    ),
    "strong": Preset(
        "everything: flips, affine, elastic/grid, contrast, CLAHE/equalise, cutout", True,
        (Op("vflip", p=0.2), _affine(scale=(0.7, 1.3), rotate=(-25, 25), translate=0.1, p=0.8),
         _distortion(40, 0.3, 0.3), _brightness_contrast(0.3, 0.6), _equalization(3.0, 0.3),
         _dropout((1, 6), (0.05, 0.15), 0.3)),
    ),
}


def _albumentation(op: Op, fill: float) -> Any:
    """The albumentations transform of one ``Op``; ``fill`` is the mask value of pixels brought in from outside."""
    import albumentations as A

    a, kw = op.args, ({} if op.p is None else {"p": op.p})
    if op.kind == "vflip":
        return A.VerticalFlip(**kw)
    if op.kind == "rot90":
        return A.RandomRotate90(**kw)
    if op.kind == "affine":
        t = a["translate"]
        return A.Affine(scale=a["scale"], rotate=a["rotate"], translate_percent=(-t, t), fill=0, fill_mask=fill, **kw)
    if op.kind == "elastic":
        return A.ElasticTransform(alpha=a["alpha"], sigma=a["sigma"], fill=0, fill_mask=fill, **kw)
    if op.kind == "grid":
        return A.GridDistortion(distort_limit=a["distort_limit"], fill=0, fill_mask=fill, **kw)
    if op.kind == "brightness_contrast":
        return A.RandomBrightnessContrast(a["brightness"], a["contrast"], **kw)
    if op.kind == "gamma":
        return A.RandomGamma(a["limit"], **kw)
    if op.kind == "clahe":
        return A.CLAHE(clip_limit=a["clip_limit"], **kw)
    if op.kind == "equalize":
        return A.Equalize(**kw)
    if op.kind == "color_jitter":
        return A.ColorJitter(a["brightness"], a["contrast"], a["saturation"], a["hue"], **kw)
    if op.kind == "hsv":
        return A.HueSaturationValue(a["hue"], a["sat"], a["val"], **kw)
    if op.kind == "haze":
        from segstudio.engine.augment_ops import Haze

        return Haze(a["amount"], a["radius"], a["centre"], **kw)
    if op.kind == "dropout":
        more = {"fill_mask": fill} if a["fill_mask"] else {}
        return A.CoarseDropout(num_holes_range=a["holes"], hole_height_range=a["size"], hole_width_range=a["size"],
                               **more, **kw)
    raise ValueError(f"unknown augmentation op {op.kind!r}")


def albumentations_pipeline(preset: Preset, fill: float) -> list:
    """The preset's transforms for ``A.Compose``."""
    import albumentations as A

    return [A.OneOf([_albumentation(o, fill) for o in s.ops], p=s.p) if isinstance(s, OneOf)
            else _albumentation(s, fill) for s in preset.steps]


def preset_names() -> list[str]:
    return list(PRESETS)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def swap_pairs(cfg: AugmentConfig, task: Task) -> list[tuple[int, int]]:
    """Class-index pairs (channel pairs for multi-label) named by ``cfg.hflip_swap``."""
    index = {_norm(n): i for i, n in enumerate(task.class_names)}
    pairs = []
    for a, b in cfg.hflip_swap:
        if _norm(a) not in index or _norm(b) not in index:
            missing = a if _norm(a) not in index else b
            raise ConfigError(
                f"augment.hflip_swap names class {missing!r}, which the dataset does not have.",
                fix=f"Use class names from: {', '.join(task.class_names)}.",
            )
        pairs.append((index[_norm(a)], index[_norm(b)]))
    return pairs


class Augmenter:
    """Callable ``(image, target) -> (image, target)`` for one preset; picklable for DataLoader workers."""

    def __init__(self, cfg: AugmentConfig, task: Task, *, seed: int = 0) -> None:
        if cfg.preset not in PRESETS:
            raise UnknownKeyError("augmentation preset", cfg.preset, preset_names())
        self.preset = PRESETS[cfg.preset]
        self.multilabel = task.mode == "multilabel"
        # the Albumentations pipeline is built on first use: a run on the device-resident path augments in torch
        # and never calls it, and importing albumentations costs about a second of the run's start-up
        self._pipeline: Any = None
        self._seed = seed
        self.hflip = self.preset.hflip and cfg.hflip
        self.swap_lut: np.ndarray | None = None
        self.swap_channels: list[int] | None = None
        pairs = swap_pairs(cfg, task)
        if pairs:
            order = list(range(task.num_classes))
            for a, b in pairs:
                order[a], order[b] = order[b], order[a]
            if self.multilabel:
                self.swap_channels = order
            else:
                self.swap_lut = np.asarray(order, np.int16)
        self.rng = np.random.default_rng(seed)

    @property
    def pipeline(self) -> Any:
        """The preset's ``A.Compose``, seeded with the last seed given."""
        if self._pipeline is None:
            import albumentations as A

            fill = 0 if self.multilabel else IGNORE
            self._pipeline = A.Compose(albumentations_pipeline(self.preset, fill), seed=self._seed)
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._seed = seed
        if self._pipeline is not None:
            self._pipeline.set_random_seed(seed)

    def _mirror(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = np.ascontiguousarray(image[:, ::-1])
        target = np.ascontiguousarray(target[:, ::-1])
        if self.swap_lut is not None:
            valid = target >= 0
            target = np.where(valid, self.swap_lut[np.clip(target, 0, None)], target).astype(target.dtype)
        elif self.swap_channels is not None:
            target = np.ascontiguousarray(target[..., self.swap_channels])
        return image, target

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.hflip and self.rng.random() < 0.5:
            image, target = self._mirror(image, target)
        if not self.pipeline.transforms:
            return image, target
        out = self.pipeline(image=image, mask=target)
        return out["image"], out["mask"]


# --- batch level ---------------------------------------------------------------------------------------------


def cutmix(x: torch.Tensor, y: torch.Tensor, *, gen: torch.Generator, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019) for segmentation: a box of a shuffled partner replaces the same box in image and
    mask. ``x (N, C, H, W) float``, ``y (N, H, W) int64`` or ``(N, K, H, W) float``."""
    n, _, h, w = x.shape
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 0.5
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    if ch == 0 or cw == 0 or n < 2:
        return x, y
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    perm = torch.randperm(n, generator=gen).to(x.device)
    x, y = x.clone(), y.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    y[..., y0:y1, x0:x1] = y[perm][..., y0:y1, x0:x1]
    return x, y


def copy_paste(x: torch.Tensor, y: torch.Tensor, *, gen: torch.Generator, background: Sequence[int] = (0,)) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy-paste (Ghiasi et al. 2021), simple form: every foreground pixel of a shuffled partner is pasted onto
    each image with its label. Foreground = labelled and not in ``background`` (semantic) or any bit (multi-label)."""
    n = x.shape[0]
    if n < 2:
        return x, y
    perm = torch.randperm(n, generator=gen).to(x.device)
    if y.dim() == 4:
        fg = y[perm].amax(1) > 0
    else:
        src = y[perm]
        fg = src != IGNORE
        for b in background:
            fg &= src != b
    x = torch.where(fg.unsqueeze(1), x[perm], x)
    y = torch.where(fg.unsqueeze(1) if y.dim() == 4 else fg, y[perm], y)
    return x, y


def resize_pair(image: np.ndarray, target: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size``² (area for shrinking images, linear for growing; nearest for targets)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, target
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    img = cv2.resize(image, (size, size), interpolation=interp)
    tgt = cv2.resize(target, (size, size), interpolation=cv2.INTER_NEAREST)
    if target.ndim == 3 and tgt.ndim == 2:  # cv2 drops a single trailing channel
        tgt = tgt[..., None]
    return img, tgt
