"""The attack suites (issue 13): fuzzed parsers, kill -9 at random points of every write path, a long session.

Every test here runs in ``make test`` with small counts; ``make stress`` (``SEGSTUDIO_STRESS=full``) runs the
same tests with the full counts and prints the figures: inputs tried per parser, kills survived per write path,
bytes lost, and the RSS at the end of the long session. The figures also land in ``bench/stress.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FULL = os.environ.get("SEGSTUDIO_STRESS") == "full"

#: Hypothesis examples per parser and kill points per write path, fast subset vs ``make stress``.
FUZZ_EXAMPLES = 1500 if FULL else 60
KILL_POINTS = 50 if FULL else 6

_FIGURES: dict[str, Any] = {}


class Figures:
    """Collects the stress figures of a session (counts add up across tests that share a name)."""

    def add(self, name: str, value: float | int) -> None:
        _FIGURES[name] = _FIGURES.get(name, 0) + value

    def set(self, name: str, value: Any) -> None:
        _FIGURES[name] = value

    def max(self, name: str, value: float) -> None:
        _FIGURES[name] = max(_FIGURES.get(name, value), value)


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section(f"stress figures ({'full: make stress' if FULL else 'fast subset'})")
    for name in sorted(_FIGURES):
        v = _FIGURES[name]
        tr.write_line(f"{name:<58} {v:.1f}" if isinstance(v, float) else f"{name:<58} {v}")
    if FULL:
        out = Path(__file__).resolve().parents[2] / "bench" / "stress.json"
        out.write_text(json.dumps(dict(sorted(_FIGURES.items())), indent=2) + "\n")
        tr.write_line(f"written to {out}")
