"""Run one parser call on a hostile input with a time and memory bound, and judge its outcome.

A parser passes when it returns or raises :class:`~segstudio.core.errors.SegstudioError` (our error, with the
file and the fix). Anything else (another exception type, a call past ``seconds``, a Python-heap peak past
``max_mib``) fails the test with the input that caused it. A segmentation fault would end the test process:
that is reported by pytest as a crash of the whole run, which is exactly the failure these suites exist for.
"""

from __future__ import annotations

import copy
import json
import signal
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from segstudio.core.errors import SegstudioError


class ParseTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise ParseTimeout


def bounded(fn: Callable[[], Any], *, what: str, seconds: float = 5.0, max_mib: float = 512.0) -> str:
    """Call ``fn``; return ``"ok"`` or ``"error"`` (a SegstudioError), assert on anything else."""
    use_alarm = threading.current_thread() is threading.main_thread()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    outcome = "ok"
    try:
        fn()
    except ParseTimeout:
        raise AssertionError(f"{what}: still running after {seconds} s (a hang on hostile input)") from None
    except SegstudioError as e:
        outcome = "error"
        assert str(e).strip(), f"{what}: our error with an empty message"
    except RecursionError as e:
        raise AssertionError(f"{what}: RecursionError escaped ({e})") from e
    except MemoryError as e:
        raise AssertionError(f"{what}: MemoryError escaped (unbounded allocation)") from e
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        _, peak = tracemalloc.get_traced_memory()
        if not tracing:
            tracemalloc.stop()
    assert peak <= max_mib * 2**20, f"{what}: allocated {peak / 2**20:.0f} MiB on a small hostile input"
    return outcome


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (keys and list indices), the root first: where a mutation may go."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += json_paths(v, (*prefix, i))
    return out


def get_path(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def mutated_json(base: Any, *, fragment: Callable[[], st.SearchStrategy[str]], keys: list[str]) -> st.SearchStrategy[str]:
    """The text of the JSON document ``base`` with 1-3 mutations (replace a value, add a key or item, delete
    one), each new value a ``fragment()`` of hostile JSON text; sometimes truncated, sometimes another document
    altogether. ``keys``: the names an added key may take (the format's own, so the parser reaches them)."""

    @st.composite
    def build(draw: Any) -> str:
        if draw(st.integers(0, 19)) == 0:  # a document of another shape altogether
            return draw(fragment())
        doc = copy.deepcopy(base)
        fragments: dict[str, str] = {}
        for i in range(draw(st.integers(1, 3))):
            mark = f"@@HOSTILE{i}@@"
            path = draw(st.sampled_from(json_paths(doc)))
            kind = draw(st.sampled_from(["replace", "replace", "replace", "add", "delete"])) if path else "add"
            target = get_path(doc, path)
            if kind == "add" and isinstance(target, dict):
                target[draw(st.sampled_from(keys))] = mark
            elif kind == "add" and isinstance(target, list):
                target.append(mark)
            elif kind == "delete" and path:
                del get_path(doc, path[:-1])[path[-1]]
                continue
            elif path:
                get_path(doc, path[:-1])[path[-1]] = mark
            else:
                continue
            fragments[mark] = draw(fragment())
        text = json.dumps(doc)
        for mark, frag in fragments.items():
            text = text.replace(json.dumps(mark), frag)
        if draw(st.integers(0, 9)) == 0:
            text = text[: draw(st.integers(0, len(text)))]
        return text

    return build()
