"""The figure type and timing helpers every bench module uses."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    budget: float | None = None
    better: Literal["lower", "higher"] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    @property
    def misses_budget(self) -> bool:
        if self.budget is None or self.better is None:
            return False
        return self.value > self.budget if self.better == "lower" else self.value < self.budget


def merge_results(out: Path, figures: list[Figure], *, machine: str) -> None:
    """Write ``figures`` into the results file ``out`` (``{"machine", "figures"}``), keeping the figures of earlier
    runs that this one did not measure; an unreadable file is started afresh."""
    old: dict[str, Any] = {}
    if out.exists():
        try:
            old = json.loads(out.read_text())
        except json.JSONDecodeError:
            old = {}
    merged = {f["name"]: f for f in old.get("figures", [])}
    merged.update({f.name: f.to_dict() for f in figures})
    result = {"machine": machine, "figures": sorted(merged.values(), key=lambda f: f["name"])}
    out.write_text(json.dumps(result, indent=2) + "\n")


def time_call(fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> list[float]:
    """Wall times of ``fn`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return float(s[k])
