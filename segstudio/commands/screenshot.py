"""``segstudio screenshot --out FILE [DATASET] [--sample ID]``: render the main window offscreen to a PNG."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXAMPLES = """examples:
  segstudio screenshot --out window.png                      # the bundled sample
  segstudio screenshot ~/data/lungs --predictions ~/preds/lungs --view "gt|pred" --out review.png
"""

HELP = "render the main window offscreen to a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="dataset path (default: the bundled sample)")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to write")
    parser.add_argument("--sample", metavar="ID", help="sample id to show")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format")
    parser.add_argument("--predictions", metavar="DIR", help="folder of predicted masks")
    parser.add_argument("--view", default="single", choices=["single", "gt|pred", "before|after"],
                        help="canvas view mode")
    parser.add_argument("--size", default="1280x820", help="window size WxH (default 1280x820)")


def run(args: argparse.Namespace) -> int:
    # Offscreen unless a display was asked for explicitly: this command must work on a server.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from segstudio.gui.screenshot import render_main_window

    w, h = (int(v) for v in args.size.lower().split("x"))
    out = render_main_window(args.out, dataset=args.dataset, format_name=args.format, sample_id=args.sample,
                             predictions=args.predictions, size=(w, h), view=args.view)
    print(f"wrote {out}")
    return 0
