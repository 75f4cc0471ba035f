"""``segstudio train DATASET (--config FILE | --recipe NAME) [--set key=value ...] --out RUN_DIR``.

The progress bar is rendered from the trainer's events (the same ones the GUI gets). The first Ctrl+C (or
SIGTERM, or a file named ``STOP`` in the run folder) asks the trainer to stop after the current batch and keeps the
last checkpoint; a second Ctrl+C aborts at once.

Under ``torchrun`` every process runs this command (``engine.distributed``): rank 0 shows the progress and writes
the run folder, and each process says at the end which weights it holds (``process R of N: ... sha256``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, ctrl_c_cancels, progress_mode

EXAMPLES = """examples:
  segstudio train ~/data/lungs --recipe lungs-lr --out runs/lungs
  segstudio train ~/data/lungs --recipe lungs-lr --set epochs=5 --set image_size=256 --out runs/quick
  segstudio train ~/data/lungs --workspace ~/data/lungs.segstudio --recipe lungs-lr --out runs/corrected
  segstudio train ~/data/lungs --workspace ~/data/lungs.segstudio --recipe lungs-lr   # a run of the workspace
  segstudio train ~/data/lungs --out runs/lungs --resume          # continue after Ctrl+C
  touch runs/lungs/STOP                                            # stop a run cleanly from elsewhere
  torchrun --standalone --nproc-per-node=4 -m segstudio train ~/data/lungs --recipe lungs-lr --out runs/lungs4
"""

#: a file of this name in the run folder stops the run after the current batch (removed when the run resumes)
STOP_FILE = "STOP"

HELP = "train a model on a dataset (recipe or config)"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """DATASET, --config | --recipe and --set: how `train` (and `cv`) get a training config."""
    parser.add_argument("dataset", help="dataset folder or annotation file (format detected)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, metavar="FILE", help="training config JSON (a run's train_config.json works)")
    src.add_argument("--recipe", metavar="NAME", help="built-in recipe: lungs-lr, lesion, road, facade, bones")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set epochs=1 --set image_size=128 --set model.encoder=resnet18 "
        "--set loss.terms=0.5*ce+0.5*dice (repeatable)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--format", dest="format", metavar="NAME", help="dataset format, when detection is ambiguous")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR",
                        help="run folder (checkpoints, curves); without it, --workspace keeps the run in the workspace")
    parser.add_argument(
        "--workspace", type=Path, metavar="DIR",
        help="train on the corrections saved in this workspace too (a correction replaces its sample's GT); without "
        "--out the run is recorded in the workspace (its run history) and becomes its model when it has none",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    add_progress_arguments(parser, quiet_help="no progress bar; print one line per epoch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _fmt_time(s: float | None) -> str:
    if s is None or math.isnan(s):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class EpochProgress:
    """The trainer's events on the progress adapter: one bar per epoch (batches, loss, lr, the run's ETA);
    ``line`` writes a summary line (epoch results, checkpoints) on stderr without breaking the bar."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.bar: Progress | None = None
        self.epoch: int | None = None
        self.lines = Progress("train", mode=mode)  # its lines when no epoch bar is open

    def batch(self, ev: Any) -> None:
        if self.bar is None or self.epoch != ev.epoch:
            self.end_epoch()
            self.epoch = ev.epoch
            self.bar = Progress(f"epoch {ev.epoch + 1}", ev.steps, mode=self.mode, unit="batch")
        self.bar.update(ev.step, ev.steps, eta_s=ev.eta_s, loss=float(ev.loss), lr=float(ev.lr))

    def end_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def line(self, text: str) -> None:
        (self.bar or self.lines).note(text)

    def close(self) -> None:
        self.end_epoch()
        self.lines.close()


def report_event(bar: EpochProgress, ev: Any, *, model: str) -> None:
    """One trainer event on the progress bar or as a line (``train`` and ``retrain`` show a run the same way)."""
    from segstudio.engine.events import BatchEnd, CheckpointSaved, EpochEnd, RunStarted

    if isinstance(ev, RunStarted):
        bar.line(
            f"training {model} ({ev.mode}: {', '.join(ev.class_names)}) on "
            f"{ev.device} ({ev.precision}): {ev.train_samples} train / {ev.val_samples} val samples ({ev.split_source}), "
            f"epochs {ev.start_epoch + 1}..{ev.epochs}, {ev.steps_per_epoch} steps each"
        )
    elif isinstance(ev, BatchEnd):
        bar.batch(ev)
    elif isinstance(ev, EpochEnd):
        bar.end_epoch()
        val = "" if ev.val_loss is None else f" val_loss {ev.val_loss:.4f} dice {ev.dice:.4f} iou {ev.iou:.4f}"
        per = " ".join(f"{c.name}={c.dice:.3f}" for c in ev.per_class)
        bar.line(
            f"epoch {ev.epoch + 1}: loss {ev.train_loss:.4f}{val}{' [' + per + ']' if per else ''} "
            f"({ev.seconds:.1f}s, eta {_fmt_time(ev.eta_s)}){' *' if ev.improved else ''}"
        )
    elif isinstance(ev, CheckpointSaved) and ev.kind != "last":
        bar.line(f"saved {ev.kind} checkpoint: {ev.path}")


def refuse_under_torchrun(command: str, fix: str) -> None:
    """``command`` trains several runs one after another in one process: under torchrun every process would write
    the same folders. Refused there, with how to launch its runs instead (``docs/cluster.md``)."""
    from segstudio.engine.distributed import World

    if World.from_env().active:
        from segstudio.core.errors import SegstudioError

        raise SegstudioError(f"segstudio {command} is not run under torchrun.", fix=fix)


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


def _run_in_workspace(args: argparse.Namespace, cfg: Any, dataset: Any) -> int:
    """A run recorded in the workspace, as the app records one: ``runs/<id>/``, its status followed, and it becomes
    the workspace's model when the workspace has none."""
    import math

    from segstudio.commands.loop_workspace import take_workspace
    from segstudio.engine.data import corrections_from, excluding
    from segstudio.workspace import ReviewStatus, RunStatus
    from segstudio.workspace.models import run_checkpoint

    if args.resume:
        from segstudio.core.errors import SegstudioError

        raise SegstudioError("--resume needs the run folder.", fix="Add --out <workspace>/runs/<run id> --resume.")
    ws = take_workspace(args.workspace.expanduser(), root=Path(dataset.root), dataset=dataset)
    try:
        rec = ws.runs.create(cfg.to_dict(), name=cfg.name or cfg.model.architecture)
        args.out = rec.folder
        ws.runs.update(rec.id, status=RunStatus.RUNNING)
        try:
            rc, finished = _train(args, cfg, excluding(dataset, ws.reviews.with_status(ReviewStatus.REJECTED)),
                                  corrections_from(ws.versions))
        except BaseException as exc:
            ws.runs.update(rec.id, status=RunStatus.FAILED, message=str(exc).splitlines()[0] if str(exc) else "failed")
            raise
        best = finished.best_monitor if finished is not None else None
        ok = best is not None and math.isfinite(best)
        status = RunStatus.CANCELLED if finished is None or finished.cancelled else RunStatus.FINISHED
        epochs = finished.epochs_completed if finished is not None else 0
        ws.runs.update(rec.id, status=status, message=f"{epochs} epoch(s) from the command line",
                       best_metric=best if ok else None, best_metric_name=cfg.monitor if ok else None)
        model = run_checkpoint(rec.folder)
        if status is RunStatus.FINISHED and ws.models.current() is None and model is not None:
            ws.models.adopt(model, run_id=rec.id, reason="the workspace's first model (segstudio train)")
            print(f"the workspace's current model: {model}")
        print(f"run {rec.id} recorded in the workspace {ws.folder}")
        return rc
    finally:
        ws.close()


def run(args: argparse.Namespace) -> int:
    from segstudio.datasets.registry import open_dataset

    cfg = _load_config(args)
    dataset = open_dataset(args.dataset, format=args.format)
    corrections = None
    if args.out is None:
        from segstudio.engine.distributed import World

        if World.from_env().active:
            from segstudio.core.errors import SegstudioError

            raise SegstudioError("A run of several processes (torchrun) needs its run folder named.",
                                 fix="Add --out RUN_DIR (on a file system every node shares), then bring the run "
                                 "into the workspace with segstudio models import.")
        if args.workspace is None:
            from segstudio.core.errors import SegstudioError

            raise SegstudioError("Say where the run goes.", fix="Add --out RUN_DIR, or --workspace DIR to keep the "
                                 "run in a workspace's run history.")
        return _run_in_workspace(args, cfg, dataset)
    if args.workspace is not None:
        from segstudio.engine.data import corrections_from, excluding
        from segstudio.workspace import ReviewStatus
        from segstudio.workspace.workspace import Workspace

        # read-only: training only reads the corrections (lazily, while it runs), so it can run beside the app
        # that holds the workspace; the labels rejected there do not train
        held = Workspace(args.workspace, read_only=True)
        corrections = corrections_from(held.versions)
        dataset = excluding(dataset, held.reviews.with_status(ReviewStatus.REJECTED))
    return _train(args, cfg, dataset, corrections)[0]


def _train(args: argparse.Namespace, cfg: Any, dataset: Any, corrections: Any) -> tuple[int, Any]:
    """Train with the progress bar and Ctrl+C handling; ``(exit status, Finished event or None)``."""
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.distributed import World
    from segstudio.engine.events import BatchEnd, Finished
    from segstudio.engine.train import train

    cancel = CancelToken()
    world = World.from_env()
    bar = EpochProgress(progress_mode(args) if world.is_main else "none")  # rank 0 speaks for the run
    stop_file = Path(args.out) / STOP_FILE
    if args.resume and world.is_main and stop_file.is_file():
        stop_file.unlink()  # the request that stopped the run, not one for this session

    events = train(cfg, dataset, run_dir=args.out, cancel=cancel, corrections=corrections, resume=args.resume)
    finished = None
    with ctrl_c_cancels(cancel, bar.line, sigterm=True):
        try:
            for ev in events:
                if isinstance(ev, Finished):
                    finished = ev
                else:
                    if world.is_main:
                        report_event(bar, ev, model=cfg.model.describe())
                    if isinstance(ev, BatchEnd) and not cancel.cancelled and stop_file.exists():
                        cancel.cancel()
                        bar.line(f"{stop_file} found: stopping after this batch...")
        finally:
            bar.close()
    if finished is None:  # pragma: no cover - the generator always ends with Finished
        return 1, None
    if world.active:
        print(f"process {world.rank} of {world.size}: {finished.epochs_completed} epoch(s), "
              f"{'stopped' if finished.cancelled else 'done'}, weights sha256 {finished.weights_digest}", flush=True)
        if not world.is_main:
            return (130 if finished.cancelled else 0), finished
    if finished.cancelled:
        print(
            f"stopped after {finished.epochs_completed} complete epoch(s); last checkpoint: {finished.last_checkpoint}\n"
            f"resume with: segstudio train {args.dataset} --out {args.out} --resume"
        )
        return 130, finished
    if finished.best_monitor is not None:
        best = f"; best {cfg.monitor} {finished.best_monitor:.4f}"
    elif cfg.data.val_fraction <= 0:
        best = "; no validation hold-out (every image trained): segstudio cv estimates the recipe on unseen images"
    else:
        best = f"; best {cfg.monitor} n/a"
    lines = [f"best checkpoint: {finished.best_checkpoint}"] if finished.best_checkpoint else []
    lines.append(f"last checkpoint: {finished.last_checkpoint}")
    if finished.swa_checkpoint:
        lines.append(f"swa checkpoint: {finished.swa_checkpoint}")
    rows = "\n".join(lines)
    print(
        f"done: {finished.epochs_completed} epoch(s) in {finished.train_seconds:.1f}s"
        f"{' (early stop)' if finished.stopped_early else ''}{best}\n{rows}\n"
        f"the model (best, else swa, else last): {finished.model_checkpoint}\n"
        f"curves: {args.out / 'curves.csv'}, {args.out / 'curves.png'}"
    )
    return 0, finished
