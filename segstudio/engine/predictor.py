"""One or more checkpoints turned into per-pixel probabilities, hard masks and uncertainty.

Three ways to feed an image to a network (``InferenceOptions.mode``):

* ``resize`` (default) — the whole image resized to the training size, as the trainer saw it; batched.
* ``tile`` — sliding windows of ``tile_size`` with ``overlap``, blended with a Gaussian weight (the window's
  centre counts most: a CNN sees the least context at a tile's border), optionally after rescaling by ``scale``.
  For images larger than the training size seen at their own resolution (2048² hand bones at 512² tiles).
* ``native`` — the whole image at its own resolution in one pass (padded to a multiple of 32).

A checkpoint trained with ``data.crop=content`` sees only each image's content box (``core.content``), in any
mode; the rest of the image is background.

Normalisation happens on the whole image before tiling: per-image z-scoring per tile would shift every tile.
Probabilities are ``(K, H, W) float32`` with ``K = task.num_classes``: softmax (multi-class), ``[1 - p, p]``
(binary), sigmoid per class (multi-label). Flip TTA and ensembles average probabilities, not logits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import ClassSchema
from segstudio.engine.augment import swap_pairs
from segstudio.engine.checkpoint import CONFIG_FILE, Checkpoint, load_checkpoint
from segstudio.engine.config import INFER_TTA_GROUPS
from segstudio.engine.preprocess import crop_box, normalize_batch, prepare_image, to_uint8
from segstudio.engine.runtime import resolve_device
from segstudio.engine.task import Task

log = logging.getLogger(__name__)

MODES = ("resize", "tile", "native")
BACKENDS = ("auto", "torch", "onnxruntime")


@dataclass(frozen=True)
class _Turn:
    """One test-time transform of ``(N, C, H, W)``: ``k`` quarter turns (counter-clockwise, as ``torch.rot90``)
    after an optional mirror of the columns. ``sides``: what it does to left and right: ``"swap"`` (the image is
    mirrored left-right: left/right classes trade channels), ``"keep"``, or ``"lost"`` (a quarter turn: left and
    right become top and bottom, so a model whose classes have sides cannot use it)."""

    mirror: bool
    k: int
    sides: str

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flip(3) if self.mirror else x
        return torch.rot90(y, self.k, dims=(2, 3)) if self.k else y

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(y, -self.k, dims=(2, 3)) if self.k else y
        return x.flip(3) if self.mirror else x


#: the test-time transforms: the seven non-trivial symmetries of a square (the dihedral group D4). Flips suit any
#: model trained with them; quarter turns and transposes suit images without an up, such as dermoscopy.
TTA = {
    "hflip": _Turn(True, 0, "swap"),
    "vflip": _Turn(True, 2, "keep"),  # a mirror of the columns then half a turn = a mirror of the rows
    "rot90": _Turn(False, 1, "lost"),
    "rot180": _Turn(False, 2, "swap"),
    "rot270": _Turn(False, 3, "lost"),
    "transpose": _Turn(True, 1, "lost"),
    "antitranspose": _Turn(True, 3, "lost"),
}


def expand_tta(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with groups (``d4``) spelled out, each transform once, in the order given."""
    out: list[str] = []
    for n in names:
        for t in INFER_TTA_GROUPS.get(n, (n,)):
            if t not in TTA:
                raise UnknownKeyError("test-time augmentation", t, [*TTA, *INFER_TTA_GROUPS])
            if t not in out:
                out.append(t)
    return tuple(out)


#: the encoders of every registered architecture downsample by at most 32
_STRIDE = 32


class InferenceError(SegstudioError):
    """Checkpoints that cannot be combined, or options that do not fit them."""


@dataclass(frozen=True)
class InferenceOptions:
    """How to run the network. ``tta``: any of :data:`TTA` (``"hflip"``, ``"vflip"``, ``"rot90"``, ``"rot180"``,
    ``"rot270"``, ``"transpose"``, ``"antitranspose"``) or ``"d4"`` for all of them; the result is the mean of the
    probabilities over the untransformed pass and each transform's (mapped back).

    ``tile_size``: window side for ``mode="tile"`` (None: the checkpoint's training size); ``overlap``: fraction
    of a window shared with its neighbour (0 ≤ overlap < 1); ``scale``: resize factor applied before tiling.
    ``probabilities`` / ``uncertainty``: hand the ``(K, H, W)`` probabilities / ``(H, W)`` entropy back with each
    result. ``post``: post-processing steps (``segstudio.engine.postprocess``). ``backend``: ``torch``,
    ``onnxruntime`` (CPU only; the network exported to ONNX in memory when the predictor is built, ~1.5 s for a
    ResNet-34 U-Net) or ``auto``: onnxruntime on the CPU, where it measured 1.2x faster than torch
    (``engine.infer_onnxruntime_vs_torch``), torch elsewhere and for networks the ONNX exporter cannot take.
    """

    mode: str = "resize"
    batch_size: int = 4
    tta: tuple[str, ...] = ()
    tile_size: int | None = None
    overlap: float = 0.25
    scale: float = 1.0
    device: str = "auto"
    amp: bool = True
    probabilities: bool = False
    uncertainty: bool = True
    post: tuple[Any, ...] = field(default_factory=tuple)
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnknownKeyError("inference mode", self.mode, list(MODES))
        if self.backend not in BACKENDS:
            raise UnknownKeyError("inference backend", self.backend, list(BACKENDS))
        object.__setattr__(self, "tta", expand_tta(self.tta))
        if not 0.0 <= self.overlap < 1.0:
            raise InferenceError(f"overlap must be in [0, 1), got {self.overlap}.", fix="Use e.g. overlap=0.25.")
        if self.batch_size < 1 or self.scale <= 0 or (self.tile_size is not None and self.tile_size < _STRIDE):
            raise InferenceError("batch_size must be ≥ 1, scale > 0 and tile_size ≥ 32.")

    def digest(self) -> str:
        """What changes the output (for cache keys): not the batch size, device, backend or what is handed back."""
        from segstudio.engine.postprocess import describe

        return f"{self.mode}|{','.join(self.tta)}|{self.tile_size}|{self.overlap}|{self.scale}|{describe(self.post)}"

    def describe(self) -> str:
        """One line for people: ``resize · TTA hflip · post keep_largest, fill_holes``."""
        parts = [self.mode if self.mode != "tile" else f"tile {self.tile_size or 'training size'} px, overlap "
                 f"{self.overlap:g}" + (f", scale {self.scale:g}" if self.scale != 1.0 else "")]
        parts.append(f"TTA {', '.join(self.tta)}" if self.tta else "no TTA")
        steps = [st.name + (":" + ",".join(f"{k}={v}" for k, v in sorted(st.params.items())) if st.params else "")
                 for st in self.post]
        parts.append(f"post {', '.join(steps)}" if steps else "no post-processing")
        return " · ".join(parts)


def recommended_options(config: Any, **settings: Any) -> InferenceOptions:
    """The inference a model's config recommends (``TrainConfig.infer``: mode, TTA, post-processing, tiling), with
    ``settings`` (device, batch size, backend, what is handed back) on top. ``config``: a ``TrainConfig`` or a
    checkpoint folder. The app, ``predict``, ``evaluate`` and ``report`` all start from it, so that one
    checkpoint gives one mask for one image wherever it runs."""
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.postprocess import parse_step

    if not isinstance(config, TrainConfig):
        config = TrainConfig.load(Path(config) / CONFIG_FILE)
    inf = config.infer
    return InferenceOptions(mode=inf.mode, tta=tuple(inf.tta), post=tuple(parse_step(x) for x in inf.post),
                            tile_size=inf.tile_size, overlap=inf.overlap, scale=inf.scale, **settings)


@dataclass
class _Member:
    checkpoint: Checkpoint
    #: what runs the network: the checkpoint's torch model, or its onnxruntime twin
    net: Any
    #: channel order after mirroring left-right (left/right classes swapped); None: plain mirror
    swap_order: list[int] | None
    #: False when the model was trained without mirroring and has no label swap: hflip TTA would mislead it
    mirror_ok: bool

    def uses(self, tta: str) -> bool:
        """Whether test-time transform ``tta`` suits this model: not hflip for a model never mirrored, not a
        quarter turn or a transpose for one whose classes have sides (left and right would become top and bottom)."""
        if tta == "hflip" and not self.mirror_ok:
            return False
        return not (TTA[tta].sides == "lost" and self.swap_order is not None)


def _blend_window(size: int) -> torch.Tensor:
    """``(size, size) float32`` Gaussian weights (σ = size/8, nnU-Net's choice), floored so that every pixel
    of a tile counts a little (image corners are covered by one tile only)."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    g = torch.exp(-(r**2) / (2 * (size / 8.0) ** 2))
    w = g[:, None] * g[None, :]
    return (w / w.max()).clamp_min(1e-3)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``: every ``stride``, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` bottom/right to at least ``h`` × ``w``: mirrored content where it exists (the network
    sees image-like context, not a black bar), edge copies beyond that."""
    ph, pw = max(0, h - x.shape[2]), max(0, w - x.shape[3])
    if not ph and not pw:
        return x
    mode = "reflect" if ph < x.shape[2] and pw < x.shape[3] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class Predictor:
    """Checkpoints (one, or several for an ensemble: mean of probabilities) ready to predict on one device."""

    def __init__(self, checkpoints: Sequence[Checkpoint], *, options: InferenceOptions | None = None) -> None:
        if not checkpoints:
            raise InferenceError("No checkpoint given.", fix="Pass at least one checkpoint folder.")
        self.options = options or InferenceOptions()
        first = checkpoints[0]
        for c in checkpoints[1:]:
            if (c.task.mode, c.task.class_ids) != (first.task.mode, first.task.class_ids):
                raise InferenceError(
                    "An ensemble needs checkpoints of the same task: "
                    f"{first.task.mode} {list(first.task.class_names)} vs {c.task.mode} {list(c.task.class_names)}.",
                    path=c.path,
                    fix="Combine checkpoints trained on the same classes.",
                )
        self.device = resolve_device(self.options.device)
        if self.options.backend == "onnxruntime" and self.device.type != "cpu":
            if self.options.device != "auto":
                raise InferenceError("The onnxruntime backend runs on the CPU only.", fix="Use device=cpu or backend=torch.")
            self.device = torch.device("cpu")
        #: what runs the networks: "torch" or "onnxruntime" ("auto" resolved; a member may fall back to torch)
        self.backend = "torch" if self.options.backend == "auto" and self.device.type != "cpu" else self.options.backend
        self.task: Task = first.task
        self.schema: ClassSchema = first.schema
        ths = first.info.get("thresholds") or [0.5] * self.task.out_channels
        self.thresholds: tuple[float, ...] = tuple(float(t) for t in ths)
        self.members = [self._member(c) for c in checkpoints]
        skipped = [t for t in self.options.tta if not all(m.uses(t) for m in self.members)]
        if "hflip" in skipped:
            log.warning("hflip TTA skipped for checkpoints trained without mirroring (their classes have sides)")
        turns = [t for t in skipped if t != "hflip"]
        if turns:
            log.warning("TTA %s skipped: the classes have left and right sides, which a quarter turn or a transpose "
                        "would lose", ", ".join(turns))

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, options: InferenceOptions | None = None) -> Predictor:
        opts = options or InferenceOptions()
        device = resolve_device(opts.device)
        return cls([load_checkpoint(p, device=device) for p in paths], options=opts)

    def _member(self, c: Checkpoint) -> _Member:
        c.model.to(self.device).eval()
        if self.device.type == "cuda":
            c.model.to(memory_format=torch.channels_last)
        pairs = swap_pairs(c.config.augment, c.task) if self.task.mode != "binary" else []
        order = None
        if pairs:
            order = list(range(self.task.num_classes))
            for a, b in pairs:
                order[a], order[b] = order[b], order[a]
        net: Any = c.model
        if self.backend in ("auto", "onnxruntime"):
            from segstudio.engine.export import ExportError, OnnxRuntimeModel

            try:
                net = OnnxRuntimeModel(c)
            except ExportError as e:
                if self.backend == "onnxruntime":
                    raise
                log.warning("onnxruntime cannot run %s; using torch (%s)", c.path, e)
        return _Member(c, net, order, mirror_ok=bool(pairs) or c.config.augment.hflip)

    @property
    def checkpoint_paths(self) -> list[Path]:
        return [m.checkpoint.path for m in self.members]

    # network passes --------------------------------------------------------------------------------------------
    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.task.mode == "multiclass":
            return logits.softmax(1)
        p = logits.sigmoid()
        return torch.cat([1.0 - p, p], 1) if self.task.mode == "binary" else p

    def _forward(self, m: _Member, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` normalised input → ``(N, K, h, w)`` probabilities, flip-TTA averaged."""
        use_amp = self.options.amp and self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out = self._activate(m.net(x))
            n = 1
            for name in self.options.tta:
                if not m.uses(name):
                    continue
                turn = TTA[name]
                y = turn.invert(self._activate(m.net(turn.apply(x).contiguous())))
                if turn.sides == "swap" and m.swap_order is not None:
                    y = y[:, m.swap_order]
                out = out + y
                n += 1
        return out / n if n > 1 else out

    def _input(self, m: _Member, image: np.ndarray, *, resize: bool) -> torch.Tensor:
        pre = m.checkpoint.preprocessing
        arr = torch.from_numpy(prepare_image(image, pre, resize=resize))[None]
        return normalize_batch(arr.to(self.device, non_blocking=True), pre.normalize)

    def _resized(self, m: _Member, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        pre = m.checkpoint.preprocessing
        batch = torch.from_numpy(np.stack([prepare_image(im, pre) for im in images]))
        x = normalize_batch(batch.to(self.device, non_blocking=True), pre.normalize)
        probs = self._forward(m, x)
        out = []
        for i, im in enumerate(images):
            h, w = im.shape[:2]
            p = probs[i : i + 1]
            if p.shape[2:] != (h, w):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            out.append(p[0])
        return out

    def _native(self, m: _Member, image: np.ndarray) -> torch.Tensor:
        x = self._input(m, image, resize=False)
        h, w = x.shape[2:]
        x = _pad_to(x, math.ceil(h / _STRIDE) * _STRIDE, math.ceil(w / _STRIDE) * _STRIDE)
        return self._forward(m, x)[0, :, :h, :w]

    def _tiled(self, m: _Member, image: np.ndarray) -> torch.Tensor:
        x = self._input(m, image, resize=False)
        h0, w0 = x.shape[2:]
        if self.options.scale != 1.0:
            size = (max(1, round(h0 * self.options.scale)), max(1, round(w0 * self.options.scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.options.scale < 1)
        h, w = x.shape[2:]
        tile = self.options.tile_size or m.checkpoint.preprocessing.image_size
        x = _pad_to(x, tile, tile)
        ph, pw = x.shape[2:]
        stride = max(1, int(tile * (1.0 - self.options.overlap)))
        boxes = [(y, xx) for y in tile_starts(ph, tile, stride) for xx in tile_starts(pw, tile, stride)]
        weight = _blend_window(tile).to(self.device)
        acc = torch.zeros((self.task.num_classes, ph, pw), device=self.device)
        wsum = torch.zeros((ph, pw), device=self.device)
        bs = self.options.batch_size
        for i in range(0, len(boxes), bs):
            chunk = boxes[i : i + bs]
            crops = torch.cat([x[:, :, y : y + tile, xx : xx + tile] for y, xx in chunk])
            probs = self._forward(m, crops)
            for (y, xx), p in zip(chunk, probs, strict=True):
                acc[:, y : y + tile, xx : xx + tile] += p * weight
                wsum[y : y + tile, xx : xx + tile] += weight
        out = (acc / wsum)[:, :h, :w]
        if (h, w) != (h0, w0):
            out = F.interpolate(out[None], size=(h0, w0), mode="bilinear", align_corners=False)[0]
        return out

    def _by_mode(self, m: _Member, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        if self.options.mode == "resize":
            return self._resized(m, images)
        if self.options.mode == "tile":
            return [self._tiled(m, im) for im in images]
        return [self._native(m, im) for im in images]

    def _cropped(self, m: _Member, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """A member trained on each image's content box (``data.crop=content``) predicts that box, in any mode;
        outside it the image is background (multi-label: no class)."""
        # as the trainer does: the whole image to 8 bits first, then the crop (a 16-bit or float image is scaled by
        # its own range, which a band at the extreme would otherwise no longer set)
        eight = [to_uint8(im) for im in images]
        boxes = [crop_box(im, m.checkpoint.preprocessing.crop) for im in eight]
        crops = [np.ascontiguousarray(im[y0:y1, x0:x1]) for im, (y0, y1, x0, x1) in zip(eight, boxes, strict=True)]
        bg = self.task.background_index
        out = []
        for im, (y0, y1, x0, x1), p in zip(images, boxes, self._by_mode(m, crops), strict=True):
            h, w = im.shape[:2]
            if (y0, y1, x0, x1) == (0, h, 0, w):
                out.append(p)
                continue
            full = torch.zeros((p.shape[0], h, w), dtype=p.dtype, device=p.device)
            if bg is not None:
                full[bg] = 1.0
            full[:, y0:y1, x0:x1] = p
            out.append(full)
        return out

    def probabilities(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Raw images (``(H, W[, 3])``, any bit depth) → ``(K, H, W) float32`` probabilities on the device each,
        at each image's own size; the mean over the ensemble's members."""
        total: list[torch.Tensor] | None = None
        for m in self.members:
            probs = self._by_mode(m, images) if m.checkpoint.preprocessing.crop == "none" else self._cropped(m, images)
            total = probs if total is None else [a + b for a, b in zip(total, probs, strict=True)]
        assert total is not None
        n = len(self.members)
        return [t / n for t in total] if n > 1 else total

    # from probabilities to answers ------------------------------------------------------------------------------
    def hard_mask(self, probs: torch.Tensor, *, thresholds: Sequence[float] | None = None) -> np.ndarray:
        """``(K, H, W)`` probabilities → ``(H, W)`` mask in the schema's convention: class ids in
        ``schema.mask_dtype()`` (semantic) or a ``uint64`` bitmask (multi-label, bit = class id).
        ``thresholds``: per output channel (binary: one; multi-label: one per class)."""
        ths = tuple(thresholds) if thresholds is not None else self.thresholds
        ids = self.task.class_ids
        if self.task.mode == "multilabel":
            planes = (probs >= torch.tensor(ths, device=probs.device).view(-1, 1, 1)).cpu().numpy()
            bits = np.zeros(probs.shape[1:], np.uint64)
            for c, cid in enumerate(ids):
                bits |= planes[c].astype(np.uint64) << np.uint64(cid)
            return bits
        dtype = self.schema.mask_dtype()
        if self.task.mode == "binary":
            fg = (probs[1] >= ths[0]).cpu().numpy()
            return np.where(fg, ids[1], ids[0]).astype(dtype)
        lut = np.asarray(ids, dtype)
        return lut[probs.argmax(0).cpu().numpy()]

    def uncertainty(self, probs: torch.Tensor) -> np.ndarray:
        """``(H, W) float32`` entropy scaled to [0, 1]: 0 = certain, 1 = every answer equally likely.
        Multi-label: the mean over classes of each class's yes/no entropy."""
        p = probs.clamp(1e-7, 1.0)
        if self.task.mode == "multilabel":
            q = (1.0 - probs).clamp(1e-7, 1.0)
            ent = -(p * p.log() + q * q.log()).mean(0) / math.log(2.0)
        else:
            ent = -(p * p.log()).sum(0) / math.log(max(2, probs.shape[0]))
        return ent.clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False)
