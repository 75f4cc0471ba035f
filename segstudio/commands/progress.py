"""The one progress adapter of the command line, over tqdm.

Every command that works over many images reports through :class:`Progress`: a tqdm bar (count, rate, ETA) on
stderr when stderr is a terminal; nothing with ``--quiet``; with ``--progress json`` one JSON object per line on
stderr, for scripts::

    {"event": "progress", "label": "masks", "done": 3, "total": 40, "rate": 12.5, "eta_s": 2.9}
    {"event": "message", "text": "failed: a.png: ..."}
    {"event": "done", "label": "masks", "done": 40, "total": 40, "elapsed_s": 3.2}

stdout is never written here: it holds only the command's result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: --progress values: auto (a bar when stderr is a terminal), bar (always), json (JSON lines), none
MODES = ("auto", "bar", "json", "none")


def add_progress_arguments(parser: argparse.ArgumentParser, *, quiet_help: str = "no progress output") -> None:
    """``-q/--quiet`` and ``--progress auto|bar|json|none`` (read back with :func:`progress_mode`)."""
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="auto: a bar with count, rate and ETA on stderr when it is a terminal (default); "
                        "json: one JSON object per line on stderr (event progress/message/done); bar; none")


def progress_mode(args: argparse.Namespace) -> str:
    """The mode the arguments ask for: ``--quiet`` wins over ``--progress`` (except json, asked for explicitly)."""
    mode = getattr(args, "progress", "auto") or "auto"
    if getattr(args, "quiet", False) and mode != "json":
        return "none"
    return mode


def _resolve(mode: str, stream: TextIO) -> str:
    if mode == "auto":
        try:
            return "bar" if stream.isatty() else "none"
        except (AttributeError, ValueError):
            return "none"
    if mode not in MODES:
        raise ValueError(f"Unknown progress mode {mode!r}; one of {', '.join(MODES)}.")
    return mode


class Progress:
    """Progress over ``total`` items (``total`` may change or be learnt at the first update).

    ``update(done, total)`` sets the count (absolute, not an increment); ``note(text)`` writes a line without
    breaking the bar; ``close()`` ends it (a ``done`` event in JSON). Usable as a context manager.
    """

    def __init__(self, label: str, total: int | None = None, *, mode: str = "auto", stream: TextIO | None = None,
                 unit: str = "img") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.total, self.unit = label, total, unit
        self.mode = _resolve(mode, self.stream)
        self.done = 0
        self.t0 = time.monotonic()
        self.closed = False
        self._bar: Any = None
        self._postfix: dict[str, Any] = {}

    # -- the bar -------------------------------------------------------------------------------------------------
    def _tqdm(self) -> Any:
        if self._bar is None:
            from tqdm import tqdm

            # a terminal that reports no width (a bare pty) would get an empty bar: 80 columns there
            sized = _columns(self.stream) > 0
            self._bar = tqdm(total=self.total, desc=self.label, unit=self.unit, file=self.stream,
                             dynamic_ncols=sized, ncols=None if sized else 80, mininterval=0.1, leave=True)
        return self._bar

    def _emit(self, obj: dict[str, Any]) -> None:
        self.stream.write(json.dumps(obj) + "\n")
        self.stream.flush()

    # -- the API -------------------------------------------------------------------------------------------------
    def update(self, done: int, total: int | None = None, *, eta_s: float | None = None, **postfix: Any) -> None:
        """``done`` items of ``total`` finished; ``eta_s`` overrides the estimate (a trainer knows better);
        ``postfix`` (loss=..., lr=...) is shown after the bar and put in the JSON event."""
        if total is not None:
            self.total = total
        self.done = done
        if self.mode == "none" or self.closed:
            return
        if self.mode == "json":
            elapsed = time.monotonic() - self.t0
            rate = done / elapsed if elapsed > 0 and done else None
            if eta_s is None and rate and self.total:
                eta_s = max(self.total - done, 0) / rate
            self._emit({"event": "progress", "label": self.label, "done": done, "total": self.total,
                        "rate": None if rate is None else round(rate, 3),
                        "eta_s": None if eta_s is None else round(eta_s, 1),
                        **{k: _plain(v) for k, v in postfix.items()}})
            return
        bar = self._tqdm()
        if total is not None and bar.total != total:
            bar.total = total
        if postfix:
            self._postfix = {k: _short(v) for k, v in postfix.items()}
            bar.set_postfix(self._postfix, refresh=False)
        bar.update(done - bar.n)

    def note(self, text: str) -> None:
        """A line of its own on stderr (a failed sample, an epoch summary), the bar redrawn below it."""
        if self.mode == "json":
            self._emit({"event": "message", "label": self.label, "text": text})
        elif self.mode == "bar" and self._bar is not None and not self.closed:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self, **summary: Any) -> None:
        """End the progress: the bar stays as its last line; JSON gets ``{"event": "done", ...}``."""
        if self.closed:
            return
        self.closed = True
        if self.mode == "json":
            self._emit({"event": "done", "label": self.label, "done": self.done, "total": self.total,
                        "elapsed_s": round(time.monotonic() - self.t0, 3),
                        **{k: _plain(v) for k, v in summary.items()}})
        elif self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # a script reading the JSON sees that it ended early, and why
            self.close(error=exc_type.__name__)


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80  # not a real file (tests): tqdm's own default


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return round(v, 6)
    return str(v)


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.4g}"
    return v


@contextlib.contextmanager
def ctrl_c_cancels(cancel: Any, note: Callable[[str], None],
                   text: str = "stopping after this batch (Ctrl+C again to abort)...", *,
                   sigterm: bool = False) -> Iterator[None]:
    """While the block runs, the first Ctrl+C cancels ``cancel`` (a ``CancelToken``: the run stops cleanly after
    the current batch, saying ``text`` through ``note``) and a second one aborts at once (``KeyboardInterrupt``).
    The previous handler is put back on leaving. Only the main thread may install a handler: elsewhere (a script
    calling a command from a thread) the block runs without one. ``sigterm``: SIGTERM (what a batch scheduler sends
    at a job's time limit, or ``kill``) cancels the same way."""

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        note(text)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigint) if sigterm else None
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if sigterm:
            signal.signal(signal.SIGTERM, previous_term)
