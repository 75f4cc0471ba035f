"""Training data: splits of a ``datasets.Dataset`` and a torch Dataset over them, with workspace corrections.

A correction (the user's edited mask) overrides the dataset's GT for its sample; the provider is any mapping
``sample_id -> () -> mask`` so that the workspace package can hand its store over without the engine knowing it.
Items are ``(image (C, S, S) uint8, target)`` with target ``(S, S) int64`` class indices (IGNORE where unlabelled)
or ``(K, S, S) uint8`` multi-label planes; normalisation happens on the device (``preprocess.normalize_batch``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch

from segstudio.core.errors import DatasetError
from segstudio.datasets.base import Dataset, Sample
from segstudio.engine.augment import Augmenter, resize_pair
from segstudio.engine.config import DataConfig
from segstudio.engine.preprocess import crop_box, to_channels, to_uint8
from segstudio.engine.task import IGNORE, Task

log = logging.getLogger(__name__)

#: sample id -> loader of the corrected mask (same convention as ``Dataset.load_gt``)
Corrections = Mapping[str, Callable[[], np.ndarray]]

VAL_ALIASES = ("val", "valid", "validation", "dev")
TEST_ALIASES = ("test", "testing", "holdout")


class CorrectionSource(Protocol):
    """What the engine needs of a correction store (``workspace.versions.VersionStore`` fits)."""

    def corrected_ids(self) -> set[str]: ...

    def load_latest(self, sample_id: str) -> np.ndarray | None: ...


def corrections_from(store: CorrectionSource) -> Corrections:
    """Lazy loaders of every corrected sample's current mask; nothing is decoded until a batch needs it."""
    return {sid: functools.partial(store.load_latest, sid) for sid in sorted(store.corrected_ids())}  # type: ignore[misc]


@dataclass(frozen=True)
class Splits:
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    #: "dataset" (its own split names), "random" (val_fraction by seed) or "fold k/n"
    source: str


def excluding(dataset: Dataset, sample_ids: Iterable[str]) -> Dataset:
    """``dataset`` without ``sample_ids`` (the labels a person rejected: judged wrong and not yet fixed, they neither
    train nor judge a model). The same dataset when nothing is excluded."""
    drop = set(sample_ids)
    if not drop:
        return dataset
    import dataclasses

    kept = [s for s in dataset.samples if s.id not in drop]
    return dataclasses.replace(dataset, samples=kept)


def labelled(dataset: Dataset, corrections: Corrections | None = None) -> list[Sample]:
    corr = corrections or {}
    return [s for s in dataset.samples if s.has_gt or s.id in corr]


def _presence_key(gt: np.ndarray, task: Task) -> tuple[int, ...]:
    t = task.target_from_gt(gt)
    if task.mode == "multilabel":
        return tuple(int(i) for i in np.flatnonzero(t.reshape(t.shape[0], -1).any(1)))
    return tuple(int(v) for v in np.unique(t) if v != IGNORE)


def holds_out(dataset: Dataset, cfg: DataConfig) -> bool:
    """Whether :func:`split_samples` keeps images of ``dataset`` out of training under ``cfg``: a k-fold fold, the
    dataset's own train/validation split, or a random hold-out (``val_fraction`` > 0). A run trained without one (the
    small-data recipes train on every image) has nothing unseen to be scored on by a report or a sweep."""
    if cfg.folds or cfg.val_fraction > 0:
        return True
    names = {s.split for s in dataset.samples if s.split}
    return cfg.train_split in names and bool({cfg.val_split, *VAL_ALIASES} & names)


def split_samples(
    dataset: Dataset,
    cfg: DataConfig,
    *,
    task: Task,
    seed: int = 0,
    corrections: Corrections | None = None,
) -> Splits:
    """Train/validation samples. Order of preference: k-fold (``cfg.folds``), the dataset's own train/val splits,
    a seeded random hold-out of ``cfg.val_fraction``. Test-split samples never train."""
    pool = labelled(dataset, corrections)
    if not pool:
        raise DatasetError(
            "The dataset has no sample with ground truth or a correction to train on.",
            path=dataset.root,
            fix="Check the dataset's masks (segstudio info DATASET lists problems).",
        )
    rng = np.random.default_rng(seed)
    names = {s.split for s in pool}
    val_names = {cfg.val_split, *VAL_ALIASES} & {n for n in names if n}
    if cfg.folds:
        pool = [s for s in pool if s.split not in TEST_ALIASES]
        # stratify by the set of classes present: each presence pattern is dealt round-robin over the folds
        groups: dict[tuple[int, ...], list[Sample]] = defaultdict(list)
        for s in pool:
            groups[_presence_key(_load_gt(dataset, s, corrections), task)].append(s)
        fold_of: dict[str, int] = {}
        offset = 0
        for key in sorted(groups):
            members = groups[key]
            order = rng.permutation(len(members))
            for j, k in enumerate(order):
                fold_of[members[k].id] = (offset + j) % cfg.folds
            offset += len(members)
        train = tuple(s for s in pool if fold_of[s.id] != cfg.fold)
        val = tuple(s for s in pool if fold_of[s.id] == cfg.fold)
        return Splits(train, val, f"fold {cfg.fold + 1}/{cfg.folds}")
    train_named = [s for s in pool if s.split == cfg.train_split]
    if train_named and val_names:
        return Splits(tuple(train_named), tuple(s for s in pool if s.split in val_names), "dataset")
    candidates = [s for s in pool if s.split not in TEST_ALIASES and s.split not in val_names] or pool
    n_val = int(round(len(candidates) * cfg.val_fraction))
    if cfg.val_fraction > 0 and len(candidates) >= 2:
        n_val = min(max(n_val, 1), len(candidates) - 1)
    else:
        n_val = 0
    order = rng.permutation(len(candidates))
    val_idx = set(order[:n_val].tolist())
    train = tuple(s for i, s in enumerate(candidates) if i not in val_idx)
    val = tuple(s for i, s in enumerate(candidates) if i in val_idx)
    return Splits(train, val, "random")


def fixed_split(dataset: Dataset, val_ids: Sequence[str], *, corrections: Corrections | None = None) -> Splits:
    """A validation split given by sample ids (kept fixed across retraining rounds, so that a new model and the
    one it may replace are scored on the same images). Every other labelled sample outside a test split trains;
    ids the dataset no longer has, or that have neither GT nor a correction, are left out."""
    pool = labelled(dataset, corrections)
    wanted = set(val_ids)
    val = tuple(s for s in pool if s.id in wanted)
    train = tuple(s for s in pool if s.id not in wanted and s.split not in TEST_ALIASES)
    if not train:
        raise DatasetError("Every labelled sample is in the fixed validation split: nothing is left to train on.",
                           path=dataset.root, fix="Label or correct more images, or reset the validation split.")
    return Splits(train, val, "fixed")


def _load_gt(dataset: Dataset, sample: Sample, corrections: Corrections | None) -> np.ndarray:
    gt: np.ndarray | None
    if corrections is not None and sample.id in corrections:
        gt = corrections[sample.id]()
    else:
        gt = dataset.load_gt(sample)
    if gt is None:
        raise DatasetError(f"Sample {sample.id!r} has no ground truth.", path=sample.image, fix="Leave it out or label it.")
    return gt


class SegmentationData(torch.utils.data.Dataset):
    """Torch view of some samples at ``image_size``² (with ``crop="content"``, of each image's content box).
    Decoded and resized pairs are kept in a per-process cache
    up to ``cache_mb`` so later epochs only pay for augmentation."""

    def __init__(
        self,
        dataset: Dataset,
        samples: Sequence[Sample],
        *,
        task: Task,
        image_size: int,
        in_channels: int,
        augmenter: Augmenter | None = None,
        corrections: Corrections | None = None,
        cache_mb: int = 1024,
        crop: str = "none",
    ) -> None:
        self.dataset = dataset
        #: "content": each pair is cropped to its image's content box before resizing (``DataConfig.crop``)
        self.crop = crop
        self.samples = list(samples)
        self.task = task
        self.size = image_size
        self.in_channels = in_channels
        self.augmenter = augmenter
        self.corrections = corrections
        self.cache_budget = cache_mb * 1024 * 1024
        self.cache_used = 0
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load_pair(self, i: int, *, keep: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, resized ``(S, S[, 3]) uint8`` image and target (``int16`` indices or ``(S, S, K) uint8``).
        ``keep=False``: the caller keeps its own copy (the device-resident split), so the pair leaves the cache."""
        hit = self.cache.pop(i, None) if not keep else self.cache.get(i)
        if hit is not None:
            if not keep:
                self.cache_used -= hit[0].nbytes + hit[1].nbytes
            return hit
        s = self.samples[i]
        image = to_uint8(self.dataset.load_image(s))
        gt = _load_gt(self.dataset, s, self.corrections)
        if gt.shape[:2] != image.shape[:2]:
            raise DatasetError(
                f"Sample {s.id!r}: mask size {gt.shape[:2]} differs from image size {image.shape[:2]}.",
                path=s.image,
                fix="Re-export the mask at the image's size.",
            )
        y0, y1, x0, x1 = crop_box(image, self.crop)
        image, gt = image[y0:y1, x0:x1], gt[y0:y1, x0:x1]
        if gt.ndim == 2 and gt.dtype in (np.uint8, np.uint16) and image.shape[:2] != (self.size, self.size):
            # a class-index mask shrinks before its ids become indices: nearest-neighbour resizing picks the same
            # pixels whatever their values, so the lookup gives the same target on a fraction of the pixels
            # (1 ms of a 512² sample, 16 ms of a 2048² one)
            gt = cv2.resize(gt, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        target = self.task.target_from_gt(gt)
        # int16 and (H, W, K) planes are what OpenCV/albumentations transform natively
        target = np.ascontiguousarray(target.transpose(1, 2, 0)) if target.ndim == 3 else target.astype(np.int16)
        # channels after resizing: replicating a gray X-ray to RGB at full size would triple the resize work
        image, target = resize_pair(image, target, self.size)
        pair = (to_channels(image, self.in_channels), target)
        nbytes = pair[0].nbytes + pair[1].nbytes
        if keep and self.cache_used + nbytes <= self.cache_budget:
            self.cache[i] = pair
            self.cache_used += nbytes
        return pair

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.load_pair(i)
        if self.augmenter is not None:
            image, target = self.augmenter(image, target)
        if image.ndim == 2:
            image = image[..., None]
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if target.ndim == 3:
            y = torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1)))
        else:
            y = torch.from_numpy(target.astype(np.int64))
        return x, y


def class_pixel_counts(data: SegmentationData) -> np.ndarray:
    """``(K,) int64`` labelled pixels per class over ``data`` (at training size, before augmentation)."""
    counts = np.zeros(data.task.num_classes, np.int64)
    for i in range(len(data)):
        _, t = data.load_pair(i)
        if t.ndim == 3:
            counts += t.reshape(-1, t.shape[2]).sum(0).astype(np.int64)
        else:
            v = t[t != IGNORE]
            counts += np.bincount(v.ravel(), minlength=counts.size)[: counts.size]
    return counts


def balanced_class_weights(counts: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights with mean 1 (absent classes get the largest present weight)."""
    c = counts.astype(np.float64)
    w = np.where(c > 0, c.sum() / np.maximum(c, 1) / len(c), 0.0)
    if (w > 0).any():
        w[w == 0] = w.max()
        w = w / w.mean()
    else:
        w = np.ones_like(w)
    return w.astype(np.float32)


@contextlib.contextmanager
def single_threaded_opencv(enabled: bool) -> Iterator[None]:
    """OpenCV on one thread while loader workers run: they already work in parallel, a thread pool per worker
    would compete with training for the same cores, and forked workers then never touch a pool they inherited
    without its threads (a known DataLoader + OpenCV deadlock)."""
    if not enabled:
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed numpy and the augmenter from torch's per-worker seed.

    (OpenCV's thread count must not be changed here: a forked child that touches the parent's thread pool can
    deadlock. The trainer sets it in the parent before the workers fork; see ``single_threaded_opencv``.)"""
    info = torch.utils.data.get_worker_info()
    seed = int(torch.initial_seed() % (2**31))
    np.random.seed(seed)
    if info is not None and getattr(info.dataset, "augmenter", None) is not None:
        info.dataset.augmenter.reseed(seed)  # type: ignore[attr-defined]
