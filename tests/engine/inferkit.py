"""Helpers for the inference / evaluation / export tests: tiny checkpoints and hand-made predictors."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from segstudio.core.types import ClassSchema
from segstudio.engine.checkpoint import Checkpoint
from segstudio.engine.config import TrainConfig
from segstudio.engine.preprocess import Preprocessing
from segstudio.engine.task import resolve_task
from segstudio.engine.train import train

from .conftest import make_dataset, tiny_config


class Pointwise(nn.Module):
    """A 1x1 convolution: each output pixel depends on its own input pixel only, so any correct tiling of the
    image must give exactly the whole-image answer."""

    def __init__(self, in_channels: int, out_channels: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 2)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pointwise_checkpoint(
    names: tuple[str, ...] = ("background", "left", "right"),
    *,
    multilabel: bool = False,
    normalize: str = "zscore",
    size: int = 32,
    overrides: tuple[str, ...] = (),
    seed: int = 0,
    crop: str = "none",
) -> Checkpoint:
    schema = ClassSchema.from_names(names, multilabel=multilabel)
    task = resolve_task(schema)
    cfg = TrainConfig().with_overrides([f"image_size={size}", f"normalize={normalize}", "model.in_channels=1", *overrides])
    model = Pointwise(1, task.out_channels, seed=seed).eval()
    info = {"thresholds": list(cfg.model.thresholds or [0.5] * task.out_channels)}
    return Checkpoint(path=Path("/mem/pointwise"), model=model, config=cfg, task=task, schema=schema,  # type: ignore[arg-type]
                      preprocessing=Preprocessing(size, 1, normalize, crop), info=info)


def train_tiny(run_dir: Path, *, size: int = 64, epochs: int = 6, seed: int = 0, **dataset_kw) -> Path:
    """A U-Net (3-stage resnet18) trained for a few seconds on synthetic discs and squares; its best checkpoint."""
    ds = make_dataset(n=8, size=size, seed=seed, **dataset_kw)
    cfg = tiny_config(f"image_size={size}", "lr=0.003", f"epochs={epochs}", "val_fraction=0.25", f"seed={seed}")
    fin = list(train(cfg, ds, run_dir=run_dir))[-1]
    assert fin.best_checkpoint is not None
    return fin.best_checkpoint
