"""Writing a run's files off the training thread: checkpoints and the curves plot.

A checkpoint is copied on the training thread (``checkpoint.snapshot_checkpoint``: CPU copies of the weights and
the optimiser's state, a few tens of milliseconds) and written, fsynced and swapped into place here, in order, by
one thread, while the next epoch trains. At most ``max_pending`` jobs wait; a further one blocks until a slot
frees, so the copies held in memory stay bounded. A job that fails (a full disk) is raised again on the training
thread by the next ``submit`` or by ``flush``, with its own error type and message: the run stops the way it did
when the write was inline. ``flush`` waits for every queued job; the trainer calls it before its ``Finished``
event, so that everything a run's events named is on disk once the run has ended.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

Job = Callable[[], object]


class BackgroundWriter:
    def __init__(self, *, max_pending: int = 2, name: str = "segstudio-run-writer") -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                with self._lock:
                    failed = self._error is not None
                if not failed:  # after a failure the later writes are dropped: the run is stopping
                    job()
            except BaseException as exc:  # raised again on the training thread
                log.debug("background write failed: %s", exc)
                with self._lock:
                    self._error = exc
            finally:
                self._jobs.task_done()

    def _raise_pending(self) -> None:
        with self._lock:
            exc, self._error = self._error, None
        if exc is not None:
            raise exc

    def submit(self, job: Job) -> None:
        """Queue ``job`` (blocks while ``max_pending`` jobs wait); raises an earlier job's error first."""
        if self._closed:
            raise RuntimeError("the run's writer is closed")
        self._raise_pending()
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every queued job has run; raise the first error one of them met."""
        self._jobs.join()
        self._raise_pending()

    def close(self) -> None:
        """Finish the queued jobs and stop the thread (errors are not raised here: ``flush`` first)."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
