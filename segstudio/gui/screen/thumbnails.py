"""Sample thumbnails: decoded off the GUI thread, cached on disk and in memory.

A thumbnail is asked for only when the browser paints a row, so opening a 10,000-image dataset decodes nothing.
Decoding runs in a private ``QThreadPool``; results come back to the GUI thread through a queued signal. Each
thumbnail is stored as ``cache_dir()/thumbnails/<sha1>.png`` where the hash covers the image's absolute path,
modification time and file size (and the thumbnail size), so an edited image gets a new thumbnail and a second
session — or a second model — reads the PNG instead of decoding the full image again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRect, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from segstudio.core.atomic import sweep_stale_temps, temp_path_for
from segstudio.core.paths import cache_dir
from segstudio.datasets.base import Dataset, Sample
from segstudio.gui.common.qimage import array_to_qimage, to_display_uint8

log = logging.getLogger(__name__)

THUMBNAIL_PX = 40
#: Disk budget of the thumbnail cache (a 64 px PNG is a few KiB: this holds well over 50,000 images).
CACHE_BUDGET_BYTES = 256 * 1024 * 1024
#: Bumped when the thumbnail recipe changes, so stale PNGs from an older recipe are never shown.
_RECIPE = 2  # 2: images deeper than 8 bits in the percentile window the canvas opens them with


# pure helpers (run on worker threads) ---------------------------------------------------------------------------
def thumbnail_dir() -> Path:
    return cache_dir() / "thumbnails"


def thumbnail_key(image_path: Path, *, px: int = THUMBNAIL_PX) -> str | None:
    """SHA-1 hex naming the cached thumbnail of ``image_path``; ``None`` when the file cannot be stat'ed
    (missing: the dataset's reader will then say what is wrong)."""
    p = Path(image_path).absolute()
    try:
        st = p.stat()
    except OSError:
        return None
    text = f"{p}\0{st.st_mtime_ns}\0{st.st_size}\0{px}\0{_RECIPE}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()  # noqa: S324 - a name, not a secret


def make_thumbnail(image: np.ndarray, *, px: int = THUMBNAIL_PX) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` image of any depth → ``uint8`` ``(h, w)`` or ``(h, w, 3)`` with the longest
    side ``px`` (never upscaled). Images deeper than 8 bits are shown in the 0.5–99.5 % percentile window the
    canvas opens them with (a DICOM's header window needs its header; the percentiles are close to it)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[2] > 3:
        a = a[..., :3]  # alpha is not part of a preview
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"cannot make a thumbnail of an array of shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype not in (np.uint8, np.uint16, np.float32):
        a = a.astype(np.float32)
    h, w = a.shape[:2]
    scale = px / max(h, w)
    if scale < 1.0:
        # area interpolation averages the pixels a thumbnail pixel covers: no aliasing on 2048² X-rays
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    if a.dtype == np.uint16 or (a.dtype == np.float32 and a.ndim == 2):
        from segstudio.core.display import DisplaySettings, percentile_window, render_display

        if a.dtype == np.float32:
            a = a.astype(np.float64)
        level, window = percentile_window(a)
        return np.ascontiguousarray(render_display(a, DisplaySettings(window=window, level=level)))
    return np.ascontiguousarray(to_display_uint8(a))


def _read_png(path: Path) -> np.ndarray | None:
    """A cached thumbnail, or ``None`` if absent or unreadable (a torn file is simply made again)."""
    try:
        buf = np.fromfile(path, np.uint8)
        os.utime(path)  # mtime = last use, so pruning drops the thumbnails nobody looked at for longest
    except OSError:
        return None
    if buf.size == 0:
        return None
    a = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if a is None:
        return None
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(a)


def _write_png(path: Path, thumb: np.ndarray) -> None:
    """Temp file + rename so a reader never sees half a PNG. No fsync: the cache can always be re-made."""
    bgr = cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR) if thumb.ndim == 3 else thumb
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"cannot encode a thumbnail for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)  # the pid in its name lets sweep_stale_temps clear it after a kill
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def load_thumbnail(dataset: Dataset, sample: Sample, *, px: int = THUMBNAIL_PX) -> np.ndarray:
    """The thumbnail of ``sample`` (``uint8`` ``(h, w)`` or ``(h, w, 3)``): from the disk cache when it is
    there, else decoded with ``dataset.load_image`` and written to the cache. Raises what the reader raises
    (``DatasetError`` naming the file)."""
    key = thumbnail_key(sample.image, px=px)
    path = thumbnail_dir() / f"{key}.png" if key is not None else None
    if path is not None:
        cached = _read_png(path)
        if cached is not None:
            return cached
    thumb = make_thumbnail(dataset.load_image(sample), px=px)
    if path is not None:
        try:
            _write_png(path, thumb)
        except OSError as exc:  # a read-only or full cache costs speed, not the thumbnail
            log.warning("cannot cache the thumbnail of %s: %s", sample.image, exc)
    return thumb


def prune_thumbnail_cache(max_bytes: int = CACHE_BUDGET_BYTES) -> int:
    """Delete the least recently used cached thumbnails until the cache fits ``max_bytes``; returns how many
    files went. Files that vanish or resist deletion meanwhile (another process) are skipped. Temp files a killed
    writer left are removed too."""
    sweep_stale_temps(thumbnail_dir(), recursive=False)
    entries = []
    try:
        with os.scandir(thumbnail_dir()) as it:
            for e in it:
                if e.name.endswith(".png") and e.is_file():
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    entries.append((st.st_mtime_ns, st.st_size, e.path))
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size
        removed += 1
    if removed:
        log.info("thumbnail cache pruned: %d files removed, %d bytes kept", removed, total)
    return removed


class _PruneTask(QRunnable):
    def run(self) -> None:
        prune_thumbnail_cache()


# placeholder icons ----------------------------------------------------------------------------------------------
def _frame(px: int) -> QPixmap:
    pm = QPixmap(px, px)
    pm.fill(Qt.GlobalColor.transparent)
    return pm


def placeholder_pixmap(px: int = THUMBNAIL_PX) -> QPixmap:
    """Shown while a thumbnail is being decoded: a neutral grey tile."""
    pm = _frame(px)
    p = QPainter(pm)
    p.setPen(QPen(QColor(150, 150, 150), 1))
    p.setBrush(QColor(128, 128, 128, 60))
    p.drawRect(QRect(2, 2, px - 5, px - 5))
    p.end()
    return pm


def broken_pixmap(px: int = THUMBNAIL_PX) -> QPixmap:
    """Shown when the image cannot be read: a tile with a red cross."""
    pm = _frame(px)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor(150, 150, 150), 1))
    p.setBrush(QColor(128, 128, 128, 40))
    p.drawRect(QRect(2, 2, px - 5, px - 5))
    p.setPen(QPen(QColor(210, 50, 50), max(2, px // 16)))
    m = px // 4
    p.drawLine(m, m, px - m, px - m)
    p.drawLine(px - m, m, m, px - m)
    p.end()
    return pm


# the loader -----------------------------------------------------------------------------------------------------
class _Emitter(QObject):
    # generation, sample id, QImage or None, error message ("" on success)
    sig_finished = Signal(int, str, object, str)


class _ThumbnailTask(QRunnable):
    def __init__(self, emitter: _Emitter, *, generation: int, dataset: Dataset, sample: Sample, px: int) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._emitter = emitter  # keeps the emitter alive even if the loader goes first
        self._generation = generation
        self._dataset = dataset
        self._sample = sample
        self._px = px

    def run(self) -> None:
        image: QImage | None = None
        error = ""
        try:
            thumb = load_thumbnail(self._dataset, self._sample, px=self._px)
            image = array_to_qimage(thumb).copy()  # own the pixels: the array dies with this thread's frame
        except Exception as exc:  # noqa: BLE001 - any unreadable image becomes a broken-image icon, never a crash
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("thumbnail of %s failed: %s", self._sample.id, exc)
        self._emitter.sig_finished.emit(self._generation, self._sample.id, image, error)


class ThumbnailLoader(QObject):
    """Asynchronous thumbnails of one dataset's samples, with an in-memory LRU of ``memory_items`` pixmaps.

    ``request(sample_id)`` queues a decode (most recent requests first, so the rows on screen now win over rows
    scrolled past); ``sig_thumbnail_ready(sample_id)`` or ``sig_thumbnail_failed(sample_id, message)`` follows on
    the GUI thread, after which ``get``/``error`` answer. Everything except the worker runs on the GUI thread.
    """

    sig_thumbnail_ready = Signal(str)
    sig_thumbnail_failed = Signal(str, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        px: int = THUMBNAIL_PX,
        memory_items: int = 1024,
        max_threads: int = 2,
        max_queued: int = 256,
    ) -> None:
        super().__init__(parent)
        self.px = px
        self._memory_items = memory_items
        self._max_queued = max_queued
        self._dataset: Dataset | None = None
        self._generation = 0
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._errors: dict[str, str] = {}
        self._queue: OrderedDict[str, None] = OrderedDict()  # newest last
        self._running: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, max_threads))
        self._emitter = _Emitter()
        self._emitter.sig_finished.connect(self._on_task_finished, Qt.ConnectionType.QueuedConnection)
        self._pruned = False

    def set_dataset(self, dataset: Dataset | None) -> None:
        """Forget the previous dataset's thumbnails; results still in flight for it are dropped on arrival."""
        self._generation += 1
        self._dataset = dataset
        self._pixmaps.clear()
        self._errors.clear()
        self._queue.clear()
        self._running.clear()
        if dataset is not None and not self._pruned:
            # once per loader, off the GUI thread: the cache must not grow without bound across datasets
            self._pruned = True
            self._pool.start(_PruneTask())

    def get(self, sample_id: str) -> QPixmap | None:
        pm = self._pixmaps.get(sample_id)
        if pm is not None:
            self._pixmaps.move_to_end(sample_id)
        return pm

    def error(self, sample_id: str) -> str | None:
        """Why the sample's image could not be made into a thumbnail, or ``None``."""
        return self._errors.get(sample_id)

    def request(self, sample_id: str) -> None:
        if self._dataset is None or sample_id in self._pixmaps or sample_id in self._errors:
            return
        if sample_id in self._running:
            return
        self._queue[sample_id] = None
        self._queue.move_to_end(sample_id)
        while len(self._queue) > self._max_queued:
            # rows scrolled past long ago: they ask again when painted again
            self._queue.popitem(last=False)
        self._pump()

    def pending(self) -> int:
        """Thumbnails queued or being decoded."""
        return len(self._queue) + len(self._running)

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Block until the worker threads are done (tests, shutdown); queued results still need the event loop."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Drop queued work and wait for running decodes; safe to call twice."""
        self._queue.clear()
        self._generation += 1
        self._pool.waitForDone()

    # internals --------------------------------------------------------------------------------------------------
    def _pump(self) -> None:
        ds = self._dataset
        while ds is not None and self._queue and len(self._running) < self._pool.maxThreadCount():
            sid, _ = self._queue.popitem(last=True)
            if sid not in ds:
                continue
            self._running.add(sid)
            task = _ThumbnailTask(self._emitter, generation=self._generation, dataset=ds, sample=ds.get(sid), px=self.px)
            self._pool.start(task)

    def _on_task_finished(self, generation: int, sample_id: str, image: QImage | None, error: str) -> None:
        if generation != self._generation:
            return
        self._running.discard(sample_id)
        if image is not None:
            self._pixmaps[sample_id] = QPixmap.fromImage(image)
            while len(self._pixmaps) > self._memory_items:
                self._pixmaps.popitem(last=False)
            self.sig_thumbnail_ready.emit(sample_id)
        else:
            self._errors[sample_id] = error
            self.sig_thumbnail_failed.emit(sample_id, error)
        self._pump()
