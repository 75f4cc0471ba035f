"""kill -9 at random points of a write path, then check what is on disk (DESIGN §6).

A trial starts a child Python process running ``child_code``. The child prints ``READY`` once set up (imports
done), then performs writes in a loop and prints ``ACK <json>`` after each write whose call returned (the write
is then durable by contract). The parent kills it with SIGKILL after a random delay, collects the ACK lines it
received, and calls ``check(acks)``, which opens what the child wrote and asserts that every file is the old or
the new version and that every acknowledged write is intact. ``check`` returns the bytes of acknowledged work it
found missing (must be zero).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class KillReport:
    trials: int = 0
    survived: int = 0
    killed_mid_write: int = 0
    acks: int = 0
    bytes_lost: int = 0


def kill_trials(
    *,
    child_code: str,
    trials: int,
    check: Callable[[list[dict[str, Any]]], int],
    max_delay_s: float = 0.6,
    seed: int = 13,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> KillReport:
    """Run ``trials`` kill trials; ``check`` raises on a broken invariant and returns bytes lost."""
    rng = random.Random(seed)
    report = KillReport()
    child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for _ in range(trials):
        proc = subprocess.Popen(
            [sys.executable, "-c", child_code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            cwd=REPO,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + ready_timeout_s
        line = proc.stdout.readline()
        while line and line.strip() != b"READY":
            if time.monotonic() > deadline:
                break
            line = proc.stdout.readline()
        if line.strip() != b"READY":
            proc.kill()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"kill harness child never became ready:\n{err[-3000:]}")
        time.sleep(rng.uniform(0.0, max_delay_s))
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        # only whole lines: a kill mid-print leaves a torn last line, which acknowledged nothing
        lines = out.decode(errors="replace").split("\n")[:-1]
        acks = [json.loads(x[4:]) for x in lines if x.startswith("ACK ")]
        if not alive and proc.returncode != 0:
            raise AssertionError(f"kill harness child failed on its own:\n{err.decode(errors='replace')[-3000:]}")
        report.trials += 1
        report.killed_mid_write += int(alive)
        report.acks += len(acks)
        lost = check(acks)
        report.bytes_lost += int(lost)
        report.survived += 1
    return report
