"""Prefetch of neighbouring samples: the next/previous image and its GT decode while the user looks at this one.

A small LRU keyed by sample id holds ``(image, gt)`` — or ``(image, gt, extra)`` when an extra loader (e.g. the
prediction) is given. No Qt here: plain worker threads and a lock, so it is safe to call from any thread and
easy to test. A load that fails is not cached: the normal load path runs again and reports the error itself.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from segstudio.datasets.base import Dataset

log = logging.getLogger(__name__)

#: ``(image, gt)`` or ``(image, gt, extra)``: image ``(H, W)``/``(H, W, 3)`` uint8/uint16, gt in the schema's
#: mask dtype or ``None``, extra whatever the extra loader returns.
Entry = tuple[Any, ...]
#: ``extra(sample_id, image, gt, side)``: more work for the worker once image and GT are decoded (the overlays
#: drawn in advance, ...); ``side`` is what the side loader returned, or None without one.
ExtraLoader = Callable[[str, Any, Any, Any], Any]
#: ``side(sample_id)``: a load that needs neither image nor GT (e.g. the prediction), run beside their decoding.
SideLoader = Callable[[str], Any]


class Prefetcher:
    """Loads samples of ``dataset`` in ``workers`` background threads into an LRU of ``capacity`` entries.

    ``request(ids)`` queues loads (ids already cached or loading are skipped; queued loads of ids not in the
    newest request are cancelled, so fast navigation never builds a backlog). ``get(id)`` returns the entry or
    ``None``; with ``wait_s`` it waits that long for a load already in flight instead of decoding twice.
    ``invalidate(id)`` drops an entry that became stale (e.g. the GT was corrected), including one in flight.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        capacity: int = 6,
        workers: int = 2,
        extra: ExtraLoader | None = None,
        side: SideLoader | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.dataset = dataset
        self.capacity = capacity
        self._extra = extra
        self._side = side
        # re-entrant: Future.cancel() and add_done_callback() on a finished future run callbacks that take it
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._futures: dict[str, Future[Entry | None]] = {}
        # bumped per id by invalidate/clear, so a load that started before cannot store a stale entry
        self._epoch: dict[str, int] = {}
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segstudio-prefetch")
        self._io = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="segstudio-prefetch-io")

    # public -----------------------------------------------------------------------------------------------------
    def request(self, sample_ids: Iterable[str]) -> None:
        """Prefetch ``sample_ids`` (unknown ids and ``None`` are ignored, e.g. "no next sample")."""
        wanted = [sid for sid in dict.fromkeys(sample_ids) if sid is not None and sid in self.dataset]
        with self._lock:
            if self._closed:
                return
            for sid, fut in list(self._futures.items()):
                if sid not in wanted and fut.cancel():
                    self._futures.pop(sid, None)
            for sid in wanted:
                if sid in self._cache:
                    self._cache.move_to_end(sid)
                    continue
                if sid in self._futures:
                    continue
                epoch = self._epoch.get(sid, 0)
                fut = self._pool.submit(self._load, sid, epoch)
                self._futures[sid] = fut
                # runs at once, here, if the load already finished: the RLock allows that
                fut.add_done_callback(functools.partial(self._forget_future, sid))

    def take(self, sample_id: str, *, wait_s: float = 60.0) -> Entry:
        """The entry of ``sample_id`` for the foreground, removed from the cache (the caller edits its buffers).

        Cached: returned at once. Loading in a worker: waited for. Otherwise loaded right here, in the calling
        thread (image and GT decoding in parallel), never queued behind neighbour prefetches. A failed load
        raises its error (a ``DatasetError`` names the file).
        """
        entry = self.get(sample_id, wait_s=wait_s)
        with self._lock:
            self._cache.pop(sample_id, None)
            self._epoch[sample_id] = self._epoch.get(sample_id, 0) + 1
        if entry is not None:
            return entry
        return self._compute(sample_id)

    def get(self, sample_id: str, *, wait_s: float = 0.0) -> Entry | None:
        """The cached entry (marked most recently used), or ``None`` if it is not (yet) loaded."""
        with self._lock:
            entry = self._cache.get(sample_id)
            if entry is not None:
                self._cache.move_to_end(sample_id)
                return entry
            fut = self._futures.get(sample_id)
        if fut is None or wait_s <= 0:
            return None
        try:
            fut.result(timeout=wait_s)
        except Exception:  # noqa: BLE001 - timeout or cancellation: the caller loads it itself
            return None
        with self._lock:
            return self._cache.get(sample_id)

    def put(self, sample_id: str, entry: Entry) -> None:
        """Store an entry the caller loaded itself (so going back to it is instant)."""
        with self._lock:
            self._store(sample_id, entry)

    def invalidate(self, sample_id: str) -> None:
        with self._lock:
            self._epoch[sample_id] = self._epoch.get(sample_id, 0) + 1
            self._cache.pop(sample_id, None)
            fut = self._futures.pop(sample_id, None)
            if fut is not None:
                fut.cancel()

    def clear(self) -> None:
        with self._lock:
            for sid in list(self._cache) + list(self._futures):
                self._epoch[sid] = self._epoch.get(sid, 0) + 1
            self._cache.clear()
            futs = list(self._futures.values())
            self._futures.clear()
            for fut in futs:
                fut.cancel()

    def cached_ids(self) -> list[str]:
        """Ids in the cache, least recently used first."""
        with self._lock:
            return list(self._cache)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._futures)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait for every load in flight (tests, benchmarks); ``False`` on timeout."""
        with self._lock:
            futs = list(self._futures.values())
        for f in futs:
            try:
                f.result(timeout=timeout_s)
            except TimeoutError:
                return False
            except Exception:  # noqa: BLE001,S112 - a failed or cancelled load is done too
                continue
        return True

    def shutdown(self) -> None:
        """Cancel queued loads and wait for running ones; later requests are ignored."""
        with self._lock:
            self._closed = True
            futs = list(self._futures.values())
        for fut in futs:
            fut.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._io.shutdown(wait=True, cancel_futures=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    # internals --------------------------------------------------------------------------------------------------
    def _compute(self, sample_id: str) -> Entry:
        sample = self.dataset.get(sample_id)
        # image, GT and the side load decode at once: a cold 2048² load waits for the slowest, not their sum
        image_future = self._io.submit(self.dataset.load_image, sample)
        side_future = self._io.submit(self._side, sample_id) if self._side is not None else None
        try:
            gt = self.dataset.load_gt(sample)
        finally:
            image = image_future.result()
        side = None
        if side_future is not None:
            try:
                side = side_future.result()
            except Exception as exc:  # noqa: BLE001 - the extra loader decides (e.g. reads it again, reports)
                side = exc
        if self._extra is None:
            return (image, gt)
        return (image, gt, self._extra(sample_id, image, gt, side))

    def _load(self, sample_id: str, epoch: int) -> Entry | None:
        try:
            entry = self._compute(sample_id)
        except Exception as exc:  # noqa: BLE001 - the foreground load reports it with the file name
            log.info("prefetch of %s failed (the normal load will report it): %s", sample_id, exc)
            return None
        with self._lock:
            if self._closed or self._epoch.get(sample_id, 0) != epoch:
                return None
            self._store(sample_id, entry)
        return entry

    def _store(self, sample_id: str, entry: Entry) -> None:
        self._cache[sample_id] = entry
        self._cache.move_to_end(sample_id)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    def _forget_future(self, sample_id: str, fut: Future[Entry | None]) -> None:
        with self._lock:
            if self._futures.get(sample_id) is fut:
                del self._futures[sample_id]
