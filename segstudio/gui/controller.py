"""The review session: which dataset is open and which sample is current. Widgets only observe it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.registry import open_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedSample:
    """A decoded sample. ``image``: (H, W) or (H, W, 3), uint8/uint16. ``gt``: mask in the schema's dtype or None."""

    row: int
    sample: Sample
    image: np.ndarray
    gt: np.ndarray | None
    error: str | None = None

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

    def open(self, path: str | Path, *, format_name: str | None = None) -> Dataset:
        """Open a dataset (raises SegstudioError with a user-facing message) and show its first sample."""
        ds = open_dataset(path, format=format_name)
        self.set_dataset(ds)
        return ds

    def set_dataset(self, ds: Dataset) -> None:
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

    def class_at(self, x: int, y: int) -> str:
        """Names of the GT class(es) at image pixel (x, y), or '' when there is no GT."""
        cur, ds = self.current, self.dataset
        if cur is None or ds is None or cur.gt is None:
            return ""
        h, w = cur.gt.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return ""
        v = int(cur.gt[y, x])
        schema = ds.schema
        if schema.multilabel:
            names = [c.name for c in schema if v >> c.id & 1]
            return ", ".join(names) if names else "background"
        if schema.ignore_index is not None and v == schema.ignore_index:
            return "ignore"
        return schema.by_id(v).name if schema.has_id(v) else f"unknown ({v})"
