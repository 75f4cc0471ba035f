"""A thread-safe cancel token: the GUI (or a Ctrl+C handler) sets it, engine generators poll it between batches."""

from __future__ import annotations

import threading


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
