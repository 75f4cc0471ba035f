"""Pixel operations of the torch augmentation (``torch_augment``), on ``(n, C, S, S)`` float images whose values
are kept integral in 0..255 as albumentations' uint8 arithmetic keeps them: truncated where albumentations runs a
uint8 lookup table, rounded where OpenCV saturates.

CLAHE and histogram equalisation reproduce OpenCV's (tile histograms, clip limit with the excess spread evenly,
bilinear blending of the tile lookup tables); colour images take CLAHE on the L channel of Lab, and hue and
saturation through the HSV hexcone, as albumentations does through OpenCV.
"""

from __future__ import annotations

import torch

CLAHE_TILES = 8  # cv2's default tile grid (8 x 8)
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)  # D65, as OpenCV's RGB <-> Lab


def lookup(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``table[codes]`` (index_select on a flat view: several times faster than advanced indexing on the CPU)."""
    return table.index_select(0, codes.flatten().long()).view(codes.shape)


def per_image(v: torch.Tensor) -> torch.Tensor:
    """``(n,)`` per-image factors shaped to broadcast over ``(n, C, S, S)``."""
    return v.float().view(-1, 1, 1, 1)


def gray(v: torch.Tensor) -> torch.Tensor:
    """``(n, 1, S, S)`` luma as cv2's uint8 RGB2GRAY (rounded)."""
    if v.shape[1] == 1:
        return v
    return (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]).round()


def equalize(v: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist of each ``(S, S)`` plane of ``(n, S, S)`` integral values."""
    n = v.shape[0]
    idx = v.long().flatten(1) + 256 * torch.arange(n, device=v.device)[:, None]
    hist = torch.bincount(idx.flatten(), minlength=n * 256).view(n, 256).double()
    cum = hist.cumsum(1)
    first = (hist > 0).float().argmax(1, keepdim=True)
    rest = cum[:, -1:] - hist.gather(1, first)
    lut = ((cum - cum.gather(1, first)) * (255.0 / rest.clamp_min(1))).round().clamp(0, 255)
    lut = torch.where(rest > 0, lut, torch.arange(256, device=v.device, dtype=torch.float64)[None])
    return lut.float().gather(1, v.long().flatten(1)).view_as(v)


def clahe(v: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """cv2's CLAHE (8 x 8 tiles, 256 bins) on ``(n, 1, S, S)`` integral values, ``clip`` ``(n,)`` per image:
    clipped tile histograms with the excess spread evenly, tile LUTs blended bilinearly between tile centres."""
    n, _, h, w = v.shape
    th, tw, t = h // CLAHE_TILES, w // CLAHE_TILES, CLAHE_TILES
    dev, vi = v.device, v.long().view(n, h, w)
    ty, tx = torch.arange(h, device=dev) // th, torch.arange(w, device=dev) // tw
    tile = (ty[:, None] * t + tx[None, :]).clamp_max(t * t - 1)
    idx = (torch.arange(n, device=dev)[:, None, None] * t * t + tile) * 256 + vi
    hist = torch.bincount(idx.flatten(), minlength=n * t * t * 256).view(n, t * t, 256)
    area = th * tw
    limit = (clip.to(dev).double() * area / 256).long().clamp_min(1).view(n, 1, 1)
    excess = (hist - limit).clamp_min(0).sum(2, keepdim=True)
    hist = hist.minimum(limit) + excess // 256
    residual = excess % 256
    step = (256 // residual.clamp_min(1)).clamp_min(1)
    bins = torch.arange(256, device=dev)
    hist = hist + ((bins % step == 0) & (bins // step < residual)).long()
    lut = (hist.cumsum(2).double() * (255.0 / area)).round().clamp(0, 255).float().view(n, t * t * 256)

    def axis(size: int, tsize: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = torch.arange(size, device=dev, dtype=torch.float32) / tsize - 0.5
        lo = f.floor()
        return lo.clamp_min(0).long(), (lo + 1).clamp_max(t - 1).long(), f - lo

    y1, y2, ya = axis(h, th)
    x1, x2, xa = axis(w, tw)

    def at(ry: torch.Tensor, rx: torch.Tensor) -> torch.Tensor:
        return lut.gather(1, ((ry[:, None] * t + rx[None, :]) * 256 + vi).flatten(1)).view(n, h, w)

    ya, xa = ya[:, None], xa[None, :]
    out = (at(y1, x1) * (1 - xa) + at(y1, x2) * xa) * (1 - ya) + (at(y2, x1) * (1 - xa) + at(y2, x2) * xa) * ya
    return out.round().view_as(v)


def clahe_cv2(v: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """CLAHE on the CPU through OpenCV itself, image by image (what albumentations runs; ``_clahe`` gives the
    same values, ten times slower there): gray directly, RGB on Lab's L channel."""
    import cv2

    out = v.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    for img, limit in zip(out.numpy(), clip.tolist(), strict=True):
        tool = cv2.createCLAHE(clipLimit=limit, tileGridSize=(CLAHE_TILES, CLAHE_TILES))
        if img.shape[2] == 1:
            img[..., 0] = tool.apply(img[..., 0])
        else:
            lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
            lab[..., 0] = tool.apply(lab[..., 0])
            img[...] = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return out.permute(0, 3, 1, 2).float()


def clahe_lab(v: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """CLAHE of an RGB image on the L channel of Lab (as albumentations does through cv2)."""
    m = torch.tensor(_RGB_TO_XYZ, device=v.device)
    white = torch.tensor(_WHITE, device=v.device).view(1, 3, 1, 1)
    c = v / 255
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", m, lin) / white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0) ** (1 / 3), 7.787 * xyz + 16 / 116)
    light = (116 * f[:, 1:2] - 16).clamp(0, 100)
    a, b = 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])
    light = clahe((light * 255 / 100).round(), clip) * 100 / 255
    fy = (light + 16) / 116
    f = torch.cat([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f > 6 / 29, f**3, (f - 16 / 116) / 7.787) * white
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), xyz).clamp(0, 1)
    c = torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return (c * 255).round().clamp(0, 255)


def _frac(v: torch.Tensor) -> torch.Tensor:
    return v - v.floor()  # ``v % 1.0`` without the slow float remainder kernel


def rgb_to_hsv(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue (turns), saturation and value planes of ``(n, 3, S, S)``, branch-free: the sextant is picked by masks of
    which channel is largest (gray pixels get some hue, which their zero saturation makes irrelevant)."""
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    hi = v.amax(1)
    delta = hi - v.amin(1)
    inv = 1 / delta.clamp_min(1e-6)
    is_r = (r == hi).float()
    is_g = (g == hi).float() * (1 - is_r)
    h6 = is_r * (g - b) * inv + is_g * (2 + (b - r) * inv) + (1 - is_r - is_g) * (4 + (r - g) * inv)
    return _frac(h6 / 6), delta / hi.clamp_min(1e-6), hi


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """``(n, 3, S, S)`` from hue (turns), saturation and value planes: the branch-free form of the hexcone."""
    k = 6 * _frac(torch.tensor([5 / 6, 3 / 6, 1 / 6], device=h.device).view(1, 3, 1, 1) + h.unsqueeze(1))
    return val.unsqueeze(1) * (1 - s.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1))


def color_jitter(v: torch.Tensor, factor: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """ColorJitter: brightness, contrast, saturation, hue, in a random order per image (the last two RGB only)."""
    rgb = v.shape[1] == 3
    for pos in range(4):
        for kind in range(4):
            sel = (order[:, pos] == kind).nonzero().squeeze(1)
            if len(sel) == 0 or (kind >= 2 and not rgb):
                continue
            u, f = v[sel], factor[sel, kind].float()
            if kind == 0:
                u = (u * per_image(f)).clamp(0, 255).floor()
            elif kind == 1:
                mean = gray(u).mean((1, 2, 3), keepdim=True)
                u = (u * per_image(f) + mean * (1 - per_image(f))).clamp(0, 255).floor()
            elif kind == 2:
                u = (u * per_image(f) + gray(u) * (1 - per_image(f))).round().clamp(0, 255)
            else:
                h, s, val = rgb_to_hsv(u)
                u = hsv_to_rgb(h + f.view(-1, 1, 1), s, val).round().clamp(0, 255)
            v.index_copy_(0, sel, u)
    return v


def shift_hsv(v: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """HueSaturationValue: hue in cv2 units (180 = a full turn), saturation and value in 0..255; gray images
    take the value shift only."""
    hue, sat, val = (shift[:, k].float().view(-1, 1, 1) for k in range(3))
    if v.shape[1] == 1:
        return (v + val[:, None]).clamp(0, 255).floor()
    h, s, hi = rgb_to_hsv(v)
    s = torch.where(s > 0, ((s * 255 + sat).clamp(0, 255)) / 255, s)
    hi = (hi + val).clamp(0, 255)
    return hsv_to_rgb(h + hue / 180, s, hi).round().clamp(0, 255)


def haze(v: torch.Tensor, amount: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, ry: torch.Tensor,
         rx: torch.Tensor) -> torch.Tensor:
    """``(n, C, H, W)`` float values pulled towards white by an elliptical Gaussian haze per image,
    ``floor(v + a·g·(255 − v))`` (``augment_ops.Haze``): centres and radii ``(n,)`` as fractions of the sides."""
    h, w = v.shape[-2:]
    yy = ((torch.arange(h, device=v.device, dtype=torch.float32) + 0.5) / h)[None] - cy[:, None]
    xx = ((torch.arange(w, device=v.device, dtype=torch.float32) + 0.5) / w)[None] - cx[:, None]
    yy, xx = yy / ry[:, None], xx / rx[:, None]
    g = torch.exp(-0.5 * (yy[:, :, None] ** 2 + xx[:, None, :] ** 2)) * amount[:, None, None]
    return (v + g[:, None] * (255 - v)).floor_()
