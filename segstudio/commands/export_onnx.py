"""``segstudio export-onnx CHECKPOINT --out FILE``: ONNX graph + onnxruntime parity check (max abs diff)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES = """examples:
  segstudio export-onnx runs/lungs/checkpoints/best --out lungs.onnx
  segstudio export-onnx runs/lungs/checkpoints/best --out lungs.onnx --opset 18 --json
"""

HELP = "export a checkpoint to ONNX with a parity check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (RUN_DIR/checkpoints/best)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted |torch - onnxruntime| logit difference")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def run(args: argparse.Namespace) -> int:
    from segstudio.engine.export import export_onnx

    report = export_onnx(args.checkpoint, args.out, opset=args.opset, check=not args.no_check, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.max_abs_diff is None:
        print(f"wrote {report.path} (opset {report.opset}; not checked) in {report.seconds:.1f}s")
    else:
        print(f"wrote {report.path} (opset {report.opset}); onnxruntime parity: max abs diff "
              f"{report.max_abs_diff:.2e} (tolerance {report.tolerance:g}) in {report.seconds:.1f}s")
    return 0
