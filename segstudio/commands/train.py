"""``segstudio train DATASET (--config FILE | --recipe NAME) [--set key=value ...] --out RUN_DIR``.

The progress bar is rendered from the trainer's events (the same ones the GUI gets). The first Ctrl+C asks the
trainer to stop after the current batch and keeps the last checkpoint; a second one aborts at once.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

HELP = "train a model on a dataset (recipe or config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset folder or annotation file (format detected)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, metavar="FILE", help="training config JSON (a run's train_config.json works)")
    src.add_argument("--recipe", metavar="NAME", help="built-in recipe: lungs-lr, lesion, road, facade, bones")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set epochs=1 --set image_size=128 --set model.encoder=resnet18 "
        "--set loss.terms=0.5*ce+0.5*dice (repeatable)",
    )
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder (checkpoints, curves)")
    parser.add_argument(
        "--workspace", type=Path, metavar="DIR",
        help="train on the corrections saved in this workspace too (a correction replaces its sample's GT)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print one line per epoch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _fmt_time(s: float | None) -> str:
    if s is None or math.isnan(s):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class ProgressBar:
    """One-line bar on a terminal (``\\r`` redraws), plain lines otherwise."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not quiet
        self.quiet = quiet
        self.last_draw = 0.0

    def batch(self, ev: Any) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.1 and ev.step != ev.steps:
            return
        self.last_draw = now
        width = 24
        done = int(width * ev.step / max(ev.steps, 1))
        bar = "#" * done + "-" * (width - done)
        self.stream.write(
            f"\repoch {ev.epoch + 1} [{bar}] {ev.step}/{ev.steps} loss {ev.loss:.4f} lr {ev.lr:.2e} eta {_fmt_time(ev.eta_s)}"
        )
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _load_config(args: argparse.Namespace) -> Any:
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.recipes import load_recipe

    if args.config is not None:
        cfg = TrainConfig.load(args.config)
    elif args.recipe is not None:
        cfg = load_recipe(args.recipe)
    elif args.resume and (args.out / "train_config.json").is_file():
        cfg = TrainConfig.load(args.out / "train_config.json")
    else:
        cfg = TrainConfig()
    return cfg.with_overrides(args.overrides)


def run(args: argparse.Namespace) -> int:
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.events import BatchEnd, CheckpointSaved, EpochEnd, Finished, RunStarted
    from segstudio.engine.train import train

    cfg = _load_config(args)
    dataset = open_dataset(args.dataset, format=args.format)
    corrections = None
    if args.workspace is not None:
        from segstudio.engine.data import corrections_from
        from segstudio.workspace.workspace import Workspace

        # read-only: training only reads the corrections (lazily, while it runs), so it can run beside the app
        # that holds the workspace
        corrections = corrections_from(Workspace(args.workspace, read_only=True).versions)
    cancel = CancelToken()
    bar = ProgressBar(sys.stderr, quiet=args.quiet)

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        bar.line("stopping after this batch (Ctrl+C again to abort)...")

    events = train(cfg, dataset, run_dir=args.out, cancel=cancel, corrections=corrections, resume=args.resume)
    # signal handlers can only be installed from the main thread (a scripted caller may be elsewhere)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    finished = None
    try:
        for ev in events:
            if isinstance(ev, RunStarted):
                bar.line(
                    f"training {cfg.model.architecture}/{cfg.model.encoder} ({ev.mode}: {', '.join(ev.class_names)}) on "
                    f"{ev.device}: {ev.train_samples} train / {ev.val_samples} val samples ({ev.split_source}), "
                    f"epochs {ev.start_epoch + 1}..{ev.epochs}, {ev.steps_per_epoch} steps each"
                )
            elif isinstance(ev, BatchEnd):
                bar.batch(ev)
            elif isinstance(ev, EpochEnd):
                val = "" if ev.val_loss is None else f" val_loss {ev.val_loss:.4f} dice {ev.dice:.4f} iou {ev.iou:.4f}"
                per = " ".join(f"{c.name}={c.dice:.3f}" for c in ev.per_class)
                bar.line(
                    f"epoch {ev.epoch + 1}: loss {ev.train_loss:.4f}{val}{' [' + per + ']' if per else ''} "
                    f"({ev.seconds:.1f}s, eta {_fmt_time(ev.eta_s)}){' *' if ev.improved else ''}"
                )
            elif isinstance(ev, CheckpointSaved) and ev.kind != "last":
                bar.line(f"saved {ev.kind} checkpoint: {ev.path}")
            elif isinstance(ev, Finished):
                finished = ev
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    if finished is None:  # pragma: no cover - the generator always ends with Finished
        return 1
    if finished.cancelled:
        print(
            f"stopped after {finished.epochs_completed} complete epoch(s); last checkpoint: {finished.last_checkpoint}\n"
            f"resume with: segstudio train {args.dataset} --out {args.out} --resume"
        )
        return 130
    best = "n/a" if finished.best_monitor is None else f"{finished.best_monitor:.4f}"
    print(
        f"done: {finished.epochs_completed} epoch(s) in {finished.train_seconds:.1f}s"
        f"{' (early stop)' if finished.stopped_early else ''}; best {cfg.monitor} {best}\n"
        f"best checkpoint: {finished.best_checkpoint}\nlast checkpoint: {finished.last_checkpoint}\n"
        f"curves: {args.out / 'curves.csv'}, {args.out / 'curves.png'}"
    )
    return 0
