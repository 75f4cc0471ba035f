"""``segstudio retrain WORKSPACE``: one retraining round, headless — the same round the app's Retrain button runs.

The workspace's current model is fine-tuned on the GT and the saved corrections (reviewed images weighted), both
models are scored on the frozen validation split, and the promotion gate judges: the verdict, its interval and the
per-class changes are printed, recorded in the model registry and kept in the round's run folder. A model the gate
lets through is promoted (unless ``--no-promote`` or the workspace's ``auto_promote`` is off); a refused or
unproven one leaves the current model in place (``segstudio models promote WORKSPACE RUN`` overrides it, on the
record).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from segstudio.commands.loop_workspace import add_workspace_argument, open_loop
from segstudio.commands.progress import add_progress_arguments, ctrl_c_cancels, progress_mode

EXAMPLES = """examples:
  segstudio retrain ~/data/lungs.segstudio
  segstudio retrain ~/data/lungs --epochs 10 --reviewed-weight 3 --author "dr. k"
  segstudio retrain ~/data/lungs.segstudio --no-promote --json > round.json
"""

HELP = "fine-tune the current model on the corrections, judge it with the promotion gate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workspace_argument(parser)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of fine-tuning (default 5)")
    parser.add_argument("--reviewed-weight", type=float, metavar="W",
                        help="how often a corrected or accepted image is drawn, relative to one with its original "
                        "GT (default: the workspace's setting; a value given here becomes the setting)")
    parser.add_argument("--lr-scale", type=float, default=0.2, help="fraction of the model's learning rate (0.2)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps (default: the model's config)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-promote", action="store_true",
                        help="judge only: record the verdict, leave the promotion to a person")
    parser.add_argument("--author", default="", help="name recorded with the round's decision")
    parser.add_argument("--json", action="store_true", help="print the round's comparison.json on stdout")
    add_progress_arguments(parser, quiet_help="no progress bar; print one line per epoch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to the console")


def _num(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.4f}"


def print_verdict(comp: Any) -> None:
    g = comp.gate
    print(f"{comp.metric} on {len(comp.val_ids)} validation image(s): current {_num(comp.before_value)} → "
          f"retrained {_num(comp.after_value)}")
    if math.isfinite(g.mean_delta):
        print(f"mean per-image Dice change {g.mean_delta:+.4f}, {g.thresholds.confidence:.0%} interval "
              f"[{g.ci_low:+.4f}, {g.ci_high:+.4f}] over {g.images} image(s)")
    width = max([len(c.name) for c in g.per_class] + [5])
    print(f"{'class':<{width}}  {'before':>7}  {'after':>7}  {'change':>7}  gate")
    for c in g.per_class:
        word = f"worse by more than {g.thresholds.class_margin:.3f}" if c.regressed else "ok"
        change = f"{c.delta:+.4f}" if math.isfinite(c.delta) else "—"
        print(f"{c.name:<{width}}  {_num(c.before):>7}  {_num(c.after):>7}  {change:>7}  {word}")
    print(f"verdict: {g.verdict.label} — {g.reason}")


def run(args: argparse.Namespace) -> int:
    from segstudio.commands.train import EpochProgress, report_event
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.events import Finished, RetrainCompared, RetrainProgress
    from segstudio.engine.retrain import Decision, comparison_doc, plan_round, run_round

    ws, dataset = open_loop(args)
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        plan = plan_round(ws, epochs=args.epochs, reviewed_weight=args.reviewed_weight, lr_scale=args.lr_scale,
                          device=args.device, author=args.author, auto_promote=False if args.no_promote else None)
        bar = EpochProgress(progress_mode(args))
        bar.line(f"retraining round {plan.run.id} from {plan.base.checkpoint}")
        cancel = CancelToken()
        comp: RetrainCompared | None = None
        with ctrl_c_cancels(cancel, bar.line):
            try:
                for ev in run_round(ws, dataset, plan, cancel=cancel):
                    if isinstance(ev, RetrainCompared):
                        comp = ev
                    elif isinstance(ev, RetrainProgress):
                        if ev.index == 0:
                            bar.end_epoch()
                            bar.line(f"scoring the {ev.model} model on {ev.total} validation image(s)")
                    elif not isinstance(ev, Finished):
                        report_event(bar, ev, model=plan.config.model.describe())
            finally:
                bar.close()
        if comp is None:
            print(f"stopped: nothing was compared; the current model stays ({plan.base.checkpoint})")
            return 130
        if args.json:
            print(json.dumps(comparison_doc(comp), indent=2, default=str))
        else:
            print_verdict(comp)
            what = {Decision.PROMOTED: f"promoted: {comp.new_checkpoint} is the current model",
                    Decision.AWAITING: f"not promoted (--no-promote / auto_promote off); promote it with: "
                                       f"segstudio models promote {args.workspace} {comp.run_id}",
                    Decision.KEPT: f"the current model stays; to promote the retrained one anyway (recorded as your "
                                   f"decision): segstudio models promote {args.workspace} {comp.run_id}"}
            print(what.get(comp.decision, comp.decision))
        return 0  # a verdict is not an error: scripts read "decision" from --json
    finally:
        ws.close()
