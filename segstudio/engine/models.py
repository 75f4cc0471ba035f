"""Model registry (DESIGN rule 7): every smp architecture, any smp or ``tu-`` timm encoder, plus FCN and SegNet.

``build_model(model_cfg, out_channels=...)`` returns a ``SegmentationModel``: input ``(N, in_channels, H, W)
float32``, output ``(N, out_channels, H, W)`` logits; in training mode with ``aux_head`` it returns
``(logits, aux)`` where aux is ``(N, C)`` class-presence logits (smp) or ``(N, C, H, W)`` logits (FCN, SegNet).
With ``model.members`` > 1 it returns an ``EnsembleModel`` of that many such networks (see there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.config import ENCODER_NAME, MAX_CLASSES, ConfigError, ModelConfig
from segstudio.engine.nets import FCN, FCN_BACKBONES, SegNet
from segstudio.engine.weights import (
    HF_HOST,
    TORCH_HOST,
    WeightsUnavailableError,
    hub_mode,
    is_local_weights,
    load_into,
    load_state_dict_file,
    offline_message,
)

log = logging.getLogger(__name__)

#: registry key -> smp architecture name
SMP_ARCHITECTURES = {
    "unet": "unet",
    "unetplusplus": "unetplusplus",
    "fpn": "fpn",
    "pspnet": "pspnet",
    "deeplabv3": "deeplabv3",
    "deeplabv3plus": "deeplabv3plus",
    "linknet": "linknet",
    "manet": "manet",
    "pan": "pan",
    "upernet": "upernet",
    "segformer": "segformer",
    "dpt": "dpt",
}
ALIASES = {"unet++": "unetplusplus", "deeplabv3+": "deeplabv3plus", "psp": "pspnet"}
#: architectures whose decoder_channels is a per-stage sequence that must match the encoder depth
_STAGED_DECODERS = {"unet": 5, "unetplusplus": 5, "manet": 5}
_DEFAULT_DECODER = (256, 128, 64, 32, 16)


class SegmentationModel(nn.Module):
    """Uniform wrapper: logits always; ``(logits, aux)`` only while training with an aux head."""

    def __init__(self, net: nn.Module, *, has_aux: bool, architecture: str) -> None:
        super().__init__()
        self.net = net
        self.has_aux = has_aux
        self.architecture = architecture

    def forward(self, x: torch.Tensor) -> Any:
        out = self.net(x)
        if isinstance(out, tuple):
            return out if (self.training and self.has_aux) else out[0]
        return out


class EnsembleModel(nn.Module):
    """``model.members`` networks of one architecture trained as one model. Each is built from its own random
    weights and learns from the same batches with its own loss (the members share nothing), so an ensemble is as
    diverse as its initial weights make it; the batches being shared, it trains in one run and saves as one
    checkpoint. With pretrained encoder weights every member starts from the same encoder and differs in its
    decoder's initial weights only; learnable loss weights (``loss.learnable_weights``) are shared by the members.

    While training, ``forward`` stacks the members' logits along the batch, member-major: ``(M·N, C, H, W)`` (an
    auxiliary head's output alike), and the trainer takes each member's loss on its share. In evaluation it returns
    the logits whose activation is the mean of the members' probabilities: ``log Σ σ(z) − log Σ σ(−z)`` for
    sigmoid outputs (binary, multi-label), ``log Σ softmax(z) − log M`` for softmax ones, computed in float32
    with log-sum-exp, so every consumer of logits (thresholds, the predictor's activation, validation, ONNX)
    sees the ensemble as one network."""

    def __init__(self, members: list[SegmentationModel], *, mode: str) -> None:
        super().__init__()
        if mode not in ("binary", "multiclass", "multilabel"):
            raise ConfigError(f"An ensemble needs the task's mode (binary, multiclass or multilabel), not {mode!r}.")
        self.members = nn.ModuleList(members)
        self.mode = mode
        self.has_aux = members[0].has_aux
        self.architecture = members[0].architecture

    def forward(self, x: torch.Tensor) -> Any:
        outs = [m(x) for m in self.members]
        if self.training:
            if isinstance(outs[0], tuple):
                return tuple(torch.cat(parts, 0) for parts in zip(*outs, strict=True))
            return torch.cat(outs, 0)
        return combine_logits(outs, self.mode)


def combine_logits(members: Sequence[torch.Tensor], mode: str) -> torch.Tensor:
    """The members' ``(N, C, H, W)`` logits → the ``(N, C, H, W)`` logits of their mean probability (float32)."""
    z = torch.stack([m.float() for m in members])
    if mode == "multiclass":
        return torch.logsumexp(F.log_softmax(z, dim=2), dim=0) - math.log(len(members))
    return torch.logsumexp(F.logsigmoid(z), dim=0) - torch.logsumexp(F.logsigmoid(-z), dim=0)


def _build_smp(cfg: ModelConfig, out_channels: int, arch: str, *, pretrained: bool) -> nn.Module:
    import segmentation_models_pytorch as smp

    kwargs: dict[str, Any] = dict(cfg.params)
    if cfg.encoder_depth is not None:
        kwargs["encoder_depth"] = cfg.encoder_depth
        if arch in _STAGED_DECODERS and "decoder_channels" not in kwargs:
            kwargs["decoder_channels"] = _DEFAULT_DECODER[5 - cfg.encoder_depth :] if cfg.encoder_depth <= 5 else None
        elif arch in _STAGED_DECODERS and len(kwargs["decoder_channels"]) > cfg.encoder_depth:
            # a recipe's decoder widths (one per stage) follow a shallower encoder: its last, finest stages
            kwargs["decoder_channels"] = list(kwargs["decoder_channels"])[-cfg.encoder_depth:]
        # smp's FPN and PSPNet heads upsample by a fixed factor made for their default depth (5 and 3): at another
        # depth their logits come out 2, 4 or 8 times too large or small, so the factor follows the depth
        if arch == "fpn" and "upsampling" not in kwargs and 3 <= cfg.encoder_depth <= 5:
            kwargs["upsampling"] = 2 ** (cfg.encoder_depth - 3)
        if arch == "pspnet" and "upsampling" not in kwargs and 1 <= cfg.encoder_depth <= 5:
            kwargs["upsampling"] = 2**cfg.encoder_depth
    if arch == "dpt" and cfg.encoder.startswith("tu-"):
        # ViT position embeddings are fixed to the pretraining size unless timm resamples them per input
        kwargs.setdefault("dynamic_img_size", True)
    if cfg.aux_head:
        kwargs["aux_params"] = {"classes": out_channels, "dropout": 0.2}
    weights: Any = None
    if pretrained:
        weights = True if cfg.encoder.startswith("tu-") else cfg.encoder_weights
    try:
        return smp.create_model(
            arch, encoder_name=cfg.encoder, encoder_weights=weights, in_channels=cfg.in_channels, classes=out_channels, **kwargs
        )
    except KeyError as e:
        msg = str(e.args[0]) if e.args else str(e)
        if "encoder name" in msg:
            raise UnknownKeyError("encoder", cfg.encoder, smp.encoders.get_encoder_names()) from None
        raise ConfigError(f"Cannot build {arch} with encoder {cfg.encoder!r}: {msg}") from None
    except (OSError, MemoryError):
        raise
    except Exception as e:  # any other failure of smp/timm on these parameters is a config problem
        if "huggingface" in type(e).__module__ or "hub" in str(e).lower():
            raise
        raise ConfigError(f"Cannot build {arch} with encoder {cfg.encoder!r}: {e}",
                          fix="Check model.params and model.encoder_depth for this architecture.") from None


def _build_fcn(cfg: ModelConfig, out_channels: int, *, pretrained: bool) -> nn.Module:
    net = FCN(backbone=cfg.encoder, in_channels=cfg.in_channels, classes=out_channels, aux=cfg.aux_head)
    if pretrained:
        import torch.hub
        from torchvision.models import get_model_weights

        w = get_model_weights(cfg.encoder).DEFAULT  # type: ignore[attr-defined]
        from pathlib import Path

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
        with hub_mode(host=TORCH_HOST) as online:
            if not cached.exists() and not online:
                raise offline_message(str(cfg.encoder_weights), cfg.encoder)
        sd = w.get_state_dict(progress=False)
        if cfg.in_channels != 3:
            # keep the pretrained filters by summing over RGB (what smp does for grayscale input)
            sd["conv1.weight"] = sd["conv1.weight"].sum(dim=1, keepdim=True).repeat(1, cfg.in_channels, 1, 1) / cfg.in_channels
        load_into(net.backbone, sd, path=w.url)
    return net


def _build_segnet(cfg: ModelConfig, out_channels: int, *, pretrained: bool) -> nn.Module:
    if pretrained:
        raise ConfigError("SegNet has no hub weights.", fix="Set model.encoder_weights=null or to a local weights file.")
    p = dict(cfg.params)
    try:
        depth = cfg.encoder_depth or int(p.pop("depth", 5))
        width = float(p.pop("width", 1.0))
    except (TypeError, ValueError):
        raise ConfigError("SegNet's model.params depth and width must be numbers.") from None
    if not (1 <= depth <= 5 and 0.0 < width <= 4.0):
        raise ConfigError(f"SegNet needs depth 1..5 and width in (0, 4], not {depth} and {width}.",
                          fix="Set model.params.depth / model.params.width within those ranges.")
    return SegNet(in_channels=cfg.in_channels, classes=out_channels, depth=depth, width=width, aux=cfg.aux_head)


Builder = Callable[[ModelConfig, int, str], nn.Module]


def architecture_names() -> list[str]:
    return [*SMP_ARCHITECTURES, "fcn", "segnet"]


def canonical_architecture(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in architecture_names():
        raise UnknownKeyError("architecture", name, architecture_names())
    return key


def check_encoder(architecture: str, encoder: str) -> None:
    """Refuse an encoder name the registry does not know, before smp or timm sees it: a name is an smp
    encoder or ``tu-`` + a timm model, never a path (``tu-../../x``) or a hub address."""
    arch = canonical_architecture(architecture)
    if arch == "segnet":
        return  # SegNet has its own VGG-style encoder; the field is not used
    if arch == "fcn":
        if encoder not in FCN_BACKBONES:
            raise UnknownKeyError("FCN backbone", encoder, FCN_BACKBONES)
        return
    if not isinstance(encoder, str) or ENCODER_NAME.fullmatch(encoder) is None or ".." in encoder:
        raise ConfigError(f"model.encoder {str(encoder)[:80]!r} is not an encoder name.",
                          fix="Use an smp encoder (e.g. resnet34) or tu-<timm model> (e.g. tu-convnext_tiny).")
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):
            raise ConfigError(f"model.encoder {encoder!r}: timm has no model {encoder[3:]!r}.",
                              fix="Use tu-<name> with a name from timm.list_models(), e.g. tu-convnext_tiny.")
        return
    import segmentation_models_pytorch as smp

    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        raise UnknownKeyError("encoder", encoder, [*names, "tu-<timm model>"])


def _encoder_module(net: nn.Module) -> nn.Module:
    for attr in ("encoder", "backbone"):
        if hasattr(net, attr):
            return getattr(net, attr)
    return net


def build_model(cfg: ModelConfig, *, out_channels: int, mode: str | None = None) -> SegmentationModel | EnsembleModel:
    """Build the configured network with ``out_channels`` logit channels; with ``cfg.members`` > 1 an
    ``EnsembleModel`` of that many, which needs the task's resolved ``mode`` (``cfg.mode`` when not given).

    ``cfg.encoder_weights``: None → random init (no network); a file path → tensors loaded into the encoder
    (safetensors or weights-only torch file); a hub name ("imagenet") → downloaded, or loaded from the cache;
    offline and uncached it raises ``WeightsUnavailableError`` within about a second.
    """
    if cfg.members > 1:
        return EnsembleModel([_build_network(cfg, out_channels) for _ in range(cfg.members)], mode=mode or cfg.mode)
    return _build_network(cfg, out_channels)


def _build_network(cfg: ModelConfig, out_channels: int) -> SegmentationModel:
    """One network of ``cfg`` (``build_model``'s, or an ensemble's member)."""
    arch = canonical_architecture(cfg.architecture)
    check_encoder(arch, cfg.encoder)
    if not 1 <= out_channels <= MAX_CLASSES:
        raise ConfigError(f"A model with {out_channels} output channels cannot be built; at most {MAX_CLASSES}.",
                          fix=f"Use a class schema with at most {MAX_CLASSES} classes.")
    weights = cfg.encoder_weights
    local = weights is not None and is_local_weights(weights)
    hub = weights is not None and not local
    if arch == "fcn":
        net = _build_fcn(cfg, out_channels, pretrained=hub)
    elif arch == "segnet":
        net = _build_segnet(cfg, out_channels, pretrained=hub)
    elif hub:
        with hub_mode(host=HF_HOST):
            try:
                net = _build_smp(cfg, out_channels, arch, pretrained=True)
            except (OSError, RuntimeError) as e:
                # huggingface_hub's LocalEntryNotFoundError is an OSError; timm wraps some as RuntimeError
                if isinstance(e, OSError) or "hub" in str(e).lower() or "connect" in str(e).lower():
                    raise offline_message(str(weights), cfg.encoder) from e
                raise
    else:
        net = _build_smp(cfg, out_channels, arch, pretrained=False)
    if local:
        assert weights is not None
        load_into(_encoder_module(net), load_state_dict_file(weights), path=weights)
    return SegmentationModel(net, has_aux=cfg.aux_head, architecture=arch)


def members_loss(loss: Callable[[Any, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]], out: Any,
                 y: torch.Tensor, members: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An ensemble's training loss: the sum of each member's own ``loss`` on its share of the stacked logits
    (``EnsembleModel``'s member-major layout; an aux head's output alike) against ``y``, and the sum of their
    parts, so that each member gets the gradient it would get alone. One loss over the stacked batch would pool
    the members' Dice terms together."""
    shares = (list(zip(*(o.chunk(members, 0) for o in out), strict=True)) if isinstance(out, tuple)
              else out.chunk(members, 0))
    total: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = {}
    for share in shares:
        value, p = loss(tuple(share) if isinstance(out, tuple) else share, y)
        total = value if total is None else total + value
        for k, v in p.items():
            parts[k] = parts[k] + v if k in parts else v
    assert total is not None
    return total, parts


def members_of(model: nn.Module) -> list[nn.Module]:
    """The networks a model is made of: an ensemble's members, else the model itself."""
    return list(model.members) if isinstance(model, EnsembleModel) else [model]


__all__ = [
    "EnsembleModel",
    "SegmentationModel",
    "WeightsUnavailableError",
    "architecture_names",
    "build_model",
    "canonical_architecture",
    "check_encoder",
    "combine_logits",
    "members_loss",
    "members_of",
]
