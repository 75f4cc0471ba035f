"""Loss registry (DESIGN rule 7) and weighted sums of its terms.

Every term is ``fn(logits, target, aux) -> scalar`` where ``logits`` is ``(N, C, H, W) float``, ``target`` is
``(N, H, W) int64`` class indices with ``IGNORE`` (binary, multiclass) or ``(N, C, H, W) float`` 0/1 planes
(multilabel) and ``aux`` is the model's auxiliary output or None. ``build_loss`` turns a ``LossConfig`` into a
``CompositeLoss`` module: ``total = Σ wᵢ·Lᵢ``, or with learnable weights (Kendall et al. 2018)
``Σ wᵢ·(exp(-sᵢ)·Lᵢ + sᵢ)`` whose ``sᵢ`` train with the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import ConfigError, LossConfig
from segstudio.engine.task import IGNORE, Task

LossFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
Factory = Callable[[Task, Mapping[str, Any], "torch.Tensor | None"], LossFn]

_SMP_MODE = {"binary": "binary", "multiclass": "multiclass", "multilabel": "multilabel"}


# --- helpers --------------------------------------------------------------------------------------------------


def probabilities(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """``(N, K, H, W)`` per-class probabilities: softmax (multiclass), sigmoid (multilabel), [1-p, p] (binary)."""
    if task.mode == "multiclass":
        return logits.softmax(1)
    p = logits.float().sigmoid()
    return torch.cat([1 - p, p], 1) if task.mode == "binary" else p


def one_hot_target(target: torch.Tensor, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K, H, W) float`` one-hot GT and ``(N, 1, H, W) float`` valid-pixel mask."""
    if task.mode == "multilabel":
        return target.float(), torch.ones_like(target[:, :1], dtype=torch.float)
    valid = target != IGNORE
    oh = F.one_hot(torch.where(valid, target, 0), task.num_classes).permute(0, 3, 1, 2).float()
    return oh * valid.unsqueeze(1), valid.unsqueeze(1).float()


def _bce(logits: torch.Tensor, target: torch.Tensor, task: Task, cw: torch.Tensor | None) -> torch.Tensor:
    oh, valid = one_hot_target(target, task)
    if task.mode == "binary":
        oh = oh[:, 1:]
    per_px = F.binary_cross_entropy_with_logits(logits.float(), oh, reduction="none")
    if cw is not None:
        w = cw[1:] if task.mode == "binary" else cw
        per_px = per_px * w.view(1, -1, 1, 1).to(per_px)
    return (per_px * valid).sum() / (valid.sum() * per_px.shape[1]).clamp_min(1.0)


def _ce(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    smoothing = float(params.get("label_smoothing", 0.0))

    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        if task.mode != "multiclass":
            return _bce(logits, target, task, cw)
        w = cw.to(logits.device) if cw is not None else None
        return F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE, label_smoothing=smoothing)

    return fn


def _bce_factory(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        return _bce(logits, target, task, cw)

    return fn


def _smp(cls_name: str, *, weighted: bool, ignores: bool = True) -> Factory:
    def factory(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
        import segmentation_models_pytorch as smp

        kwargs = dict(params)
        if ignores and task.mode != "multilabel":
            kwargs.setdefault("ignore_index", IGNORE)
        if weighted and cw is not None and task.mode != "binary":
            kwargs.setdefault("class_weights", [float(x) for x in cw])
        loss = getattr(smp.losses, cls_name)(mode=_SMP_MODE[task.mode], **kwargs)

        def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
            return loss(logits.float(), target)

        return fn

    return factory


def _dice_per_image(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    """Soft Dice per image and class, averaged over the (image, class) pairs whose class the image's labels hold.
    smp's Dice pools a class's pixels over the whole batch, so a small region beside a large one barely counts;
    here each image weighs the same, as a per-image Dice or IoU scores it."""
    eps = float(params.get("eps", 1.0))

    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        oh, valid = one_hot_target(target, task)
        p = probabilities(logits.float(), task)
        if task.mode == "binary":  # the lesion, not the background: one score per image, as smp's binary Dice
            p, oh = p[:, 1:], oh[:, 1:]
        p = p * valid
        inter = (p * oh).sum((2, 3))
        dice = (2 * inter + eps) / (p.sum((2, 3)) + oh.sum((2, 3)) + eps)
        present = (oh.sum((2, 3)) > 0).float()
        if cw is not None and task.mode != "binary":
            present = present * cw.to(present).view(1, -1)
        return ((1 - dice) * present).sum() / present.sum().clamp_min(1e-6)

    return fn


# --- distance-map losses (computed on CPU with scipy's exact EDT; targets carry no gradient) -------------------


def _edt(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(mask).astype(np.float32) if mask.any() else np.zeros(mask.shape, np.float32)


def signed_distance(gt: np.ndarray) -> np.ndarray:
    """Kervadec's signed distance of a ``(H, W) bool`` region: > 0 outside, ≤ 0 inside, 0 when the class is absent."""
    if not gt.any():
        return np.zeros(gt.shape, np.float32)
    neg = ~gt
    return _edt(neg) * neg - (_edt(gt) - 1) * gt


def _per_class_maps(oh: torch.Tensor, idx: tuple[int, ...], fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    arr = oh[:, list(idx)].detach().cpu().numpy() > 0.5
    out = np.stack([np.stack([fn(arr[n, k]) for k in range(arr.shape[1])]) for n in range(arr.shape[0])])
    return torch.from_numpy(out).to(oh.device)


def _boundary(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    """Boundary loss (Kervadec et al., MIDL 2019): mean of probabilities × GT signed distance, foreground classes."""
    normalize = bool(params.get("normalize", True))

    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        idx = task.metric_indices
        oh, valid = one_hot_target(target, task)
        sdf = _per_class_maps(oh, idx, signed_distance)
        if normalize:  # pixel distances grow with image size; scale so the term is size-independent
            sdf = sdf / float(max(target.shape[-2:]))
        probs = probabilities(logits.float(), task)[:, list(idx)]
        return (probs * sdf * valid).sum() / (valid.sum() * len(idx)).clamp_min(1.0)

    return fn


def _hausdorff(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    """Hausdorff-distance loss (Karimi & Salcudean, IEEE TMI 2019, HD-DT variant, α = 2)."""
    alpha = float(params.get("alpha", 2.0))

    def boundary_dist(m: np.ndarray) -> np.ndarray:
        return _edt(m) + _edt(~m) if m.any() else np.zeros(m.shape, np.float32)

    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        idx = task.metric_indices
        oh, valid = one_hot_target(target, task)
        probs = probabilities(logits.float(), task)[:, list(idx)]
        scale = float(max(target.shape[-2:]))
        dt_g = _per_class_maps(oh, idx, boundary_dist) / scale
        pred = probabilities(logits.detach().float(), task) > 0.5
        dt_p = _per_class_maps(pred.float(), idx, boundary_dist) / scale
        err = (probs - oh[:, list(idx)]) ** 2
        return (err * (dt_g**alpha + dt_p**alpha) * valid).sum() / (valid.sum() * len(idx)).clamp_min(1.0)

    return fn


def _aux(task: Task, params: Mapping[str, Any], cw: torch.Tensor | None) -> LossFn:
    """PSPNet-style auxiliary loss on the model's aux output: CE/BCE on aux logits maps, or BCE on class presence."""
    ce = _ce(task, params, cw)

    def fn(logits: torch.Tensor, target: torch.Tensor, aux: Any = None) -> torch.Tensor:
        if aux is None:
            raise ConfigError("The 'aux' loss needs an auxiliary head.", fix="Set model.aux_head=true.")
        if aux.dim() == 4:
            return ce(aux, target, None)
        oh, valid = one_hot_target(target, task)
        present = (oh * valid).amax(dim=(2, 3))
        if task.mode == "binary":
            present = present[:, 1:]
        return F.binary_cross_entropy_with_logits(aux.float(), present)

    return fn


LOSSES: dict[str, Factory] = {
    "ce": _ce,
    "bce": _bce_factory,
    "dice": _smp("DiceLoss", weighted=True),
    "dice_image": _dice_per_image,
    "jaccard": _smp("JaccardLoss", weighted=True),
    "focal": _smp("FocalLoss", weighted=True),
    "lovasz": _smp("LovaszLoss", weighted=False),
    "tversky": _smp("TverskyLoss", weighted=True),
    "boundary": _boundary,
    "hausdorff": _hausdorff,
    "aux": _aux,
}


def loss_names() -> list[str]:
    return list(LOSSES)


def make_loss_term(name: str, task: Task, *, params: Mapping[str, Any] | None = None, class_weights: torch.Tensor | None = None) -> LossFn:
    if name not in LOSSES:
        raise UnknownKeyError("loss", name, loss_names())
    return LOSSES[name](task, params or {}, class_weights)


class CompositeLoss(nn.Module):
    """Weighted sum of loss terms. ``forward(outputs, target) -> (total, {name: value})``; ``outputs`` is the
    model's logits or ``(logits, aux)``."""

    def __init__(self, cfg: LossConfig, task: Task, *, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.names = [t.name for t in cfg.terms]
        self.weights = [float(t.weight) for t in cfg.terms]
        self.fns = [make_loss_term(t.name, task, params=t.params, class_weights=class_weights) for t in cfg.terms]
        self.needs_aux = "aux" in self.names
        self.log_vars = nn.Parameter(torch.zeros(len(self.fns))) if cfg.learnable_weights else None

    def forward(self, outputs: Any, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, aux = outputs if isinstance(outputs, tuple) else (outputs, None)
        total = logits.new_zeros((), dtype=torch.float32)
        # detached tensors, not floats: a float() per term would sync the GPU every step
        parts: dict[str, torch.Tensor] = {}
        for i, (name, w, fn) in enumerate(zip(self.names, self.weights, self.fns, strict=True)):
            if name == "aux" and aux is None:
                continue  # evaluation mode: the aux head only exists while training
            value = fn(logits, target, aux)
            parts[name] = value.detach()
            if self.log_vars is not None:
                s = self.log_vars[i]
                value = torch.exp(-s) * value + s
            total = total + w * value
        return total, parts


def build_loss(cfg: LossConfig, task: Task, *, class_weights: torch.Tensor | None = None) -> CompositeLoss:
    return CompositeLoss(cfg, task, class_weights=class_weights)
