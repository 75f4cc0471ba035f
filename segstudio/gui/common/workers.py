"""One Qt adapter for every long engine job (DESIGN rule 5): a generator runs on a QThread, its events arrive on
the GUI thread as signals, and a cancel token stops it between batches.

    worker = GeneratorWorker(start, name="train")   # start(token) -> iterator of engine events
    worker.sig_progress.connect(panel.on_event)
    worker.start()
    ...
    worker.cancel()                                # cooperative: the generator ends after this batch
    worker.stop_and_wait(timeout_s=60)             # on close: cancel, wait, deliver the last signals

``start`` runs in the worker thread and is where the engine (and so torch) is imported: the GUI never pays for
torch until a job runs (DESIGN §2, rule 14). Exceptions never escape: they become ``sig_errored(message,
traceback)`` with a message a person can act on (CUDA out of memory, a diverging loss, a bad config).
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Protocol

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from segstudio.core.errors import SegstudioError

log = logging.getLogger(__name__)


class Token(Protocol):
    """What a start function gets: ``segstudio.engine.cancel.CancelToken`` (kept structural so that this module
    needs no engine import at load time)."""

    def cancel(self) -> None: ...

    @property
    def cancelled(self) -> bool: ...


StartFn = Callable[[Any], Iterable[Any]]


class NonFiniteLossError(SegstudioError):
    """The training loss became NaN or infinite: the run diverged."""


def guard_finite_loss(events: Iterable[Any]) -> Iterator[Any]:
    """Pass training events through; raise :class:`NonFiniteLossError` once a measured loss is NaN or infinite.

    ``BatchEnd.loss`` is only measured when the event carries loss parts (on CUDA the trainer reads the loss every
    tenth step and reports NaN in between), so only those batches and every epoch's mean are checked."""
    from segstudio.engine.events import BatchEnd, EpochEnd

    for ev in events:
        if isinstance(ev, BatchEnd) and ev.parts and not math.isfinite(ev.loss):
            raise NonFiniteLossError(
                f"The training loss became {ev.loss} at epoch {ev.epoch + 1}, step {ev.step}: the run diverged.",
                fix="Lower the learning rate, turn on gradient clipping (optim.grad_clip) or check the masks "
                "for out-of-range class ids.",
            )
        if isinstance(ev, EpochEnd) and not math.isfinite(ev.train_loss):
            raise NonFiniteLossError(
                f"The mean training loss of epoch {ev.epoch + 1} is {ev.train_loss}: the run diverged.",
                fix="Lower the learning rate or turn on gradient clipping (optim.grad_clip).",
            )
        yield ev


def describe_error(exc: BaseException) -> str:
    """A message for a person: what happened and what to do, without a traceback."""
    text = str(exc)
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in text.lower():
        return ("The GPU ran out of memory.\n\nLower the batch size or the image size, choose a smaller encoder, "
                "or train on the CPU. Other programs using the GPU also take its memory.")
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory.\n\nLower the batch size, the image size or the data cache (cache_mb)."
    if isinstance(exc, SegstudioError):
        return text
    return f"{name}: {text}" if text else name


class _Runner(QThread):
    """The thread: iterates the generator and reports through queued signals (never touches a widget)."""

    sig_event = Signal(object)
    sig_done = Signal(str, object, str, str)  # outcome ("finished" | "cancelled" | "errored"), last, message, tb

    def __init__(self, start: StartFn, token: Token, name: str) -> None:
        super().__init__()
        self._start, self._token = start, token
        self.setObjectName(f"worker-{name}")

    def run(self) -> None:  # noqa: D102 - QThread entry point
        last: Any = None
        gen: Iterable[Any] | None = None
        outcome, message, details = "finished", "", ""
        try:
            gen = self._start(self._token)
            for ev in gen:
                last = ev
                self.sig_event.emit(ev)
            outcome = "cancelled" if self._token.cancelled else "finished"
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI as a signal
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.error("worker %s failed:\n%s", self.objectName(), details)
            outcome, message = "errored", describe_error(exc)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                try:
                    close()  # a generator left mid-way releases its loaders and files now, not at GC time
                except BaseException:  # noqa: BLE001 - the job's own outcome is what the GUI is told
                    log.exception("worker %s: closing its generator failed", self.objectName())
        # last, once the generator is closed: the GUI thread joins this thread when the signal arrives, and must
        # not wait there on a clean-up (a run's final writes) that is still going on
        self.sig_done.emit(outcome, last, message, details)


class GeneratorWorker(QObject):
    """Runs ``start(token)`` — a function returning an iterator of events — on its own QThread.

    Signals are emitted on the GUI thread: ``sig_started()``, ``sig_progress(event)`` per item,
    then exactly one of ``sig_finished(last_event)``, ``sig_cancelled(last_event)`` (the generator ended after
    :meth:`cancel`) or ``sig_errored(message, traceback)``. A worker runs once."""

    sig_started = Signal()
    sig_progress = Signal(object)
    sig_finished = Signal(object)
    sig_errored = Signal(str, str)
    sig_cancelled = Signal(object)

    #: running workers are kept alive here: a QThread collected while it runs aborts the process
    _alive: ClassVar[set[GeneratorWorker]] = set()

    def __init__(self, start: StartFn, *, name: str = "job", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._start_fn = start
        self._runner: _Runner | None = None
        self._token: Token | None = None
        self._outcome: str | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None and self._outcome is None

    @property
    def done(self) -> bool:
        return self._outcome is not None

    @property
    def outcome(self) -> str | None:
        """``None`` until the job ends, then ``"finished"``, ``"cancelled"`` or ``"errored"``."""
        return self._outcome

    @property
    def cancel_requested(self) -> bool:
        return self._token is not None and self._token.cancelled

    def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"worker {self.name!r} was started already; make a new one for a new job")
        from segstudio.engine.cancel import CancelToken  # threading only: no torch

        self._token = CancelToken()
        self._runner = _Runner(self._start_fn, self._token, self.name)
        # queued: the slots run on this object's (the GUI) thread whatever thread emits
        self._runner.sig_event.connect(self._on_runner_event, Qt.ConnectionType.QueuedConnection)
        self._runner.sig_done.connect(self._on_runner_done, Qt.ConnectionType.QueuedConnection)
        GeneratorWorker._alive.add(self)
        app = QCoreApplication.instance()
        if app is not None:
            # however the app ends, a running job is stopped first: a QThread destroyed while running aborts
            app.aboutToQuit.connect(self._on_app_about_to_quit)
        self.sig_started.emit()
        self._runner.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (between batches); returns at once."""
        if self._token is not None:
            self._token.cancel()

    def stop_and_wait(self, timeout_s: float = 60.0) -> bool:
        """Cancel, wait up to ``timeout_s`` for the thread to end, and deliver its last signals before returning.

        True when the job has ended (or never started); False when it is still running after the timeout."""
        if self._runner is None:
            return True
        self.cancel()
        if not self._runner.wait(max(0, round(timeout_s * 1000))):
            log.warning("worker %s did not stop within %.0f s", self.name, timeout_s)
            return False
        # the thread's queued signals are still in the event queue: handle them now, so that the caller sees the
        # final state (a cancelled run recorded, its last checkpoint named) before it goes on closing
        QCoreApplication.sendPostedEvents(self)
        return True

    @Slot()
    def _on_app_about_to_quit(self) -> None:
        if self.running:
            self.stop_and_wait(120.0)

    @Slot(object)
    def _on_runner_event(self, ev: object) -> None:
        self.sig_progress.emit(ev)

    @Slot(str, object, str, str)
    def _on_runner_done(self, outcome: str, last: object, message: str, details: str) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        if self._runner is not None:
            self._runner.wait()  # run() emitted this as its last act: this joins the OS thread
        GeneratorWorker._alive.discard(self)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.disconnect(self._on_app_about_to_quit)
        if outcome == "errored":
            self.sig_errored.emit(message, details)
        elif outcome == "cancelled":
            self.sig_cancelled.emit(last)
        else:
            self.sig_finished.emit(last)
