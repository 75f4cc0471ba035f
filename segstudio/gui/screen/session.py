"""The review session: which dataset is open and which sample is current. Widgets only observe it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.registry import open_dataset
from segstudio.workspace import workspace_settings_at
from segstudio.workspace.prefetch import ExtraLoader, Prefetcher, SideLoader

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class OpenRequest:
    """What to open: a dataset path, its format (None = detect) and a predictions folder (None = none)."""

    path: Path
    format_name: str | None = None
    predictions: Path | None = None
    #: the workspace folder, when a workspace was opened (it need not be where the dataset's would be found)
    workspace: Path | None = None

    @staticmethod
    def resolve(path: str | Path, *, format_name: str | None = None,
                predictions: str | Path | None = None) -> OpenRequest:
        """A workspace given as ``path`` (a ``<dataset>.segstudio`` folder or its files) opens its dataset, with the
        format and predictions folder it was last opened with (arguments given here win)."""
        ws = workspace_settings_at(path)
        if ws is None:
            return OpenRequest(Path(path), format_name, Path(predictions) if predictions else None)
        preds = predictions or ws.predictions_dir or None
        p = Path(path).expanduser()
        folder = p.parent if p.name in ("workspace.sqlite", "workspace.json") else p
        return OpenRequest(Path(ws.dataset_root), format_name or ws.dataset_format or None,
                           Path(preds) if preds else None, folder.resolve())


@dataclass(frozen=True)
class LoadedSample:
    """A decoded sample. ``image``: (H, W) or (H, W, 3), uint8/uint16. ``gt``: mask in the schema's dtype or None."""

    row: int
    sample: Sample
    image: np.ndarray
    gt: np.ndarray | None
    error: str | None = None
    extra: Any = None  # what the prefetcher's extra loader returned (the prediction), when it was prefetched
    prefetched: bool = False

    def intensity_at(self, x: int, y: int) -> str:
        v = self.image[y, x]
        return f"{int(v)}" if np.ndim(v) == 0 else "(" + ", ".join(str(int(c)) for c in v) + ")"


class SessionController(QObject):
    sig_dataset_opened = Signal(object)  # Dataset
    sig_sample_loaded = Signal(object)  # LoadedSample

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.current: LoadedSample | None = None
        self.prefetcher: Prefetcher | None = None

    def load(self, path: str | Path, *, format_name: str | None = None) -> Dataset:
        """List a dataset without showing it (raises SegstudioError with a user-facing message)."""
        return open_dataset(path, format=format_name)

    def open(self, path: str | Path, *, format_name: str | None = None) -> Dataset:
        """Open a dataset and show its first sample."""
        ds = self.load(path, format_name=format_name)
        self.set_dataset(ds)
        return ds

    def set_dataset(self, ds: Dataset, *, extra: ExtraLoader | None = None, side: SideLoader | None = None) -> None:
        """Show ``ds``; ``side`` and ``extra`` are the prefetcher's loaders (see ``workspace.prefetch``)."""
        if self.prefetcher is not None:
            self.prefetcher.shutdown()
        self.prefetcher = Prefetcher(ds, extra=extra, side=side)
        self.dataset = ds
        self.current = None
        log.info("opened %s (%s, %d samples, %d problems)", ds.root, ds.format_name, len(ds), len(ds.all_problems()))
        self.sig_dataset_opened.emit(ds)
        if len(ds):
            self.go_to(0)

    def go_to(self, row: int) -> None:
        ds = self.dataset
        if ds is None or not 0 <= row < len(ds):
            return
        if self.current is not None and self.current.row == row:
            return
        s = ds[row]
        if self.prefetcher is not None:
            # prefetched: handed over at once; otherwise loaded now with image and GT decoding in parallel
            prefetched = s.id in self.prefetcher.cached_ids()
            try:
                hit = self.prefetcher.take(s.id, wait_s=LOAD_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the path below loads image and GT one by one and reports which failed
                hit = None
            if hit is not None:
                self.current = LoadedSample(row, s, hit[0], hit[1], extra=hit[2] if len(hit) > 2 else None,
                                            prefetched=prefetched)
                self.sig_sample_loaded.emit(self.current)
                return
        try:
            image = ds.load_image(s)
        except SegstudioError as exc:
            log.warning("cannot load %s: %s", s.id, exc)
            self.current = LoadedSample(row, s, np.zeros((64, 64), np.uint8), None, error=str(exc))
            self.sig_sample_loaded.emit(self.current)
            return
        gt, err = None, None
        try:
            gt = ds.load_gt(s)
        except SegstudioError as exc:
            log.warning("cannot load GT of %s: %s", s.id, exc)
            err = str(exc)
        self.current = LoadedSample(row, s, image, gt, error=err)
        self.sig_sample_loaded.emit(self.current)

    def prefetch(self, sample_ids: list[str | None]) -> None:
        if self.prefetcher is not None:
            self.prefetcher.request([sid for sid in sample_ids if sid is not None])

    def invalidate(self, sample_id: str) -> None:
        if self.prefetcher is not None:
            self.prefetcher.invalidate(sample_id)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.shutdown()
            self.prefetcher = None

    def reload_current(self) -> None:
        """Show the current sample again, read afresh (its mask changed outside the editor)."""
        if self.current is None:
            return
        row, sid = self.current.row, self.current.sample.id
        self.invalidate(sid)
        self.current = None
        self.go_to(row)

    def go_to_id(self, sample_id: str) -> bool:
        if self.dataset is None or sample_id not in self.dataset:
            return False
        self.go_to(self.dataset.index_of(sample_id))
        return True

    def next(self) -> None:
        if self.current is not None:
            self.go_to(self.current.row + 1)

    def previous(self) -> None:
        if self.current is not None:
            self.go_to(self.current.row - 1)

    def class_at(self, x: int, y: int, *, mask: np.ndarray | None = None) -> str:
        """Names of the class(es) at image pixel (x, y) in ``mask`` (default: the GT); '' without a mask."""
        cur, ds = self.current, self.dataset
        m = mask if mask is not None else (cur.gt if cur is not None else None)
        if ds is None or m is None:
            return ""
        h, w = m.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return ""
        v = int(m[y, x])
        schema = ds.schema
        if schema.multilabel:
            names = [c.name for c in schema if v >> c.id & 1]
            return ", ".join(names) if names else "background"
        if schema.ignore_index is not None and v == schema.ignore_index:
            return "ignore"
        return schema.by_id(v).name if schema.has_id(v) else f"unknown ({v})"
