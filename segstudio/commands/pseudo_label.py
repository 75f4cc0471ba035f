"""``segstudio pseudo-label WORKSPACE``: accept the current model's predictions of unlabelled images as labels.

The candidates are the ``pseudo-labels`` queue: images with neither GT nor a correction, whose current-model
prediction is the most certain first. Each accepted prediction becomes a mask version of source
``accepted_prediction`` (the next training or retraining round uses it like a correction) and the image is marked
accepted — exactly what the app's "Accept predictions as labels" does. Nothing a person drew is ever replaced.
Without ``--yes`` the candidates are listed and nothing is written.
"""

from __future__ import annotations

import argparse

from segstudio.commands.loop_workspace import add_workspace_argument, open_loop

EXAMPLES = """examples:
  segstudio pseudo-label ~/data/lungs.segstudio --top 20                  # list the candidates
  segstudio pseudo-label ~/data/lungs.segstudio --top 20 --max-uncertainty 0.05 --yes --author "dr. k"
  segstudio pseudo-label ~/data/lungs --ids img_0012.png img_0031.png --yes
"""

HELP = "accept the current model's confident predictions of unlabelled images as labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workspace_argument(parser)
    parser.add_argument("--top", type=int, default=10, metavar="K", help="the K most certain candidates (default 10)")
    parser.add_argument("--max-uncertainty", type=float, metavar="U",
                        help="only candidates whose mean uncertainty is at most U (0..1)")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="these sample ids instead of the queue's top K")
    parser.add_argument("--yes", action="store_true", help="accept them (without it: list only, write nothing)")
    parser.add_argument("--author", default="", help="name recorded with the new labels")


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.workspace.model_predictions import ModelPredictions
    from segstudio.workspace.pseudo_labels import accept_predictions
    from segstudio.workspace.queue import workspace_queue

    if args.top < 1:
        raise SegstudioError(f"--top must be 1 or more, not {args.top}.", fix="Use --top 10.")
    ws, ds = open_loop(args, writable=args.yes)
    try:
        cur = ws.models.current()
        if cur is None:
            raise SegstudioError("This workspace has no current model, so it has no predictions to accept.",
                                 path=ws.folder, fix="Train or choose a model first (segstudio models list).")
        preds = ModelPredictions(ws.predictions, ds, checkpoint=cur.checkpoint)
        queue = {q.sample_id: q for q in workspace_queue(ws, ds, "pseudo-labels")}
        if args.ids:
            missing = [i for i in args.ids if i not in ds]
            if missing:
                raise SegstudioError(f"Not in the dataset: {', '.join(missing[:5])}.", path=ds.root,
                                     fix="Use sample ids as segstudio queue --ids-only prints them.")
            ids = list(args.ids)
        else:
            ids = []
            for sid, q in queue.items():
                unc = 1.0 - q.score
                if args.max_uncertainty is not None and unc > args.max_uncertainty:
                    continue
                if preds.is_stale(sid):
                    continue  # predicted by an older model: not what the current model says
                ids.append(sid)
                if len(ids) >= args.top:
                    break
        if not ids:
            print("No candidate: no unlabelled image has a prediction by the current model"
                  + (f" with uncertainty at most {args.max_uncertainty}" if args.max_uncertainty is not None else "")
                  + ". Predict the unlabelled images first.")
            return 0
        if not args.yes:
            print(f"{len(ids)} candidate(s) (nothing written; add --yes to accept them):")
            for sid in ids:
                item = queue.get(sid)
                print(f"  {ds.get(sid).name}  {item.reason if item else 'not in the pseudo-label queue'}")
            return 0

        def prediction(sid: str):  # noqa: ANN202
            return None if preds.is_stale(sid) else preds.load(sid)

        out = accept_predictions(ws, ds, ids, prediction=prediction, author=args.author)
        print(out.summary())
        for sid, why in out.skipped.items():
            print(f"  left alone: {sid}: {why}")
        return 0 if out.accepted or not out.skipped else 1
    finally:
        ws.close()
