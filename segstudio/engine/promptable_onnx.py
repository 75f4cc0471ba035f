"""A SAM model as an ONNX pair run by onnxruntime: an image encoder and a prompt decoder.

The pair is the one :func:`segstudio.engine.promptable_export.export_onnx_pair` writes (docs/assist.md shows the
same steps with segment_anything alone):

- **encoder**: one input, the preprocessed image float32 ``(1, 3, 1024, 1024)`` (resized to a longest side of 1024,
  normalised by SAM's pixel mean and std, zero-padded at the bottom and right), one output, the embedding float32
  ``(1, 256, 64, 64)``;
- **decoder**: segment_anything's ``SamOnnxModel`` export (``scripts/export_onnx_model.py``): inputs
  ``image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size``; outputs the masks'
  logits at the image's size, their scores and the low-resolution logits — one mask (``--return-single-mask``) or
  all four. The mask is up-scaled here from the low-resolution logits, as ``Sam.postprocess_masks`` does.

Naming rule (:func:`find_onnx_pair`): a folder holding exactly one ``*encoder*.onnx`` and one ``*decoder*.onnx``;
or one file of the pair, the other beside it with ``encoder`` ↔ ``decoder`` swapped in its name
(``sam_vit_b_decoder.onnx`` ↔ ``sam_vit_b_encoder.onnx``), else the folder's only ``*encoder*.onnx``
(``*decoder*.onnx``). Names are matched without regard to case.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.engine.promptable_base import (
    CHOOSE_FIX,
    LOW_RES,
    Box,
    Embedding,
    Point,
    PromptableModel,
    PromptableModelError,
    require_segment_anything,
    scale_prompts,
    upscale_logits,
)

log = logging.getLogger(__name__)

__all__ = ["DECODER_INPUTS", "SamOnnxPair", "decoder_core_session", "find_onnx_pair", "load_onnx_pair", "prompt_feed",
           "select_mask"]

DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input",
                  "orig_im_size")
ONNX_FIX = "Install onnxruntime: pip install segstudio[onnx]."
_RULE = ("An ONNX pair is a folder holding one *encoder*.onnx and one *decoder*.onnx, or one of the two files with "
         "the other beside it (encoder <-> decoder swapped in the name).")


def _other_half(path: Path, have: str, want: str) -> Path | None:
    swapped = path.with_name(re.sub(have, want, path.name, flags=re.IGNORECASE))
    if swapped != path and swapped.is_file():
        return swapped
    others = [p for p in sorted(path.parent.glob("*.onnx")) if want in p.name.lower()]
    return others[0] if len(others) == 1 else None


def find_onnx_pair(path: Path) -> tuple[Path, Path]:
    """(encoder, decoder) for a folder or either file of a pair (the naming rule in the module's docstring)."""
    if path.is_dir():
        onnx = sorted(path.glob("*.onnx"))
        enc = [p for p in onnx if "encoder" in p.name.lower()]
        dec = [p for p in onnx if "decoder" in p.name.lower()]
        if len(enc) == 1 and len(dec) == 1:
            return enc[0], dec[0]
        raise PromptableModelError(
            f"The folder {path.name} holds {len(enc)} *encoder*.onnx and {len(dec)} *decoder*.onnx files; an ONNX "
            "pair needs exactly one of each.", path=path, fix=_RULE)
    name = path.name.lower()
    if "decoder" in name:
        enc_path = _other_half(path, "decoder", "encoder")
        if enc_path is None:
            expected = re.sub("decoder", "encoder", path.name, flags=re.IGNORECASE)
            raise PromptableModelError(
                f"No image encoder beside the decoder {path.name}: expected {expected} in the same folder.",
                path=path, fix=f"Put the encoder beside the decoder as {expected}, or choose a SAM .pth checkpoint.")
        return enc_path, path
    if "encoder" in name:
        dec_path = _other_half(path, "encoder", "decoder")
        if dec_path is None:
            expected = re.sub("encoder", "decoder", path.name, flags=re.IGNORECASE)
            raise PromptableModelError(
                f"No prompt decoder beside the encoder {path.name}: expected {expected} in the same folder.",
                path=path, fix=f"Put the decoder beside the encoder as {expected}.")
        return path, dec_path
    raise PromptableModelError(f"{path.name} is not named as half of an ONNX pair.", path=path, fix=_RULE)


def _options(*, spin: bool) -> Any:
    """onnxruntime's session options. ``spin=False`` for the decoder: its worker threads sleep between clicks
    instead of spinning, which on a CPU shared with the embedding worker, the GUI and other programs halved a
    click's wall time (measured under a load average of 6 on 2 cores: 117 vs 210 ms)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return so


def _session(path: Path, device: str, *, spin: bool = True) -> tuple[Any, str]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise PromptableModelError(f"ONNX models need onnxruntime, which is not installed ({exc}).", path=path,
                                   fix=ONNX_FIX) from exc
    want_gpu = device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    tries = [["CUDAExecutionProvider", "CPUExecutionProvider"]] if want_gpu else []
    tries.append(["CPUExecutionProvider"])
    last: Exception | None = None
    for providers in tries:
        try:
            sess = ort.InferenceSession(str(path), _options(spin=spin), providers=providers)
            return sess, "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            last = exc
            log.warning("onnxruntime cannot open %s with %s: %s", path, providers, exc)
    reason = (str(last).strip().splitlines() or ["unknown"])[0][:300]
    raise PromptableModelError(f"{path.name} cannot be opened by onnxruntime ({reason}).", path=path,
                               fix=CHOOSE_FIX) from last


class SamOnnxPair(PromptableModel):
    """An encoder and a decoder session of onnxruntime (CUDA when its provider is there, else the CPU)."""

    kind = "onnx"

    def __init__(self, encoder: Path, decoder: Path, *, device: str = "auto") -> None:
        require_segment_anything()  # its transforms do the preprocessing
        self.encoder_path, self.decoder_path = encoder, decoder
        self._enc, enc_dev = _session(encoder, device)
        self._dec, _ = _session(decoder, device, spin=False)
        enc_in = self._enc.get_inputs()
        shape = list(enc_in[0].shape) if enc_in else []
        if len(enc_in) != 1 or len(shape) != 4 or shape[1] != 3 or "float" not in enc_in[0].type:
            raise PromptableModelError(
                f"{encoder.name} is not a SAM image encoder of the expected form: its inputs are "
                f"{[(i.name, i.shape, i.type) for i in enc_in]}, not one float (1, 3, 1024, 1024) image.",
                path=encoder, fix="Export the encoder as docs/assist.md shows (or with "
                "segstudio.engine.promptable_export.export_onnx_pair).")
        names = {i.name for i in self._dec.get_inputs()}
        missing = [n for n in DECODER_INPUTS if n not in names]
        if missing:
            raise PromptableModelError(
                f"{decoder.name} is not a SAM decoder in segment_anything's export format: it lacks the inputs "
                f"{', '.join(missing)}.", path=decoder, fix="Export it with segment_anything's "
                "scripts/export_onnx_model.py (SamOnnxModel), as docs/assist.md shows.")
        self._enc_input = enc_in[0].name
        #: a ``--return-single-mask`` export: it chooses among its masks itself
        self._single = self._mask_count() == 1
        super().__init__(decoder, name=f"SAM ONNX ({decoder.stem})", device=enc_dev)

    def _mask_count(self) -> int:
        """How many masks the decoder returns: from the scores' shape, else from one run on a blank embedding."""
        outs = self._dec.get_outputs()
        n = outs[1].shape[1] if len(outs) > 1 and len(outs[1].shape) == 2 else None
        if isinstance(n, int):
            return n
        feed = prompt_feed([(0.0, 0.0, True)], None, (64, 64), None)
        feed["image_embeddings"] = np.zeros((1, 256, 64, 64), np.float32)
        feed["orig_im_size"] = np.array([64.0, 64.0], np.float32)
        return int(np.asarray(self._dec.run(None, feed)[1]).shape[1])

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._enc.run(None, {self._enc_input: x})[0])

    def _decode(self, embedding: Embedding, *, points: list[Point], box: Box | None, previous: np.ndarray | None,
                multi: bool) -> tuple[np.ndarray, float, np.ndarray]:
        # a single-mask export picks among its masks by the point count (pads included: 2 → the best of the three
        # candidates, 3 or more → the one mask); pads up to 3 ask it for the one-mask answer
        feed = prompt_feed(points, box, embedding.original_size, previous,
                           min_points=3 if self._single and not multi else 0)
        feed["image_embeddings"] = embedding.features
        feed["orig_im_size"] = np.array(embedding.original_size, np.float32)
        masks, scores, low = (np.asarray(o) for o in self._dec.run(None, feed)[:3])
        best = select_mask(scores, multi) if masks.shape[1] > 1 else 0
        low = np.ascontiguousarray(low[:, best:best + 1], np.float32)
        # the mask is up-scaled from the low-resolution logits here, not taken from the decoder's own masks: a
        # traced export keeps the crop of the image size it was traced with (torch's TorchScript exporter bakes
        # ``int(size)`` in), so its full-size masks are only right for images of that size
        logits = upscale_logits(low[0, 0], embedding.input_size, embedding.original_size)
        return logits > 0.0, float(scores[0, best]), low


def prompt_feed(points: list[Point], box: Box | None, original_size: tuple[int, int], previous: np.ndarray | None,
                *, min_points: int = 0) -> dict[str, np.ndarray]:
    """The prompt inputs of SAM's ONNX decoder: the box's corners are points labelled 2 and 3; without a box the
    points end with one "not a point" (label -1), as SAM's prompt encoder pads them; ``min_points`` pads more."""
    coords, labels, boxes = scale_prompts(points, box, original_size)
    if boxes is not None:
        coords = np.concatenate([coords, boxes.reshape(1, 2, 2)], axis=1)
        labels = np.concatenate([labels, np.array([[2.0, 3.0]], np.float32)], axis=1)
    pads = max(1 if boxes is None else 0, min_points - coords.shape[1])
    if pads:
        coords = np.concatenate([coords, np.zeros((1, pads, 2), np.float32)], axis=1)
        labels = np.concatenate([labels, np.full((1, pads), -1.0, np.float32)], axis=1)
    return {
        "point_coords": coords.astype(np.float32),
        "point_labels": labels.astype(np.float32),
        "mask_input": (np.zeros((1, 1, LOW_RES, LOW_RES), np.float32) if previous is None
                       else np.ascontiguousarray(previous, np.float32)),
        "has_mask_input": np.array([0.0 if previous is None else 1.0], np.float32),
    }


def select_mask(scores: np.ndarray, multi: bool) -> int:
    """Of SAM's four masks (the one-prompt-answer first, then three candidates): the best-scored candidate when
    several were asked for, else the first — what ``Sam.mask_decoder(multimask_output=...)`` returns."""
    return int(np.argmax(scores[0, 1:])) + 1 if multi else 0


def decoder_core_session(sam: Any) -> Any:
    """An onnxruntime session of the checkpoint's prompt encoder and mask decoder (segment_anything's
    ``SamOnnxModel`` less its up-scaling: inputs as the decoder's but ``orig_im_size``; outputs the four masks'
    low-resolution logits and their scores), exported in memory: on a CPU it runs a click about twice as fast as
    torch does (docs/assist.md)."""
    import io
    import warnings

    import onnxruntime as ort
    import torch
    from segment_anything.utils.onnx import SamOnnxModel

    class _Core(SamOnnxModel):  # type: ignore[misc]
        def forward(self, image_embeddings: Any, point_coords: Any, point_labels: Any, mask_input: Any,
                    has_mask_input: Any) -> Any:
            return self.model.mask_decoder.predict_masks(
                image_embeddings=image_embeddings, image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=self._embed_points(point_coords, point_labels),
                dense_prompt_embeddings=self._embed_masks(mask_input, has_mask_input))

    grid = sam.prompt_encoder.image_embedding_size
    dummy = (torch.zeros(1, sam.prompt_encoder.embed_dim, *grid), torch.zeros(1, 3, 2), torch.zeros(1, 3),
             torch.zeros(1, 1, 4 * grid[0], 4 * grid[1]), torch.zeros(1))
    buf: Any = io.BytesIO()  # torch.onnx.export writes to a file-like object as well as to a path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Core(sam, return_single_mask=False).eval(), dummy, buf, dynamo=False, opset_version=17,
                          do_constant_folding=True, input_names=[n for n in DECODER_INPUTS if n != "orig_im_size"],
                          output_names=["low_res_masks", "iou_predictions"],
                          dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})
    return ort.InferenceSession(buf.getvalue(), _options(spin=False), providers=["CPUExecutionProvider"])


def load_onnx_pair(path: Path, *, device: str = "auto") -> SamOnnxPair:
    enc, dec = find_onnx_pair(path)
    model = SamOnnxPair(enc, dec, device=device)
    log.info("loaded the SAM ONNX pair %s + %s on %s", enc, dec, model.device)
    return model
