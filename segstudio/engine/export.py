"""ONNX export of a checkpoint, with an onnxruntime parity check.

The graph maps the normalised image ``(N, C, H, W) float32`` (batch, height and width dynamic) to logits
``(N, out_channels, H, W)``; the checkpoint's ``config.json`` (classes, task, preprocessing, thresholds) rides
along in the model's metadata under ``segstudio_config``, so the ``.onnx`` file describes itself like the
checkpoint does. The graph holds the network only: a program that runs it outside segstudio prepares each image
as that ``preprocessing`` says (with ``crop="content"``: to 8 bits, cropped to ``core.content.content_box``,
background outside the box, as ``Predictor`` does). The parity check runs the same inputs through torch and
onnxruntime (CPU) and reports the largest absolute difference of the logits.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segstudio.core.atomic import atomic_write_bytes, sweep_stale_temps
from segstudio.core.errors import SegstudioError, io_error
from segstudio.engine.checkpoint import Checkpoint, load_checkpoint

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: logits of float32 networks agree to ~1e-5 between runtimes; 1e-3 leaves room for deep ones
DEFAULT_TOLERANCE = 1e-3


class ExportError(SegstudioError):
    """The export failed, or the exported graph disagrees with the checkpoint."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    opset: int
    input_shape: tuple[int, ...]
    #: largest |torch - onnxruntime| over the logits of the check inputs (None: not checked)
    max_abs_diff: float | None
    tolerance: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff is not None and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "opset": self.opset,
            "input_shape": list(self.input_shape),
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
        }


def _check_inputs(ckpt: Checkpoint, *, seed: int) -> list[np.ndarray]:
    """Inputs like the network meets: the training size, and a non-square one to exercise the dynamic axes."""
    s = ckpt.preprocessing.image_size
    c = ckpt.preprocessing.in_channels
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=g).numpy(), torch.randn(1, c, s // 2 + 32, s, generator=g).numpy()]


def _export(model: torch.nn.Module, example: torch.Tensor, f: Any, *, opset: int) -> None:
    with warnings.catch_warnings():
        # the TorchScript exporter is the one that needs no extra packages (the dynamo one wants onnxscript)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            f,
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}},
        )


class OnnxRuntimeModel(torch.nn.Module):
    """A checkpoint's network run by onnxruntime on the CPU, callable like the torch model
    (``(N, C, H, W) float32`` tensor in, logits tensor out): the ``onnxruntime`` inference backend."""

    def __init__(self, ckpt: Checkpoint, *, opset: int = DEFAULT_OPSET, threads: int = 0) -> None:
        import io

        import onnxruntime as ort

        super().__init__()
        buf = io.BytesIO()
        model = ckpt.model.to("cpu").eval()
        s, c = ckpt.preprocessing.image_size, ckpt.preprocessing.in_channels
        try:
            _export(model, torch.zeros(1, c, s, s), buf, opset=opset)
        except (RuntimeError, ValueError, TypeError) as e:
            raise ExportError(f"The model cannot run on onnxruntime: its ONNX export failed ({e}).", path=ckpt.path,
                              fix="Use the torch backend.") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out)


def parity(onnx_path: str | Path | bytes, ckpt: Checkpoint, *, seed: int = 0) -> float:
    """Largest absolute logit difference between onnxruntime (CPU) and torch on the check inputs
    (``onnx_path``: the file, or the serialized model)."""
    import onnxruntime as ort

    source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    model = ckpt.model.to("cpu").eval()
    worst = 0.0
    with torch.inference_mode():
        for x in _check_inputs(ckpt, seed=seed):
            ref = model(torch.from_numpy(x)).float().numpy()
            got = session.run(None, {name: x})[0]
            if got.shape != ref.shape:
                raise ExportError(f"The ONNX graph returns {got.shape}, torch {ref.shape}.",
                                  path=None if isinstance(onnx_path, bytes) else Path(onnx_path))
            worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export_onnx(
    checkpoint: str | Path | Checkpoint,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Write ``out`` (``.onnx``) from a checkpoint folder (or a loaded checkpoint) and check it.

    Raises ``ExportError`` when the export fails or the parity check exceeds ``tolerance``.
    """
    import io

    import onnx

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, device="cpu")
    out_path = Path(out).expanduser()
    if out_path.is_dir():
        raise ExportError("The ONNX output path is a folder.", path=out_path,
                          fix=f"Give a file name, e.g. {out_path / 'model.onnx'}.")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise io_error(e, out_path, action="create the folder of") from e
    model = ckpt.model.to("cpu").eval()
    s, c = ckpt.preprocessing.image_size, ckpt.preprocessing.in_channels
    example = torch.zeros(1, c, s, s)
    t0 = time.perf_counter()
    try:
        buf = io.BytesIO()
        _export(model, example, buf, opset=opset)
        proto = onnx.load_from_string(buf.getvalue())
        meta = proto.metadata_props.add()
        meta.key = "segstudio_config"
        meta.value = json.dumps(ckpt.info, default=str)
        proto.producer_name = "segstudio"
        data = proto.SerializeToString()
    except (RuntimeError, ValueError, TypeError) as e:
        raise ExportError(
            f"The model could not be exported to ONNX ({e}).",
            path=ckpt.path,
            fix=f"Try another opset (--opset), or an architecture the ONNX exporter supports; opset was {opset}.",
        ) from e
    # checked before it is written: a graph that disagrees never replaces a previous export
    diff = parity(data, ckpt) if check else None
    report = ExportReport(out_path, opset, (1, c, s, s), diff, tolerance, time.perf_counter() - t0)
    if check and not report.passed:
        raise ExportError(
            f"The exported graph disagrees with the checkpoint: max |difference| {diff:.3g} > {tolerance:g}; "
            "nothing was written.",
            path=out_path,
            fix="Try another opset (--opset) or report the architecture.",
        )
    # written whole, atomically: a reader (or a kill -9) sees the previous file or the new one, never a torn one
    sweep_stale_temps(out_path.parent, recursive=False)
    atomic_write_bytes(out_path, data)
    log.info("exported %s (max abs diff %s)", out_path, diff)
    return report


def read_metadata(onnx_path: str | Path) -> dict[str, object]:
    """The checkpoint config stored in an exported model."""
    import onnx

    path = Path(onnx_path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise io_error(e, path, action="read") from e
    except Exception as e:  # protobuf's DecodeError and friends: a damaged or foreign file
        raise ExportError(f"This is not a readable ONNX file ({type(e).__name__}).", path=path,
                          fix="Export it again with segstudio export-onnx.") from None
    for p in proto.metadata_props:
        if p.key == "segstudio_config":
            try:
                doc = json.loads(p.value)
            except (ValueError, RecursionError):
                doc = None
            if not isinstance(doc, dict):
                raise ExportError("The segstudio_config of this ONNX file is damaged.", path=path,
                                  fix="Export it again with segstudio export-onnx.")
            return doc
    raise ExportError("This ONNX file was not exported by segstudio (no segstudio_config).", path=Path(onnx_path))
