"""The promptable model's image embeddings, kept so that a click costs only the decoder.

An embedding is computed once per image as it is shown (``PromptableModel.embed``, seconds on a CPU) in a
background worker and read on the GUI thread at every click: the cache is an LRU bounded by a count and by MiB,
and it is thread-safe. Its key is the model, the sample id and a digest of the pixels that were embedded (the
image as displayed, after window/level and inversion), so that a new window, an inverted display or an edited
image is embedded again instead of being served a stale embedding.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CacheStats", "EmbeddingCache", "EmbeddingKey", "embedding_key", "pixel_digest"]


class EmbeddingKey(NamedTuple):
    """What an embedding belongs to: ``model`` (the model file's path), ``sample_id`` and ``digest`` (of the
    pixels embedded, :func:`pixel_digest`)."""

    model: str
    sample_id: str
    digest: str


def pixel_digest(pixels: np.ndarray) -> str:
    """A digest of an image's shape, dtype and bytes (BLAKE2b, 128 bits; ~10 ms for a 2048² RGB image)."""
    a = np.ascontiguousarray(pixels)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape}|{a.dtype.str}".encode())
    h.update(a.data.cast("B"))
    return h.hexdigest()


def embedding_key(*, model: str, sample_id: str, pixels: np.ndarray) -> EmbeddingKey:
    return EmbeddingKey(model, sample_id, pixel_digest(pixels))


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    items: int
    bytes: int


class EmbeddingCache:
    """LRU of embeddings (any object with an ``nbytes`` attribute) under ``max_items`` and ``max_mb``.

    ``get`` counts a hit or a miss and makes a hit the most recent; ``put`` evicts the least recent entries until
    both bounds hold (an entry larger than ``max_mb`` on its own is not kept). Every method takes the lock, so the
    worker that computes embeddings and the GUI thread that reads them can share one cache."""

    def __init__(self, *, max_items: int = 16, max_mb: float = 256.0) -> None:
        if max_items < 1 or max_mb <= 0:
            raise ValueError(f"an embedding cache needs max_items >= 1 and max_mb > 0, not {max_items}, {max_mb}")
        self.max_items, self.max_bytes = int(max_items), int(max_mb * 2**20)
        self._items: OrderedDict[EmbeddingKey, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._evictions = 0

    def get(self, key: EmbeddingKey) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: EmbeddingKey, value: Any) -> None:
        size = int(getattr(value, "nbytes", 0))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= int(getattr(old, "nbytes", 0))
            if size > self.max_bytes:
                return
            self._items[key] = value
            self._bytes += size
            while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                _k, dropped = self._items.popitem(last=False)
                self._bytes -= int(getattr(dropped, "nbytes", 0))
                self._evictions += 1

    def drop_model(self, model: str) -> None:
        """Forget every embedding of ``model`` (the user chose another model file)."""
        with self._lock:
            for k in [k for k in self._items if k.model == model]:
                self._bytes -= int(getattr(self._items.pop(k), "nbytes", 0))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._items), self._bytes)
