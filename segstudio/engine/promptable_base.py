"""What every SAM-family backend shares (:mod:`segstudio.engine.promptable` for checkpoints,
:mod:`segstudio.engine.promptable_onnx` for ONNX pairs): prompts, the embedding, SAM's preprocessing and
post-processing, the model interface and its errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from segstudio.core.errors import SegstudioError

log = logging.getLogger(__name__)


#: the side of SAM's square input, and of its low-resolution mask logits
IMAGE_SIZE, LOW_RES = 1024, 256
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)
#: (embedding width, depth) → the released SAM variant
ARCHITECTURES: dict[tuple[int, int], str] = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}
_GRID = IMAGE_SIZE // 16  # ViT patches per side; a global-attention block's relative positions span 2*64-1
INSTALL_FIX = ("Install SAM support: pip install segstudio[sam] (it adds the segment-anything package). The app's "
               "installers leave it out: Click to Segment needs a pip install of segstudio.")
CHOOSE_FIX = ("Choose a SAM checkpoint (e.g. sam_vit_b_01ec64.pth from the segment-anything releases, downloaded "
              "yourself: segstudio downloads nothing) or an ONNX encoder/decoder pair (docs/assist.md).")

#: a point prompt: ``(x, y, positive)`` in image pixels
Point = tuple[float, float, bool]
#: a box prompt: ``(x0, y0, x1, y1)`` in image pixels
Box = tuple[float, float, float, float]


class PromptableModelError(SegstudioError):
    """A promptable model cannot be loaded or run: the file, what is wrong with it and the fix."""


@dataclass(frozen=True)
class Embedding:
    """An image's embedding: ``features`` float32 ``(1, 256, 64, 64)``; ``original_size`` the image's ``(h, w)``;
    ``input_size`` its ``(h, w)`` after the longest side was resized to 1024."""

    features: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


class Decoded(NamedTuple):
    """One decoder answer: ``mask`` bool ``(h, w)`` at the image's size; ``score`` the model's IoU estimate;
    ``low_res_logits`` float32 ``(1, 1, 256, 256)``, fed back with the next click to refine the same mask."""

    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray


@dataclass(frozen=True)
class SamArchitecture:
    """The image encoder's shape, read from a state dict (the prompt encoder and mask decoder are fixed)."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


def require_segment_anything() -> Any:
    """The ``segment_anything`` module, or an error that names the fix."""
    try:
        import segment_anything
    except ImportError as exc:
        raise PromptableModelError(
            f"SAM models need the segment-anything package, which is not installed ({exc}).", fix=INSTALL_FIX
        ) from exc
    return segment_anything


def sam_architecture(state: Mapping[str, Any]) -> SamArchitecture:
    """The encoder of a SAM state dict: width from ``pos_embed``, depth from the blocks, heads and global-attention
    blocks from the relative-position tables. ValueError when ``state`` is not a SAM state dict."""
    need = ("image_encoder.pos_embed", "prompt_encoder.point_embeddings.0.weight", "mask_decoder.iou_token.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"it has no {', '.join(missing)}")
    pos = tuple(state["image_encoder.pos_embed"].shape)
    if len(pos) != 4 or pos[1:3] != (_GRID, _GRID):
        raise ValueError(f"its image_encoder.pos_embed is {pos}, not (1, {_GRID}, {_GRID}, width)")
    dim = int(pos[3])
    blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")})
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError("its image encoder blocks are missing or not numbered 0..n-1")
    global_idx, head_dim = [], 0
    for i in blocks:
        rel = tuple(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape)
        head_dim = int(rel[1])
        if rel[0] == 2 * _GRID - 1:
            global_idx.append(i)
    if head_dim <= 0 or dim % head_dim:
        raise ValueError(f"its attention head width {head_dim} does not divide the width {dim}")
    name = ARCHITECTURES.get((dim, len(blocks)), f"vit ({dim} wide, {len(blocks)} blocks)")
    return SamArchitecture(name, dim, len(blocks), dim // head_dim, tuple(global_idx))


def preprocess(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """``uint8 (h, w)``, ``(h, w, 1|3|4)`` → (float32 ``(1, 3, 1024, 1024)`` normalised and padded, input size,
    original size), with segment_anything's ``ResizeLongestSide``."""
    from segment_anything.utils.transforms import ResizeLongestSide

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"an image to embed is uint8 (h, w) or (h, w, 1|3|4), not {a.dtype} {a.shape}")
    if a.ndim == 2:
        a = a[..., None]
    rgb = np.ascontiguousarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3])
    resized = ResizeLongestSide(IMAGE_SIZE).apply_image(rgb)
    ih, iw = resized.shape[:2]
    x = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    x[0, :, :ih, :iw] = ((resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)
    return x, (ih, iw), (int(rgb.shape[0]), int(rgb.shape[1]))


def scale_prompts(points: Sequence[Point], box: Box | None, original_size: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Prompts in the model's 1024 frame: coords float32 ``(1, n, 2)``, labels float32 ``(1, n)`` (1 positive,
    0 negative), box float32 ``(1, 4)`` or None."""
    from segment_anything.utils.transforms import ResizeLongestSide

    t = ResizeLongestSide(IMAGE_SIZE)
    coords = np.array([[p[0], p[1]] for p in points], np.float64).reshape(-1, 2)
    labels = np.array([1.0 if p[2] else 0.0 for p in points], np.float32).reshape(1, -1)
    coords = t.apply_coords(coords, original_size).astype(np.float32)[None]
    boxes = None if box is None else t.apply_boxes(np.array([box], np.float64), original_size).astype(np.float32)
    return coords, labels, boxes


class PromptableModel:
    """A SAM-family model: :meth:`embed` once per image (slow), :meth:`decode` per click (fast). Both may run on
    different threads at the same time."""

    #: "checkpoint" or "onnx"
    kind = ""

    def __init__(self, path: Path, *, name: str, device: str) -> None:
        self.path, self.name, self.device = Path(path), name, device

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} from {self.path} on {self.device}>"

    def embed(self, image: np.ndarray) -> Embedding:
        """The image encoder on ``image`` (uint8 gray, RGB or RGBA, any size)."""
        x, input_size, original_size = preprocess(image)
        features = np.ascontiguousarray(self._encode(x), dtype=np.float32)
        if features.shape != (1, 256, _GRID, _GRID):
            raise PromptableModelError(f"The image encoder returned {features.shape}, not (1, 256, 64, 64).",
                                       path=self.path, fix=CHOOSE_FIX)
        return Embedding(features, original_size, input_size)

    def decode(self, embedding: Embedding, *, points: Sequence[Point] = (), box: Box | None = None,
               previous_low_res_logits: np.ndarray | None = None, multimask: bool = True) -> Decoded:
        """The mask for these prompts. ``multimask``: one point alone (no box) makes SAM's three candidate masks
        and the best-scored one is kept; every other prompt makes one mask. ``previous_low_res_logits`` (the last
        answer's) refines the same mask."""
        if not points and box is None:
            raise ValueError("a prompt needs at least one point or a box")
        prev = previous_low_res_logits
        if prev is not None and tuple(prev.shape) != (1, 1, LOW_RES, LOW_RES):
            raise ValueError(f"previous logits are (1, 1, 256, 256), not {tuple(prev.shape)}")
        multi = bool(multimask) and len(points) == 1 and box is None
        mask, score, low = self._decode(embedding, points=list(points), box=box, previous=prev, multi=multi)
        return Decoded(mask, float(score), np.ascontiguousarray(low, dtype=np.float32))

    # the halves each backend implements -------------------------------------------------------------------------
    def _encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, embedding: Embedding, *, points: list[Point], box: Box | None, previous: np.ndarray | None,
                multi: bool) -> tuple[np.ndarray, float, np.ndarray]:
        raise NotImplementedError


def upscale_logits(low: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]) -> np.ndarray:
    """float32 ``(256, 256)`` low-resolution logits → ``(h, w)`` at the image's size, as ``Sam.postprocess_masks``
    does it (bilinear to 1024², the padding cut off, bilinear to the image's size), with OpenCV."""
    import cv2

    big = cv2.resize(np.ascontiguousarray(low, np.float32), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
    crop = np.ascontiguousarray(big[: input_size[0], : input_size[1]])
    return cv2.resize(crop, (original_size[1], original_size[0]), interpolation=cv2.INTER_LINEAR)
