"""``segstudio queue WORKSPACE --strategy NAME --top K``: the "next to review" queue, headless — the same order as
the app's Review panel, from the figures stored when the app (or ``segstudio predict --workspace``) predicted.

Strategies: ``uncertainty`` (the model's least certain first), ``disagreement`` (lowest Dice against the GT or
correction first), ``changed`` (changed most since the previous model), ``pseudo-labels`` (unlabelled images the
model is most confident about), ``suspicion`` (the labels most likely wrong, from the ranking the app stored with
Review → Rank Labels by Suspicion). Samples already reviewed leave the queue (see docs/review.md).
"""

from __future__ import annotations

import argparse
import json

from segstudio.commands.loop_workspace import add_workspace_argument, open_loop

EXAMPLES = """examples:
  segstudio queue ~/data/lungs.segstudio --strategy uncertainty --top 20
  segstudio queue ~/data/lungs --strategy disagreement --top 50 --json > to-review.json
  segstudio queue ~/data/lungs --strategy pseudo-labels --ids-only | head -10
  segstudio queue ~/data/lungs --strategy suspicion --top 30
"""

HELP = "the next images to review, ranked by a strategy (uncertainty, disagreement, changed, pseudo-labels, suspicion)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segstudio.workspace.queue import STRATEGIES

    add_workspace_argument(parser)
    parser.add_argument("--strategy", default="uncertainty", choices=list(STRATEGIES),
                        help="how to rank: " + "; ".join(f"{k}: {v}" for k, v in STRATEGIES.items()))
    parser.add_argument("--top", type=int, default=20, metavar="K", help="how many (default 20; 0 = all)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list of {rank, sample_id, name, score, reason}")
    out.add_argument("--ids-only", action="store_true", help="print one sample id per line")


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.workspace.queue import metrics_key_for, workspace_entries, workspace_queue

    if args.top < 0:
        raise SegstudioError(f"--top must be 0 (all) or more, not {args.top}.", fix="Use --top 20, or --top 0 for all.")
    ws, ds = open_loop(args, writable=False)
    try:
        entries = workspace_entries(ws, ds, key=metrics_key_for(args.strategy))
        items = workspace_queue(ws, ds, args.strategy, entries=entries)
    finally:
        ws.close()
    shown = items[: args.top] if args.top else items
    if args.json:
        print(json.dumps([{"rank": i + 1, "sample_id": q.sample_id, "name": ds.get(q.sample_id).name,
                           "score": round(q.score, 6), "reason": q.reason} for i, q in enumerate(shown)], indent=2))
        return 0
    if args.ids_only:
        for q in shown:
            print(q.sample_id)
        return 0
    if not entries and args.strategy == "suspicion":
        print("The labels of this workspace are not ranked yet: open the dataset in the app and choose Review → "
              "Rank Labels by Suspicion (segstudio quality DATASET --out FILE ranks them into a file instead).")
        return 0
    if not entries:
        print("No model predictions in this workspace yet: predict first (the app's Model menu, or "
              f"segstudio predict CHECKPOINT DATASET --out DIR --workspace {args.workspace}).")
        return 0
    if not shown:
        print(f"Nothing left under {args.strategy}: every scored sample is reviewed"
              + (" or labelled." if args.strategy == "pseudo-labels" else "."))
        return 0
    width = max(len(ds.get(q.sample_id).name) for q in shown)
    print(f"{len(items)} in the queue ({args.strategy}); the first {len(shown)}:")
    for i, q in enumerate(shown, 1):
        print(f"{i:>4}  {ds.get(q.sample_id).name:<{width}}  {q.reason}")
    return 0
