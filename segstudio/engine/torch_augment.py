"""The augmentation presets as batched torch ops on the training device (the device-resident data path).

``TorchAugmenter`` reads the same preset steps as ``augment.Augmenter`` (``augment.PRESETS``) and keeps their
semantics, on whole batches on any device: images ``x (B, C, S, S) uint8``, targets ``(B, S, S)`` label codes
(uint8 or int16: class index + 1, 0 where unlabelled) or ``(B, K, S, S) uint8`` multi-label planes. With 0 as the
unlabelled code, pixels a transform brings in from outside are unlabelled by zero padding alone.

Geometry (the mirror with its label swap, flips, 90° turns, affine, elastic and grid distortion) is composed per
sample into one sampling grid and applied by one ``grid_sample``: bilinear for images, nearest for masks, and
pixels brought in from outside are 0 in the image and unlabelled in the mask, as albumentations' constant border.
Pixel ops (``torch_pixel``) follow in preset order on float values kept integral, rounded or truncated as
albumentations' uint8 arithmetic is. Every random draw comes from one CPU ``torch.Generator``: a seed gives the
same batches on any device.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segstudio.core.errors import UnknownKeyError
from segstudio.engine.augment import PRESETS, OneOf, Op, Step, preset_names, swap_pairs
from segstudio.engine.config import AugmentConfig
from segstudio.engine.task import Task
from segstudio.engine.torch_pixel import (
    clahe,
    clahe_cv2,
    clahe_lab,
    color_jitter,
    equalize,
    haze,
    lookup,
    per_image,
    shift_hsv,
)

GEOMETRIC = frozenset({"hflip", "vflip", "rot90", "affine", "elastic", "grid"})
GRID_STEPS = 5  # albumentations GridDistortion's default num_steps


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Batch assembly on the CPU runs on one intra-op thread: its ops are too small to repay a thread team's
    hand-over, and when the other core is busy every parallel op waits for it (milliseconds each)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class _Draw:
    """One op of one batch: which samples it applies to and its parameters (one row per sample)."""

    op: Op
    active: torch.Tensor  # (B,) bool
    params: dict[str, torch.Tensor]


class TorchAugmenter:
    """Callable ``(x, y) -> (x, y)`` applying one preset to a batch on ``x``'s device; ``y`` is changed only by
    geometry, the mirror's label swap and cutouts that fill masks."""

    def __init__(self, cfg: AugmentConfig, task: Task, *, seed: int = 0) -> None:
        if cfg.preset not in PRESETS:
            raise UnknownKeyError("augmentation preset", cfg.preset, preset_names())
        preset = PRESETS[cfg.preset]
        self.multilabel = task.mode == "multilabel"
        mirror: tuple[Step, ...] = (Op("hflip", p=0.5),) if preset.hflip and cfg.hflip else ()
        self.steps = mirror + preset.steps
        order = list(range(task.num_classes))
        for a, b in swap_pairs(cfg, task):
            order[a], order[b] = order[b], order[a]
        self.swap = order if order != sorted(order) else None
        # semantic codes: 0 unlabelled, class + 1 — a lookup table of the swapped codes
        self._swap_lut = torch.tensor([0] + [c + 1 for c in order]) if self.swap and not self.multilabel else None
        self.gen = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.steps:
            return x, y
        with one_cpu_thread(x.device):
            return self._augment(x, y)

    def _augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s = x.shape[0], x.shape[-1]
        # every draw first, in a fixed order: the stream of a seed does not depend on which samples an op hits
        plan = [d for step in self.steps for d in self._draw(step, b, s)]
        xf, y = x.float(), y.clone()
        i = 0
        while i < len(plan):
            j = i + 1
            if plan[i].op.kind in GEOMETRIC:
                while j < len(plan) and plan[j].op.kind in GEOMETRIC:
                    j += 1
                xf, y = self._warp(xf, y, plan[i:j])
            elif bool(plan[i].active.any()):
                xf = self._pixel(plan[i], xf, y)
            i = j
        return xf.clamp_(0, 255).to(torch.uint8), y

    # random draws -------------------------------------------------------------------------------------------------
    def _uniform(self, lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=self.gen, dtype=torch.float64)

    def _draw(self, step: Step, b: int, s: int) -> list[_Draw]:
        if step.p is None:  # only a OneOf's members leave it out: their OneOf draws them
            raise ValueError(f"augmentation step {step.kind!r} has no probability")
        hit = torch.rand(b, generator=self.gen) < step.p
        if isinstance(step, OneOf):
            pick = torch.randint(len(step.ops), (b,), generator=self.gen)
            return [self._params(op, hit & (pick == k), b, s) for k, op in enumerate(step.ops)]
        return [self._params(step, hit, b, s)]

    def _params(self, op: Op, active: torch.Tensor, b: int, s: int) -> _Draw:
        a, u, p = op.args, self._uniform, {}
        if op.kind == "rot90":
            p["k"] = torch.randint(4, (b,), generator=self.gen)
        elif op.kind == "affine":
            t = a["translate"]
            p = {"sx": u(*a["scale"], b), "sy": u(*a["scale"], b), "angle": u(*a["rotate"], b),
                 "tx": (u(-t, t, b) * s).trunc(), "ty": (u(-t, t, b) * s).trunc()}
        elif op.kind == "elastic":
            p["noise"] = torch.randn(int(active.sum()), 2, s, s, generator=self.gen)
        elif op.kind == "grid":
            lim = a["distort_limit"]
            p["steps"] = 1 + u(-lim, lim, b, 2, GRID_STEPS + 1)
        elif op.kind == "brightness_contrast":
            p = {"alpha": 1 + u(-a["contrast"], a["contrast"], b), "beta": u(-a["brightness"], a["brightness"], b) * 255}
        elif op.kind == "gamma":
            p["gamma"] = u(*a["limit"], b) / 100
        elif op.kind == "clahe":
            p["clip"] = u(1.0, a["clip_limit"], b)
        elif op.kind == "color_jitter":
            lims = [(1 - a["brightness"], 1 + a["brightness"]), (1 - a["contrast"], 1 + a["contrast"]),
                    (1 - a["saturation"], 1 + a["saturation"]), (-a["hue"], a["hue"])]
            p = {"factor": torch.stack([u(lo, hi, b) for lo, hi in lims], 1),
                 "order": torch.rand(b, 4, generator=self.gen).argsort(1)}
        elif op.kind == "hsv":
            p["shift"] = torch.stack([u(-a[k], a[k], b) for k in ("hue", "sat", "val")], 1)
        elif op.kind == "haze":  # the draws in augment_ops.Haze's order
            p = {"amount": u(*a["amount"], b), "cy": u(*a["centre"], b), "cx": u(*a["centre"], b),
                 "ry": u(*a["radius"], b), "rx": u(*a["radius"], b)}
        elif op.kind == "dropout":
            lo, hi = a["holes"]
            n, size = torch.randint(lo, hi + 1, (b,), generator=self.gen), a["size"]
            h, w = (u(*size, b, hi) * s).long(), (u(*size, b, hi) * s).long()
            p = {"n": n, "h": h, "w": w, "y0": (u(0, 1, b, hi) * (s - h + 1)).long(),
                 "x0": (u(0, 1, b, hi) * (s - w + 1)).long()}
        return _Draw(op, active, p)

    # geometry -----------------------------------------------------------------------------------------------------
    def _warp(self, x: torch.Tensor, y: torch.Tensor, plan: list[_Draw]) -> tuple[torch.Tensor, torch.Tensor]:
        moved = torch.stack([d.active for d in plan]).any(0)
        if not bool(moved.any()):
            return x, y
        rows, s, dev = moved.nonzero().squeeze(1), x.shape[-1], x.device
        grid = self._grid(plan, rows, s, dev)
        every, r = len(rows) == x.shape[0], rows.to(dev)
        xs = F.grid_sample(x if every else x[r], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        ym = (y if every else y[r]).float()
        ym = F.grid_sample(ym if self.multilabel else ym.unsqueeze(1), grid, mode="nearest", padding_mode="zeros",
                           align_corners=False)
        ys = (ym if self.multilabel else ym.squeeze(1)).round_().to(y.dtype)
        flipped = [d.active[rows] for d in plan if d.op.kind == "hflip"]
        if flipped and self.swap and bool(flipped[0].any()):
            f = flipped[0].nonzero().squeeze(1).to(dev)
            if self._swap_lut is None:
                ys[f] = ys[f][:, self.swap]
            else:
                ys[f] = lookup(self._swap_lut.to(dev, y.dtype), ys[f])
        if every:
            return xs.round_(), ys
        x[r], y[r] = xs.round_(), ys
        return x, y

    def _grid(self, plan: list[_Draw], rows: torch.Tensor, s: int, dev: torch.device) -> torch.Tensor:
        """``(n, S, S, 2)`` sampling grid (``grid_sample``'s units) of the samples ``rows``: the ops' inverse maps,
        applied last op first. Matrix ops accumulate; a displacement op is looked up where the later ops led.
        Source coordinates are kept as x and y planes, separable (``(n, 1, S)`` and ``(n, S, 1)``) while they are:
        the grid distortion is, only the elastic field needs whole planes."""
        n, eye = len(rows), torch.eye(3, dtype=torch.float64)
        ramp = torch.arange(s, dtype=torch.float32, device=dev)
        mat, cx, cy = eye.repeat(n, 1, 1), ramp.view(1, 1, s).repeat(n, 1, 1), ramp.view(1, s, 1).repeat(n, 1, 1)
        on_grid = True  # (cx, cy) still the pixel grid
        for d in reversed(plan):
            act = d.active[rows]
            if not bool(act.any()):
                continue
            if d.op.kind not in ("elastic", "grid"):
                inv = eye.repeat(n, 1, 1)
                inv[act] = _inverse_matrix(d, rows[act], s)
                mat, on_grid = inv @ mat, on_grid and bool((inv == eye).all())
                continue
            a = act.nonzero().squeeze(1).to(dev)
            if d.op.kind == "grid" and on_grid:
                steps = d.params["steps"][rows[act]]
                cx[a], cy[a] = _grid_map(steps[:, 0], s).to(dev)[:, None, :], _grid_map(steps[:, 1], s).to(dev)[:, :, None]
                on_grid = False
                continue
            cx, cy = _apply(mat, cx, cy)
            mat, cx, cy = eye.repeat(n, 1, 1), cx.expand(n, s, s).clone(), cy.expand(n, s, s).clone()
            disp = self._displacement(d, rows[act], s, dev)
            if not on_grid:
                at = torch.stack([cx[a], cy[a]], -1)
                disp = F.grid_sample(disp, (at * 2 + 1) / s - 1, mode="bilinear", padding_mode="border",
                                     align_corners=False)
            cx[a] += disp[:, 0]
            cy[a] += disp[:, 1]
            on_grid = False
        # pixel centres to grid_sample's [-1, 1] (align_corners=False): u = (2x + 1) / S - 1
        to_unit = torch.tensor([[2 / s, 0, 1 / s - 1], [0, 2 / s, 1 / s - 1], [0, 0, 1]], dtype=torch.float64)
        return _sampling_grid(to_unit @ mat, cx, cy, s)

    def _displacement(self, d: _Draw, rows: torch.Tensor, s: int, dev: torch.device) -> torch.Tensor:
        """``(m, 2, S, S)`` source minus output coordinates (x, y) of the distortion ``d`` for its samples ``rows``."""
        if d.op.kind == "elastic":
            noise = d.params["noise"].to(dev)  # drawn for exactly the op's samples, in batch order
            peak = noise.abs().amax((1, 2, 3), keepdim=True)
            noise = torch.where(peak > 1e-6, noise / peak.clamp_min(1e-6), noise)
            return _gaussian_blur(noise, float(d.op.args["sigma"])) * float(d.op.args["alpha"])
        steps = d.params["steps"][rows]
        ramp = torch.arange(s, dtype=torch.float32, device=dev)
        xs, ys = _grid_map(steps[:, 0], s).to(dev) - ramp, _grid_map(steps[:, 1], s).to(dev) - ramp
        return torch.stack([xs[:, None, :].expand(-1, s, s), ys[:, :, None].expand(-1, s, s)], 1)

    # pixel ops ----------------------------------------------------------------------------------------------------
    def _pixel(self, d: _Draw, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` after the pixel op ``d`` (``y`` changes in place: cutouts that fill masks)."""
        rows = d.active.nonzero().squeeze(1)
        every = len(rows) == len(x)
        # float32 on the device (MPS has no float64); the gamma table is built in float64 on the host
        r, p = rows.to(x.device), {k: (v.float() if v.is_floating_point() else v)[rows].to(x.device)
                                   for k, v in d.params.items()}
        v, kind = (x if every else x[r]), d.op.kind
        if kind == "brightness_contrast":  # a uint8 LUT, clipped and truncated
            v = (v * per_image(p["alpha"]) + per_image(p["beta"])).clamp_(0, 255).floor_()
        elif kind == "gamma":
            table = (torch.arange(256, dtype=torch.float64) * (1.0 / 255))[None] ** d.params["gamma"][rows, None]
            v = torch.gather((table * 255).floor().float().to(x.device), 1, v.flatten(1).long()).view_as(v)
        elif kind == "clahe":  # on CUDA in torch; elsewhere (CPU, MPS) through OpenCV on the host
            v = (clahe(v, p["clip"]) if v.shape[1] == 1 else clahe_lab(v, p["clip"])) if v.is_cuda else (
                clahe_cv2(v.cpu(), p["clip"].cpu()).to(v.device))
        elif kind == "equalize":
            v = equalize(v.flatten(0, 1).cpu() if v.device.type == "mps" else v.flatten(0, 1)).to(v.device).view_as(v)
        elif kind == "color_jitter":
            v = color_jitter(v, p["factor"], p["order"])
        elif kind == "hsv":
            v = shift_hsv(v, p["shift"])
        elif kind == "haze":
            v = haze(v, p["amount"], p["cy"], p["cx"], p["ry"], p["rx"])
        elif kind == "dropout":
            s = v.shape[-1]
            ar = torch.arange(s, device=x.device)
            valid = torch.arange(p["h"].shape[1], device=x.device)[None] < p["n"][:, None]
            rin = (ar >= p["y0"][..., None]) & (ar < (p["y0"] + p["h"])[..., None])
            cin = (ar >= p["x0"][..., None]) & (ar < (p["x0"] + p["w"])[..., None])
            hole = ((rin & valid[..., None])[:, :, :, None] & cin[:, :, None, :]).any(1)
            v = v.masked_fill(hole[:, None], 0)
            if d.op.args["fill_mask"]:
                y[r] = y[r].masked_fill(hole[:, None] if self.multilabel else hole, 0)
        if every:
            return v
        x[r] = v
        return x


def _apply(mat: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Homogeneous ``(n, 3, 3)`` maps applied to coordinate planes ``cx``, ``cy`` (broadcastable to ``(n, S, S)``)."""
    m = mat.to(device=cx.device, dtype=torch.float32)[:, :2, :, None, None]
    return m[:, 0, 0] * cx + m[:, 0, 1] * cy + m[:, 0, 2], m[:, 1, 0] * cx + m[:, 1, 1] * cy + m[:, 1, 2]


def _sampling_grid(mat: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, s: int) -> torch.Tensor:
    """``mat`` applied to the planes, written straight into grid_sample's interleaved ``(n, S, S, 2)`` layout."""
    m = mat.to(device=cx.device, dtype=torch.float32)[:, :2, :, None, None]
    out = torch.empty((len(mat), s, s, 2), device=cx.device)
    for k in range(2):
        torch.add(m[:, k, 0] * cx + m[:, k, 2], m[:, k, 1] * cy, out=out[..., k])
    return out


def _inverse_matrix(d: _Draw, rows: torch.Tensor, s: int) -> torch.Tensor:
    """``(m, 3, 3)`` maps from an op's output pixel coordinates to its input's."""
    m, c = len(rows), s - 1
    eye = torch.eye(3, dtype=torch.float64).repeat(m, 1, 1)
    if d.op.kind == "hflip":
        eye[:, 0, 0], eye[:, 0, 2] = -1, c
        return eye
    if d.op.kind == "vflip":
        eye[:, 1, 1], eye[:, 1, 2] = -1, c
        return eye
    if d.op.kind == "rot90":  # np.rot90(img, k): out(x, y) = in(S-1-y, x), k times
        quarter = torch.tensor([[0.0, -1.0, c], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        powers = torch.stack([torch.linalg.matrix_power(quarter, k) for k in range(4)])
        return powers[d.params["k"][rows]]
    # albumentations' forward matrix: centre, scale, rotate, translate, back (cv2.warpAffine inverts it)
    p = {k: v[rows] for k, v in d.params.items()}
    rad = torch.deg2rad(p["angle"] % 360)
    cos, sin, ctr = torch.cos(rad), torch.sin(rad), s / 2 - 0.5
    fwd = eye.clone()
    fwd[:, 0, 0], fwd[:, 0, 1] = cos * p["sx"], sin * p["sy"]
    fwd[:, 1, 0], fwd[:, 1, 1] = -sin * p["sx"], cos * p["sy"]
    fwd[:, 0, 2] = ctr + p["tx"] - fwd[:, 0, 0] * ctr - fwd[:, 0, 1] * ctr
    fwd[:, 1, 2] = ctr + p["ty"] - fwd[:, 1, 0] * ctr - fwd[:, 1, 1] * ctr
    return torch.linalg.inv(fwd)


def _grid_map(steps: torch.Tensor, s: int) -> torch.Tensor:
    """``(m, S)`` source coordinate of each output column (row) of albumentations' normalised GridDistortion."""
    steps = steps.clone()
    step = s // GRID_STEPS
    steps[:, -1] *= (min(s, (GRID_STEPS + 1) * step) - GRID_STEPS * step) / step
    steps = steps * ((s / math.floor(s / GRID_STEPS)) / steps.sum(1, keepdim=True))
    out = torch.zeros(len(steps), s, dtype=torch.float64)
    prev = torch.zeros(len(steps), dtype=torch.float64)
    for idx in range(GRID_STEPS + 1):
        start, end = idx * step, min(idx * step + step, s)
        cur = prev + step * steps[:, idx]
        if end > start:
            t = torch.linspace(0, 1, end - start, dtype=torch.float64) if end - start > 1 else torch.zeros(1)
            out[:, start:end] = prev[:, None] + (cur - prev)[:, None] * t
        prev = cur
    return out.float()


def _gaussian_blur(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """cv2.GaussianBlur with its automatic kernel size for float images and a replicated border."""
    k = int(round(sigma * 8 + 1)) | 1
    g = torch.exp(-((torch.arange(k, dtype=torch.float64) - (k - 1) / 2) ** 2) / (2 * sigma * sigma))
    g = (g / g.sum()).float().to(v.device)
    n, c, h, w = v.shape
    flat = v.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (k // 2, k // 2, 0, 0), mode="replicate"), g.view(1, 1, 1, k))
    flat = F.conv2d(F.pad(flat, (0, 0, k // 2, k // 2), mode="replicate"), g.view(1, 1, k, 1))
    return flat.view(n, c, h, w)


