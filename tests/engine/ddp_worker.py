"""One process of a distributed test run, launched by ``torchrun`` from ``test_distributed.py``.

    torchrun --standalone --nproc-per-node=2 tests/engine/ddp_worker.py DATASET CONFIG OUT REPORT [--stop-at N] [--resume]

Trains through the engine's API as ``segstudio train`` does; with ``--stop-at N`` rank 0 alone cancels its token
after global step N (the others are never told), so the test sees whether a stop on rank 0 stops every rank at the
same step. Each process writes ``REPORT.<rank>.json``: the steps it trained, how its run ended and its weights digest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("dataset", "config", "out", "report"):
        p.add_argument(name)
    p.add_argument("--stop-at", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.cancel import CancelToken
    from segstudio.engine.config import TrainConfig
    from segstudio.engine.events import BatchEnd, Finished
    from segstudio.engine.train import train

    rank = int(os.environ["RANK"])
    token = CancelToken()
    steps, finished = [], None
    for ev in train(TrainConfig.load(Path(a.config)), open_dataset(a.dataset), run_dir=a.out, cancel=token,
                    resume=a.resume):
        if isinstance(ev, BatchEnd):
            steps.append(ev.global_step)
            if rank == 0 and a.stop_at and ev.global_step == a.stop_at:
                token.cancel()
        elif isinstance(ev, Finished):
            finished = ev
    assert finished is not None
    Path(f"{a.report}.{rank}.json").write_text(json.dumps({
        "rank": rank, "steps": steps, "cancelled": finished.cancelled, "epochs": finished.epochs_completed,
        "digest": finished.weights_digest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
