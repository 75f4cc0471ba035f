"""Make SAM models on purpose: a randomly initialised one of the real architecture (tests, benchmarks, the
self-check of the loading code — its masks mean nothing), and the ONNX pair :func:`load_promptable` reads.

``export_onnx_pair`` writes ``<stem>_encoder.onnx`` (the image encoder on the preprocessed 1×3×1024×1024 input)
and ``<stem>_decoder.onnx`` (segment_anything's ``SamOnnxModel``, as its ``scripts/export_onnx_model.py`` does),
with torch's TorchScript exporter (the one that needs no extra package).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from segstudio.engine.promptable import IMAGE_SIZE, require_segment_anything

log = logging.getLogger(__name__)

__all__ = ["SAM_SIZES", "build_random_sam", "export_onnx_pair", "save_checkpoint"]

#: the released encoders: width, depth, heads, global-attention blocks
SAM_SIZES: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def build_random_sam(arch: str = "vit_b", *, encoder_depth: int | None = None, embed_dim: int | None = None,
                     num_heads: int | None = None, seed: int = 0) -> Any:
    """segment_anything's ``Sam`` of ``arch``'s design with random weights (seeded). ``encoder_depth``,
    ``embed_dim`` and ``num_heads`` shrink the image encoder (the last block keeps global attention, the others
    windowed, as in the released models); the prompt encoder and the mask decoder are always the real ones."""
    import torch

    require_segment_anything()
    from segment_anything.build_sam import _build_sam

    if arch not in SAM_SIZES:
        raise ValueError(f"unknown SAM architecture {arch!r}; valid: {', '.join(SAM_SIZES)}")
    dim, depth, heads, global_idx = SAM_SIZES[arch]
    if encoder_depth is not None and encoder_depth != depth:
        depth, global_idx = encoder_depth, (encoder_depth - 1,)
    dim, heads = embed_dim or dim, num_heads or heads
    torch.manual_seed(seed)
    return _build_sam(encoder_embed_dim=dim, encoder_depth=depth, encoder_num_heads=heads,
                                   encoder_global_attn_indexes=list(global_idx), checkpoint=None).eval()


def save_checkpoint(sam: Any, path: Path) -> Path:
    """The model's state dict as a ``.pth``, the way the segment-anything releases ship theirs."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), path)
    return path


def export_onnx_pair(sam: Any, folder: Path, *, stem: str = "sam", opset: int = 17,
                     return_single_mask: bool = False) -> tuple[Path, Path]:
    """Write ``folder/<stem>_encoder.onnx`` and ``folder/<stem>_decoder.onnx``; returns their paths.
    ``return_single_mask``: the decoder returns only the mask it chooses by the point count (segment_anything's
    ``--return-single-mask``) instead of all four, among which :class:`SamOnnxPair` chooses as the torch model
    does."""
    import torch

    require_segment_anything()
    from segment_anything.utils.onnx import SamOnnxModel

    folder.mkdir(parents=True, exist_ok=True)
    enc_path, dec_path = folder / f"{stem}_encoder.onnx", folder / f"{stem}_decoder.onnx"
    sam = sam.cpu().eval()
    embed_dim = sam.prompt_encoder.embed_dim
    grid = sam.prompt_encoder.image_embedding_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python ints in the ViT's window padding
        torch.onnx.export(sam.image_encoder, (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),), str(enc_path),
                          dynamo=False, opset_version=opset, input_names=["image"],
                          output_names=["image_embeddings"])
        decoder = SamOnnxModel(sam, return_single_mask=return_single_mask)
        dummy = {
            "image_embeddings": torch.randn(1, embed_dim, *grid),
            "point_coords": torch.randint(0, IMAGE_SIZE, (1, 5, 2)).float(),
            "point_labels": torch.randint(0, 4, (1, 5)).float(),
            "mask_input": torch.randn(1, 1, 4 * grid[0], 4 * grid[1]),
            "has_mask_input": torch.tensor([1.0]),
            "orig_im_size": torch.tensor([1500.0, 2250.0]),
        }
        torch.onnx.export(decoder, tuple(dummy.values()), str(dec_path), dynamo=False, opset_version=opset,
                          do_constant_folding=True, input_names=list(dummy),
                          output_names=["masks", "iou_predictions", "low_res_masks"],
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})
    log.info("wrote the SAM ONNX pair %s + %s", enc_path, dec_path)
    return enc_path, dec_path
