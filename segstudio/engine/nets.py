"""Networks the seeds use that smp lacks: FCN (torchvision's) and a compact SegNet.

Both take ``(N, in_channels, H, W) float32`` and return ``(N, classes, H, W)`` logits, like smp models; with an
auxiliary head they return ``(logits, aux_logits)`` in training mode only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FCN_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


class FCN(nn.Module):
    """torchvision's FCN (Long et al. 2015, ResNet backbone, dilated for resnet50/101 as in torchvision)."""

    def __init__(self, *, backbone: str = "resnet50", in_channels: int = 3, classes: int = 1, aux: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet
        from torchvision.models._utils import IntermediateLayerGetter
        from torchvision.models.segmentation.fcn import FCNHead

        if backbone not in FCN_BACKBONES:
            from segstudio.core.errors import UnknownKeyError

            raise UnknownKeyError("FCN backbone", backbone, FCN_BACKBONES)
        deep = backbone in ("resnet50", "resnet101")
        # BasicBlock (resnet18/34) cannot dilate; those keep stride 32 and rely on the final upsampling.
        net = getattr(resnet, backbone)(weights=None, replace_stride_with_dilation=[False, True, True] if deep else None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        layers = {"layer4": "out", "layer3": "aux"} if aux else {"layer4": "out"}
        self.backbone = IntermediateLayerGetter(net, return_layers=layers)
        c4, c3 = (2048, 1024) if deep else (512, 256)
        self.classifier = FCNHead(c4, classes)
        self.aux_classifier = FCNHead(c3, classes) if aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.backbone(x)
        out = F.interpolate(self.classifier(feats["out"]), size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None and self.training:
            aux = F.interpolate(self.aux_classifier(feats["aux"]), size=size, mode="bilinear", align_corners=False)
            return out, aux
        return out


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al. 2017): VGG-style encoder whose max-pooling indices drive the decoder's
    unpooling. ``depth`` stages (≤ 5) with the paper's (2, 2, 3, 3, 3) convolutions; ``width`` scales channels.
    H and W must be divisible by ``2**depth``."""

    STAGE_CONVS = (2, 2, 3, 3, 3)
    STAGE_CHANNELS = (64, 128, 256, 512, 512)

    def __init__(self, *, in_channels: int = 3, classes: int = 1, depth: int = 5, width: float = 1.0, aux: bool = False) -> None:
        super().__init__()
        if not 1 <= depth <= 5:
            raise ValueError("SegNet depth must be 1..5")
        chans = [max(8, int(c * width)) for c in self.STAGE_CHANNELS[:depth]]
        self.enc = nn.ModuleList()
        cin = in_channels
        for n, c in zip(self.STAGE_CONVS[:depth], chans, strict=True):
            layers: list[nn.Module] = []
            for i in range(n):
                layers += _conv_bn_relu(cin if i == 0 else c, c)
            self.enc.append(nn.Sequential(*layers))
            cin = c
        self.dec = nn.ModuleList()
        for s in reversed(range(depth)):
            n, c = self.STAGE_CONVS[s], chans[s]
            cout = chans[s - 1] if s > 0 else chans[0]
            layers = []
            for i in range(n):
                layers += _conv_bn_relu(c, c if i < n - 1 else cout)
            self.dec.append(nn.Sequential(*layers))
        self.head = nn.Conv2d(chans[0], classes, 3, padding=1)
        self.aux_head = nn.Conv2d(chans[-1], classes, 1) if aux else None
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        indices, shapes = [], []
        for block in self.enc:
            x = block(x)
            shapes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        bottleneck = x
        for block, idx, shape in zip(self.dec, reversed(indices), reversed(shapes), strict=True):
            x = self.unpool(x, idx, output_size=shape)
            x = block(x)
        out = self.head(x)
        if self.aux_head is not None and self.training:
            aux = F.interpolate(self.aux_head(bottleneck), size=size, mode="bilinear", align_corners=False)
            return out, aux
        return out
