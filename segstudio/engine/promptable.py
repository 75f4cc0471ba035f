"""Promptable segmentation models of the SAM family: points and boxes in, a mask out (issue 18).

:func:`load_promptable` opens what the user points to — nothing is ever downloaded:

- a SAM checkpoint (``.pth``, a plain state dict as the segment-anything releases ship it): the architecture
  (vit_b / vit_l / vit_h, or a smaller ViT of the same design) is read from the state dict's shapes, the model is
  built by segment_anything with ``checkpoint=None`` and the weights are loaded with ``torch.load(weights_only=True)``;
- an ONNX pair in segment_anything's export format (:mod:`segstudio.engine.promptable_onnx` has the naming rule).

A model has two halves: :meth:`PromptableModel.embed` runs the image encoder once per image (seconds on a CPU;
the GUI does it in a background worker and keeps the result in an
:class:`~segstudio.engine.embedding_cache.EmbeddingCache`), :meth:`PromptableModel.decode` runs the prompt
encoder and the mask decoder for one click (milliseconds) and returns the mask at the image's size.

Preprocessing is segment_anything's: the longest side resized to 1024 (``ResizeLongestSide``), SAM's pixel mean
and std, zero padding to 1024² at the bottom and right. Prompts are image pixels: points ``(x, y, positive)``
(x = column, y = row), a box ``(x0, y0, x1, y1)``. The optional ``segment-anything`` package (``pip install
segstudio[sam]``) is imported only here and only when a model is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.engine.promptable_base import (
    ARCHITECTURES,
    CHOOSE_FIX,
    IMAGE_SIZE,
    Box,
    Decoded,
    Embedding,
    Point,
    PromptableModel,
    PromptableModelError,
    SamArchitecture,
    preprocess,
    require_segment_anything,
    sam_architecture,
    scale_prompts,
    upscale_logits,
)

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES", "IMAGE_SIZE", "Box", "Decoded", "Embedding", "Point", "PromptableModel",
           "PromptableModelError", "SamArchitecture", "SamCheckpointModel", "load_promptable", "preprocess",
           "require_segment_anything", "sam_architecture"]

class SamCheckpointModel(PromptableModel):
    """segment_anything's ``Sam``: the image encoder in torch, on CUDA when there is one (else the CPU). The
    decoder (``decoder_backend``): ``torch``, ``onnxruntime`` (the prompt encoder and mask decoder exported in
    memory at load, ~2 s; CPU only) or ``auto`` — onnxruntime on the CPU when it is installed, where it decodes a
    click about twice as fast as torch, else torch."""

    kind = "checkpoint"

    def __init__(self, sam: Any, path: Path, *, name: str, device: str = "auto",
                 decoder_backend: str = "auto") -> None:
        import torch

        if decoder_backend not in ("auto", "torch", "onnxruntime"):
            raise ValueError(f"decoder_backend is auto, torch or onnxruntime, not {decoder_backend!r}")
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        try:
            sam = sam.to(dev)
        except (RuntimeError, AssertionError) as exc:  # a busy or broken GPU: the CPU still works
            log.warning("SAM cannot go to %s (%s); using the CPU", dev, exc)
            dev = torch.device("cpu")
            sam = sam.to(dev)
        self.sam = sam.eval()
        self._core: Any = None
        if decoder_backend != "torch" and dev.type == "cpu":
            try:
                from segstudio.engine.promptable_onnx import decoder_core_session

                self._core = decoder_core_session(self.sam)
            except Exception as exc:  # noqa: BLE001 - no onnxruntime, or an exporter that cannot take it
                if decoder_backend == "onnxruntime":
                    raise PromptableModelError(f"SAM's decoder cannot run on onnxruntime ({exc}).", path=path,
                                               fix="Install onnxruntime (pip install segstudio[onnx]) or use "
                                               "the torch decoder.") from exc
                log.warning("SAM's decoder stays in torch: onnxruntime cannot run it (%s)", exc)
        #: what runs a click: "torch" or "onnxruntime"
        self.decoder_backend = "torch" if self._core is None else "onnxruntime"
        super().__init__(path, name=name, device=str(dev))

    def _encode(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            feats = self.sam.image_encoder(torch.from_numpy(x).to(self.sam.device))
        return feats.float().cpu().numpy()

    def _decode(self, embedding: Embedding, *, points: list[Point], box: Box | None, previous: np.ndarray | None,
                multi: bool) -> tuple[np.ndarray, float, np.ndarray]:
        if self._core is not None:
            from segstudio.engine.promptable_onnx import prompt_feed, select_mask

            feed = prompt_feed(points, box, embedding.original_size, previous)
            feed["image_embeddings"] = embedding.features
            low4, scores = self._core.run(None, feed)
            best = select_mask(scores, multi)
            low = np.ascontiguousarray(low4[:, best:best + 1])
            logits = upscale_logits(low[0, 0], embedding.input_size, embedding.original_size)
            return logits > self.sam.mask_threshold, float(scores[0, best]), low
        return self._decode_torch(embedding, points=points, box=box, previous=previous, multi=multi)

    def _decode_torch(self, embedding: Embedding, *, points: list[Point], box: Box | None,
                      previous: np.ndarray | None, multi: bool) -> tuple[np.ndarray, float, np.ndarray]:
        import torch

        sam, dev = self.sam, self.sam.device
        coords, labels, boxes = scale_prompts(points, box, embedding.original_size)
        with torch.inference_mode():
            pts = (torch.from_numpy(coords).to(dev), torch.from_numpy(labels).to(dev)) if points else None
            sparse, dense = sam.prompt_encoder(
                points=pts, boxes=None if boxes is None else torch.from_numpy(boxes).to(dev),
                masks=None if previous is None else torch.from_numpy(np.ascontiguousarray(previous)).to(dev))
            low, iou = sam.mask_decoder(image_embeddings=torch.from_numpy(embedding.features).to(dev),
                                        image_pe=sam.prompt_encoder.get_dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=multi)
            best = int(iou[0].argmax()) if multi else 0
            low = low[:, best:best + 1]
            full = sam.postprocess_masks(low, embedding.input_size, embedding.original_size)
            mask = (full[0, 0] > sam.mask_threshold).cpu().numpy()
            return mask, float(iou[0, best]), low.float().cpu().numpy()


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a pickle, refused objects: one message
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PromptableModelError(
            f"{path.name} cannot be read as a PyTorch checkpoint: it is truncated, damaged or not a checkpoint "
            f"({reason}).", path=path, fix=CHOOSE_FIX) from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PromptableModelError(f"{path.name} holds no state dict of tensors, so it is not a SAM checkpoint.",
                                   path=path, fix=CHOOSE_FIX)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_checkpoint(path: Path, *, device: str = "auto", decoder_backend: str = "auto") -> SamCheckpointModel:
    """A SAM ``.pth`` (any of the released sizes, or a smaller ViT of the same design)."""
    require_segment_anything()
    from segment_anything.build_sam import _build_sam

    state = _read_state_dict(path)
    try:
        arch = sam_architecture(state)
    except (ValueError, KeyError, IndexError) as exc:
        raise PromptableModelError(f"{path.name} is a PyTorch checkpoint but not a SAM one: {exc}.", path=path,
                                   fix=CHOOSE_FIX) from exc
    sam = _build_sam(encoder_embed_dim=arch.embed_dim, encoder_depth=arch.depth, encoder_num_heads=arch.num_heads,
                     encoder_global_attn_indexes=list(arch.global_attn_indexes), checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise PromptableModelError(f"{path.name} does not fit SAM's {arch.name} architecture ({first}).",
                                   path=path, fix=CHOOSE_FIX) from exc
    log.info("loaded SAM %s from %s", arch.name, path)
    return SamCheckpointModel(sam, path, name=f"SAM {arch.name}", device=device, decoder_backend=decoder_backend)


def load_promptable(path: str | Path, *, device: str = "auto", decoder_backend: str = "auto") -> PromptableModel:
    """The promptable model at ``path``: a SAM checkpoint file, an ONNX pair's folder, or either file of an ONNX
    pair (the other beside it; see :func:`segstudio.engine.promptable_onnx.find_onnx_pair`). ``device``: ``auto``
    (CUDA when available), ``cpu`` or ``cuda``; ``decoder_backend``: a checkpoint's (see
    :class:`SamCheckpointModel`). Errors say which file and how to fix it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PromptableModelError(f"There is no promptable model at {p}.", path=p, fix=CHOOSE_FIX)
    if p.is_dir() or p.suffix.lower() == ".onnx":
        from segstudio.engine.promptable_onnx import load_onnx_pair

        return load_onnx_pair(p, device=device)
    return load_checkpoint(p, device=device, decoder_backend=decoder_backend)
