"""``segstudio predict CHECKPOINT DATASET --out DIR``: run a checkpoint (or an ensemble) over a dataset.

Masks are written one file per sample, named like the image (``--layout index``, the layout
``segstudio DATASET --predictions DIR`` shows), or one 0/255 PNG per class folder (``--layout class-folders``).
Ctrl+C stops after the current batch; what was written stays.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode
from segstudio.engine.config import INFER_TTA, INFER_TTA_GROUPS

EXAMPLES = """examples:
  segstudio predict runs/lungs/checkpoints/best ~/data/lungs --out ~/preds/lungs
  segstudio ~/data/lungs --predictions ~/preds/lungs        # then review them in the app
  segstudio predict runs/a/checkpoints/best ~/data/road --ensemble runs/b/checkpoints/best --mode tile \\
      --tta hflip --post keep_largest --out /tmp/road-preds --progress json 2> progress.jsonl
"""

HELP = "run a checkpoint over a dataset and write masks"


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``predict`` and ``evaluate``."""
    g = parser.add_argument_group(
        "inference", "By default the checkpoint's recommended inference (its config's `infer`: mode, TTA, "
        "post-processing), as the app runs it; each flag below replaces its part, --plain starts from none.")
    g.add_argument("--ensemble", action="append", default=[], type=Path, metavar="CHECKPOINT",
                   help="another checkpoint averaged with the first (repeatable; same classes)")
    g.add_argument("--plain", action="store_true",
                   help="the plain network: resize, no TTA, no post-processing (then add what you want)")
    g.add_argument("--mode", choices=("resize", "tile", "native"), default=None,
                   help="resize: whole image at the training size; tile: sliding windows; native: whole image at "
                   "its own size (default: the checkpoint's, usually resize)")
    g.add_argument("--tile-size", type=int, metavar="PX", help="window side for --mode tile (default: training size)")
    g.add_argument("--overlap", type=float, default=None, help="window overlap for --mode tile (default 0.25)")
    g.add_argument("--scale", type=float, default=None, help="resize factor before tiling (default 1)")
    g.add_argument("--tta", action="append", default=None, choices=(*INFER_TTA, *INFER_TTA_GROUPS),
                   help="test-time augmentation: flips, quarter turns, transposes, or d4 for all seven (repeatable; "
                   "replaces the checkpoint's)")
    g.add_argument("--post", action="append", default=None, metavar="STEP",
                   help="post-processing: keep_largest[:k=N], fill_holes, min_area:pixels=N, "
                   "thresholds:CLASS=VALUE (repeatable, applied in order; replaces the checkpoint's; "
                   "--post none for none)")
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    g.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="what runs the network: auto (default: onnxruntime on the CPU, torch on a GPU), torch, onnxruntime")
    g.add_argument("--workspace", type=Path, metavar="DIR",
                   help="cache masks per (sample, checkpoint) in this workspace; predict also stores the figures the "
                   "review queue ranks by (Dice vs the correction or GT, uncertainty, change since the last model)")


def inference_options(args: argparse.Namespace, *, probabilities: bool = False, uncertainty: bool = False) -> Any:
    """The checkpoint's recommended inference (``--plain``: none), with the flags given on top."""
    import dataclasses

    from segstudio.engine.postprocess import parse_step
    from segstudio.engine.predictor import InferenceOptions, recommended_options

    settings = {"batch_size": args.batch_size, "device": args.device, "probabilities": probabilities,
                "uncertainty": uncertainty, "backend": args.backend}
    from segstudio.engine.checkpoint import CONFIG_FILE

    # no config to read: plain, and loading the checkpoint says what is wrong with it
    plain = args.plain or not (Path(args.checkpoint) / CONFIG_FILE).is_file()
    base = InferenceOptions(**settings) if plain else recommended_options(args.checkpoint, **settings)
    given: dict[str, Any] = {}
    if args.mode is not None:
        given["mode"] = args.mode
    if args.tile_size is not None:
        given["tile_size"] = args.tile_size
    if args.overlap is not None:
        given["overlap"] = args.overlap
    if args.scale is not None:
        given["scale"] = args.scale
    if args.tta is not None:
        given["tta"] = tuple(args.tta)
    if args.post is not None:
        given["post"] = tuple(parse_step(s) for s in args.post if s.strip().lower() != "none")
    return dataclasses.replace(base, **given) if given else base


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (RUN_DIR/checkpoints/best)")
    parser.add_argument("dataset", help="dataset folder or annotation file (format detected)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the predicted masks")
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--layout", choices=("index", "class-folders"), default="index",
                        help="index: one mask per image, named like it (default; what --predictions reads); "
                        "class-folders: one 0/255 PNG per class folder")
    parser.add_argument("--split", metavar="NAME", help="only this split (val: the checkpoint's validation hold-out)")
    parser.add_argument("--probabilities", type=Path, metavar="DIR", help="also write (K, H, W) float16 probabilities (.npz)")
    parser.add_argument("--uncertainty", type=Path, metavar="DIR", help="also write per-pixel entropy as 8-bit PNGs")
    add_inference_arguments(parser)
    add_progress_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def run(args: argparse.Namespace) -> int:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.evaluate import select_samples
    from segstudio.engine.infer import Prediction, predict
    from segstudio.engine.outputs import PredictionWriter
    from segstudio.engine.predictor import Predictor

    # with a workspace, the uncertainty is measured as in the app: the review queue ranks by it
    opts = inference_options(args, probabilities=args.probabilities is not None,
                             uncertainty=args.uncertainty is not None or args.workspace is not None)
    predictor = Predictor.load([args.checkpoint, *args.ensemble], options=opts)
    dataset = open_dataset(args.dataset, format=args.format)
    samples = (dataset.samples if args.split in (None, "all")
               else select_samples(dataset, args.split, checkpoint=predictor.members[0].checkpoint))
    own = dataset.schema
    if own.multilabel != predictor.schema.multilabel or set(own.ids) != set(predictor.schema.ids):
        print(f"note: the masks use the checkpoint's classes {[c.name for c in predictor.schema]}, not the dataset's "
              f"{[c.name for c in own]}", file=sys.stderr)
    writer = PredictionWriter(args.out, dataset, layout=args.layout, probabilities=args.probabilities,
                              uncertainty=args.uncertainty)
    workspace = None
    if args.workspace is not None:
        from segstudio.commands.workspace_arg import open_cache_workspace

        workspace = open_cache_workspace(args.workspace, dataset_root=dataset.root,
                                         dataset_format=dataset.format_name)
    scorer = None
    if workspace is not None and not workspace.read_only:
        from segstudio.engine.infer import checkpoint_id, model_stamp
        from segstudio.engine.workspace_predict import WorkspaceScorer

        # the same figures the app stores per prediction (Dice against the correction or GT, uncertainty, change
        # since the previous model), so that `segstudio queue` and the app's queue rank these predictions
        scorer = WorkspaceScorer(workspace, dataset, checkpoint_id=checkpoint_id(predictor),
                                 stamp=model_stamp(predictor), sample_ids=[s.id for s in samples])
    cancel = CancelToken()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel()) if main_thread else None
    failed, done, cached = 0, 0, 0
    t0 = time.perf_counter()
    bar = Progress("predict", mode=progress_mode(args))
    # a crop is how the model was trained, not an inference option: --plain keeps it
    crops = sorted({m.checkpoint.preprocessing.crop for m in predictor.members} - {"none"})
    bar.note(f"inference: {opts.describe()}"
             + ("" if args.plain else " (the checkpoint's recommended; --plain for none)")
             + "".join(f"; each image cropped to its {c} box, as in training" for c in crops))
    try:
        for r in predict(dataset, predictor, samples=samples, cancel=cancel, workspace=workspace):
            if isinstance(r, Prediction):
                writer.write(r.sample_id, r.mask, probabilities=r.probabilities, uncertainty=r.uncertainty,
                             class_ids=predictor.task.class_ids, class_names=predictor.task.class_names)
                if scorer is not None:
                    scorer.finish(r)
                done += 1
                cached += r.cached
            else:
                failed += 1
                bar.note(f"failed: {r.sample_id}: {r.message}")
            bar.update(r.index + 1, r.total)
    finally:
        bar.close(written=done, failed=failed, cached=cached, cancelled=cancel.cancelled)
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        if workspace is not None:
            workspace.close()
    secs = time.perf_counter() - t0
    state = "stopped early: " if cancel.cancelled else ""
    print(f"{state}{done} masks written to {args.out} in {secs:.1f}s on {predictor.device}"
          f"{f' ({cached} from the workspace cache)' if cached else ''}{f', {failed} failed' if failed else ''}")
    if args.layout == "index":
        print(f"view them: segstudio {args.dataset} --predictions {args.out}")
    # docs/cli.md: 130 interrupted (Ctrl+C stops after the current batch), 1 done but some samples failed (listed)
    return 130 if cancel.cancelled else (1 if failed else 0)
