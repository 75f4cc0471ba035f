"""Label-noise benchmark (issue 16): corrupt a seeded, recorded share of a dataset's masks with realistic annotator
noise, rank the set with the suspicion scorer and measure how many of the corrupted images come first.

Corruptions (pure numpy + OpenCV, each a function ``(mask, schema, rng) -> mask`` on a semantic ``(H, W)`` index
map whose background is id 0; sizes are in the image's own pixels, as the issue states them; ``--px-reference N``
reads them as pixels of an N px image instead and scales them by ``max(H, W) / N``, never below 2 px, which makes
them smaller, and harder to find, on images smaller than N):

- ``erode`` / ``dilate``: one class shrunk / grown by 5-15 px (elliptical kernel);
- ``drop_part``: one connected component of a class removed (the whole class when it has one);
- ``merge_classes``: one class relabelled as another class present in the mask;
- ``swap_left_right``: two classes' labels exchanged (a left/right pair such as the lungs when the schema has one,
  else two present classes);
- ``shift``: one class moved by 10-20 px in a random direction;
- ``coarse_polygon``: a class region replaced by a filled polygon of few vertices (``cv2.approxPolyDP``, large
  epsilon);
- ``stray_blob``: a blob of a class, 0.3-2 % of the image area, added where the class is not.

A class is redrawn as a layer of filled outlines: what it encloses (the windows of a facade) stays on top of it,
and the pixels it gives up (erode, drop, shift, coarse outline) go back to the layer beneath, the innermost other
class whose outline encloses them (a window dropped from a facade becomes facade, not a hole), else background. A
corruption that would change less than 0.1 % of the image tries another class; when no class allows the kind (a
mask with a single class cannot be merged), the next of the set's kinds is applied and recorded instead.

``corrupt_dataset`` picks the images, :class:`CorruptedSet` produces their masks lazily in memory (nothing is
written into the dataset's folder) and records what it did in ``manifest()``; ``precision_recall_at_k`` and
``per_kind_recall`` score a ranking.

``python -m bench.label_noise [--datasets montgomery,facade] [--out bench/label_noise.json]`` ranks each corrupted
set with ``segstudio.metrics.suspicion.rank_dataset`` without a model and writes ``{"machine", "datasets": {name:
{"without_model": {...}, "manifest": {...}}}}``. With ``--folds K`` a ``with_model`` row is added: out-of-fold
predictions of K models trained on the noisy labels (``CorruptedSet.as_dataset()``; recipes in
:data:`FOLD_TRAINING`), with their probabilities.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from segstudio.core.types import ClassSchema  # noqa: E402

SHARED = Path(os.environ.get("SEGSTUDIO_SHARED", REPO.parent / "shared" / "datasets"))

#: name on the command line -> folder under the shared datasets
DATASETS = {"montgomery": "montgomery_cxr/data", "facade": "facade_coco"}

#: bumped when a corruption changes what it draws (the out-of-fold cache is keyed by it: models trained on other
#: labels are not reused)
CORRUPTION_VERSION = 2

#: how the out-of-fold models predict (part of the cache's key): since 2026-12-06 with each checkpoint's
#: recommended inference (TTA, post-processing), as ``segstudio quality --folds`` and the app do
OOF_INFERENCE = "recommended"

#: a corruption must change at least this share of the image's pixels, else another class is tried
MIN_CHANGED_FRACTION = 0.001

Detail = dict[str, Any]
Corruption = Callable[[np.ndarray, ClassSchema, np.random.Generator, "float | None"], tuple[np.ndarray, Detail]]


class NotApplicable(ValueError):
    """The mask offers no class (or pair of classes) this corruption can change materially."""


# helpers --------------------------------------------------------------------------------------------------------


def scaled_px(base: float, shape: Sequence[int], reference: float | None = None) -> int:
    """``base`` pixels of the image itself (``reference`` None), or of a ``reference`` px image scaled to an image
    of ``shape``; at least 2."""
    if reference is None:
        return max(2, int(round(base)))
    return max(2, int(round(base * max(shape[0], shape[1]) / float(reference))))


def present_classes(mask: np.ndarray, schema: ClassSchema) -> list[int]:
    """Ids of the schema's non-background classes that have pixels in ``mask`` (ascending)."""
    if schema.multilabel:
        raise ValueError("label-noise corruptions take semantic index maps, not multi-label bitmasks")
    values = set(np.unique(mask).tolist())
    return [c.id for c in schema if c.id != 0 and c.id != schema.ignore_index and not c.ignore and c.id in values]


def _ellipse(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def _uncover(mask: np.ndarray, vacated: np.ndarray, leaving: int) -> np.ndarray:
    """``mask`` with the ``vacated`` pixels of class ``leaving`` given back to the layer beneath: the innermost other
    class whose filled outline encloses them (a window dropped from a facade becomes facade), else background."""
    out = mask.copy()
    if not vacated.any():
        return out
    out[vacated] = 0
    layers = []
    for d in np.unique(mask).tolist():
        if d in (0, leaving):
            continue
        filled = _filled(mask == d)
        inside = vacated & filled
        if inside.any():
            layers.append((int(filled.sum()), d, inside))
    for _, d, inside in sorted(layers, key=lambda t: (-t[0], t[1])):  # larger outlines first, inner ones on top
        out[inside] = d
    return out


def _changed_enough(before: np.ndarray, after: np.ndarray) -> bool:
    return int(np.count_nonzero(before != after)) >= max(1, int(MIN_CHANGED_FRACTION * before.size))


def _try_classes(mask: np.ndarray, classes: Iterable[int], rng: np.random.Generator,
                 attempt: Callable[[int], tuple[np.ndarray, Detail] | None]) -> tuple[np.ndarray, Detail]:
    """The first of ``classes`` (in a seeded order) whose ``attempt`` changes the mask materially."""
    order = list(classes)
    rng.shuffle(order)
    for c in order:
        got = attempt(int(c))
        if got is not None and _changed_enough(mask, got[0]):
            return got
    raise NotApplicable("no class of this mask can be changed materially")


def _components(plane: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(count, labels, areas)`` of the 8-connected components of a boolean plane (labels 1..count)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(plane.astype(np.uint8), connectivity=8)
    return n - 1, labels, stats[1:, cv2.CC_STAT_AREA]


# the corruptions -------------------------------------------------------------------------------------------------


def _filled(plane: np.ndarray) -> np.ndarray:
    """The boolean plane with every hole filled (its external outlines, filled)."""
    contours, _ = cv2.findContours(plane.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(plane.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _relayer(mask: np.ndarray, c: int, new_region: np.ndarray, schema: ClassSchema) -> np.ndarray:
    """``mask`` with class ``c`` redrawn as the filled region ``new_region``.

    A class is treated as a layer drawn as filled outlines; what its outlines enclose (windows on a facade) lies on
    top of it and stays. Pixels of ``c`` outside the new region take their surroundings' label; the new region paints
    ``c`` over everything else (neighbours included, as an annotator's brush does), never over ignore pixels."""
    plane = mask == c
    on_top = _filled(plane) & ~plane
    out = _uncover(mask, plane & ~new_region, c)
    paint = new_region & ~on_top
    if schema.ignore_index is not None:
        paint &= mask != schema.ignore_index
    out[paint] = c
    return out


def _erode(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
           ref: float | None = None) -> tuple[np.ndarray, Detail]:
    px = scaled_px(int(rng.integers(5, 16)), mask.shape, ref)

    def attempt(c: int) -> tuple[np.ndarray, Detail]:
        kept = cv2.erode(_filled(mask == c).astype(np.uint8), _ellipse(px)).astype(bool)
        return _relayer(mask, c, kept, schema), {"class_id": c, "px": px}

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


def _dilate(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
            ref: float | None = None) -> tuple[np.ndarray, Detail]:
    px = scaled_px(int(rng.integers(5, 16)), mask.shape, ref)

    def attempt(c: int) -> tuple[np.ndarray, Detail]:
        grown = cv2.dilate(_filled(mask == c).astype(np.uint8), _ellipse(px)).astype(bool)
        return _relayer(mask, c, grown, schema), {"class_id": c, "px": px}

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


def _drop_part(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
               ref: float | None = None) -> tuple[np.ndarray, Detail]:
    def attempt(c: int) -> tuple[np.ndarray, Detail]:
        filled = _filled(mask == c)
        n, labels, areas = _components(filled)
        if n <= 1:
            return _relayer(mask, c, np.zeros_like(filled), schema), {"class_id": c, "whole_class": True}
        # a part worth the name: at least a tenth of the class's largest component
        candidates = np.flatnonzero(areas >= 0.1 * areas.max()) + 1
        part = int(rng.choice(candidates))
        return (_relayer(mask, c, filled & (labels != part), schema),
                {"class_id": c, "whole_class": False, "part_area": int(areas[part - 1]), "parts": n})

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


def _merge_classes(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
                   ref: float | None = None) -> tuple[np.ndarray, Detail]:
    present = present_classes(mask, schema)
    if len(present) < 2:
        raise NotApplicable("merging needs two classes in the mask")
    pairs = [(a, b) for a in present for b in present if a != b]
    for i in rng.permutation(len(pairs)):
        a, b = pairs[int(i)]
        out = mask.copy()
        out[mask == a] = b
        if _changed_enough(mask, out):
            return out, {"class_id": a, "into_class_id": b}
    raise NotApplicable("no class of this mask is large enough to merge")


_LEFT_RIGHT = (("left", "right"), ("l", "r"), ("lt", "rt"))


def _side_key(name: str) -> tuple[str, str] | None:
    """``(side, rest)`` when a class name says left or right (``left lung``, ``lung_R``, ``L-hand``), else None."""
    words = [w for w in name.lower().replace("_", " ").replace("-", " ").split() if w]
    for i, w in enumerate(words):
        for left, right in _LEFT_RIGHT:
            if w in (left, right):
                side = "left" if w == left else "right"
                return side, " ".join(words[:i] + words[i + 1:])
    return None


def left_right_pairs(schema: ClassSchema) -> list[tuple[int, int]]:
    """``(left id, right id)`` of the classes whose names differ only by the side (``left lung`` / ``right lung``)."""
    sides: dict[tuple[str, str], int] = {}
    for c in schema:
        key = _side_key(c.name)
        if key is not None:
            sides.setdefault(key, c.id)
    return [(lid, sides[("right", rest)]) for (side, rest), lid in sides.items()
            if side == "left" and ("right", rest) in sides]


def _swap_left_right(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
                     ref: float | None = None) -> tuple[np.ndarray, Detail]:
    present = present_classes(mask, schema)
    pairs = [p for p in left_right_pairs(schema) if p[0] in present and p[1] in present]
    left_right = bool(pairs)
    if not pairs:
        pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1:]]
    for i in rng.permutation(len(pairs)):
        a, b = pairs[int(i)]
        out = mask.copy()
        out[mask == a] = b
        out[mask == b] = a
        if _changed_enough(mask, out):
            return out, {"class_id": a, "with_class_id": b, "left_right": left_right}
    raise NotApplicable("swapping needs two classes in the mask")


def _shift(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
           ref: float | None = None) -> tuple[np.ndarray, Detail]:
    dist = float(rng.uniform(10.0, 20.0))
    if ref is not None:
        dist = max(2.0, dist * max(mask.shape) / float(ref))
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    dx, dy = int(round(dist * math.cos(angle))), int(round(dist * math.sin(angle)))
    h, w = mask.shape

    def attempt(c: int) -> tuple[np.ndarray, Detail]:
        filled = _filled(mask == c)
        moved = np.zeros_like(filled)
        moved[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
            filled[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        return _relayer(mask, c, moved, schema), {"class_id": c, "dx": dx, "dy": dy}

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


def _coarse_polygon(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
                    ref: float | None = None) -> tuple[np.ndarray, Detail]:
    max_vertices = int(rng.integers(6, 11))  # "few vertices": 6-10 per outline

    def attempt(c: int) -> tuple[np.ndarray, Detail]:
        contours, _ = cv2.findContours((mask == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        polys = []
        for cnt in contours:
            eps = max(1.0, 0.01 * cv2.arcLength(cnt, True))
            approx = cv2.approxPolyDP(cnt, eps, True)
            while len(approx) > max_vertices:
                eps *= 1.3
                approx = cv2.approxPolyDP(cnt, eps, True)
            polys.append(approx)
        region = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(region, polys, 1)
        return (_relayer(mask, c, region.astype(bool), schema),
                {"class_id": c, "outlines": len(polys), "max_vertices": max_vertices})

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


def _stray_blob(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
                ref: float | None = None) -> tuple[np.ndarray, Detail]:
    h, w = mask.shape
    area = float(rng.uniform(0.003, 0.02)) * h * w
    ratio = float(rng.uniform(0.5, 1.0))  # minor / major axis
    angle = float(rng.uniform(0.0, 180.0))
    major = math.sqrt(area / (math.pi * ratio))
    axes = (max(1, int(round(major))), max(1, int(round(major * ratio))))
    gap = scaled_px(5, mask.shape, ref)

    def attempt(c: int) -> tuple[np.ndarray, Detail] | None:
        filled = _filled(mask == c)
        near = cv2.dilate(filled.astype(np.uint8), _ellipse(gap)).astype(bool)
        for _ in range(50):
            cx = int(rng.integers(axes[0], max(axes[0] + 1, w - axes[0])))
            cy = int(rng.integers(axes[0], max(axes[0] + 1, h - axes[0])))
            blob = np.zeros((h, w), np.uint8)
            cv2.ellipse(blob, (cx, cy), axes, angle, 0, 360, 1, thickness=-1)
            region = blob.astype(bool)
            if schema.ignore_index is not None:
                region &= mask != schema.ignore_index
            if region.any() and not (region & near).any():
                return (_relayer(mask, c, filled | region, schema),
                        {"class_id": c, "centre": [cx, cy], "area": int(region.sum())})
        return None

    return _try_classes(mask, present_classes(mask, schema), rng, attempt)


#: every noise kind, in the order the fallback walks
CORRUPTIONS: dict[str, Corruption] = {
    "erode": _erode,
    "dilate": _dilate,
    "drop_part": _drop_part,
    "merge_classes": _merge_classes,
    "swap_left_right": _swap_left_right,
    "shift": _shift,
    "coarse_polygon": _coarse_polygon,
    "stray_blob": _stray_blob,
}
ALL: tuple[str, ...] = tuple(CORRUPTIONS)


def corrupt(kind: str, mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator,
            px_reference: float | None = None) -> tuple[np.ndarray, Detail]:
    """``(corrupted mask, what was done)`` for one noise kind; ``NotApplicable`` when the mask does not allow it.
    Sizes are the image's pixels, or a ``px_reference`` px image's scaled to this one. The input is left as it is."""
    if mask.ndim != 2:
        raise ValueError(f"a semantic (H, W) mask is needed, got shape {mask.shape}")
    return CORRUPTIONS[kind](mask, schema, rng, px_reference)


def erode(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """One class shrunk by 5-15 px, elliptical kernel."""
    return corrupt("erode", mask, schema, rng)[0]


def dilate(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """One class grown by 5-15 px over its neighbours, elliptical kernel."""
    return corrupt("dilate", mask, schema, rng)[0]


def drop_part(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """One connected component of a class removed, or the whole class when it has one."""
    return corrupt("drop_part", mask, schema, rng)[0]


def merge_classes(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """One class relabelled as another present class."""
    return corrupt("merge_classes", mask, schema, rng)[0]


def swap_left_right(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """A left/right pair's labels exchanged (two present classes when the schema has no such pair)."""
    return corrupt("swap_left_right", mask, schema, rng)[0]


def shift(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """One class moved by 10-20 px in a random direction."""
    return corrupt("shift", mask, schema, rng)[0]


def coarse_polygon(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """A class region replaced by filled polygons of at most 6-10 vertices each."""
    return corrupt("coarse_polygon", mask, schema, rng)[0]


def stray_blob(mask: np.ndarray, schema: ClassSchema, rng: np.random.Generator) -> np.ndarray:
    """A blob of a present class, 0.3-2 % of the image, added apart from that class."""
    return corrupt("stray_blob", mask, schema, rng)[0]


# the corrupted set -----------------------------------------------------------------------------------------------


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """The generator of one sample's corruption: the same for a seed and id whatever order masks are asked in."""
    return np.random.default_rng([seed, zlib.crc32(sample_id.encode("utf-8"))])


@dataclass
class CorruptedSet:
    """A dataset's masks with a recorded share corrupted. ``masks(id)`` is the corrupted mask for the chosen samples
    and the dataset's GT for the others, produced in memory on first use and cached; ``corrupted`` maps each chosen
    id to its noise kind (updated to the kind actually applied, should the assigned one not fit the mask)."""

    dataset: Any
    seed: int
    fraction: float
    kinds: tuple[str, ...]
    corrupted: dict[str, str]
    assigned: dict[str, str] = field(default_factory=dict)
    px_reference: float | None = None
    details: dict[str, Detail] = field(default_factory=dict)
    _cache: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)

    @property
    def sample_ids(self) -> list[str]:
        """The ids of the samples with GT, in dataset order (the set that was sampled from)."""
        return [s.id for s in self.dataset if s.has_gt]

    def masks(self, sample_id: str) -> np.ndarray | None:
        if sample_id not in self._cache:
            gt = self.dataset.load_gt(sample_id)
            if gt is not None and sample_id in self.corrupted:
                gt = self._corrupt(sample_id, gt)
            self._cache[sample_id] = gt
        got = self._cache[sample_id]
        return None if got is None else got.copy()

    def _corrupt(self, sample_id: str, gt: np.ndarray) -> np.ndarray:
        kind = self.assigned[sample_id]
        i = self.kinds.index(kind)
        order = self.kinds[i:] + self.kinds[:i]  # the assigned kind, then the next ones of the set's kinds
        for k in order:
            try:
                out, detail = corrupt(k, gt, self.dataset.schema, sample_rng(self.seed, sample_id), self.px_reference)
            except NotApplicable:
                continue
            self.corrupted[sample_id] = k
            self.details[sample_id] = detail if k == kind else {**detail, "instead_of": kind}
            return out
        raise NotApplicable(f"{sample_id}: no noise kind applies to this mask")

    def as_dataset(self) -> Any:
        """The dataset with these masks as its GT (what a model trained on the noisy labels, such as the engine's
        out-of-fold runs for a "with model" row, must see); images and everything else are the dataset's."""
        from dataclasses import replace

        return replace(self.dataset, read_gt=lambda _ds, s: self.masks(s.id), problems=list(self.dataset.problems),
                       options=dict(self.dataset.options))

    def materialise(self) -> None:
        """Produce every mask now (so that the kinds and details are final)."""
        for sid in self.sample_ids:
            self.masks(sid)

    def manifest(self) -> dict[str, Any]:
        """What was corrupted and how: enough to reproduce the set (JSON-safe)."""
        return {
            "seed": self.seed,
            "fraction": self.fraction,
            "px_reference": self.px_reference,
            "kinds": list(self.kinds),
            "n": len(self.sample_ids),
            "k": len(self.corrupted),
            "corrupted": [
                {"sample_id": sid, "kind": kind, "assigned": self.assigned[sid], **(
                    {"detail": self.details[sid]} if sid in self.details else {})}
                for sid, kind in sorted(self.corrupted.items())
            ],
        }


def corrupt_dataset(dataset: Any, *, fraction: float = 0.2, seed: int = 0, kinds: Sequence[str] = ALL,
                    px_reference: float | None = None) -> CorruptedSet:
    """A seeded ``fraction`` of the samples with GT (rounded half up), each given a noise kind round-robin over
    ``kinds`` after a seeded shuffle (every kind appears when there are as many chosen samples as kinds). Sizes are
    the images' own pixels, or ``px_reference`` px images' scaled to each image (:func:`scaled_px`)."""
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in CORRUPTIONS]
    if unknown or not kinds:
        raise ValueError(f"unknown noise kinds {unknown}; known: {list(ALL)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    ids = [s.id for s in dataset if s.has_gt]
    k = int(math.floor(fraction * len(ids) + 0.5))
    rng = np.random.default_rng(seed)
    chosen = [ids[int(i)] for i in rng.choice(len(ids), size=k, replace=False)] if k else []
    order = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    assigned = {sid: order[i % len(order)] for i, sid in enumerate(chosen)}
    return CorruptedSet(dataset=dataset, seed=seed, fraction=fraction, kinds=kinds, corrupted=dict(assigned),
                        assigned=assigned, px_reference=px_reference)


# scoring ---------------------------------------------------------------------------------------------------------


def precision_recall_at_k(ranked_ids: Sequence[str], corrupted_ids: Iterable[str]) -> tuple[float, float]:
    """Precision and recall of the first k of ``ranked_ids``, k = the number of corrupted images."""
    truth = set(corrupted_ids)
    if not truth:
        raise ValueError("no corrupted images: precision and recall at k are undefined")
    k = len(truth)
    hits = len(truth & set(ranked_ids[:k]))
    return hits / k, hits / len(truth)


def per_kind_recall(ranked_ids: Sequence[str], corrupted: dict[str, str]) -> dict[str, float]:
    """For each noise kind, the share of its images within the first k (k = all corrupted images)."""
    top = set(ranked_ids[:len(corrupted)])
    out: dict[str, float] = {}
    for kind in sorted(set(corrupted.values())):
        ids = [sid for sid, k in corrupted.items() if k == kind]
        out[kind] = sum(sid in top for sid in ids) / len(ids)
    return out


def evaluate_ranking(ranked: Sequence[Any], corrupted: dict[str, str]) -> dict[str, Any]:
    """The figures of one ranking (a list of objects with ``sample_id`` and ``score``, most suspicious first)."""
    ranked_ids = [r.sample_id for r in ranked]
    precision, recall = precision_recall_at_k(ranked_ids, corrupted)
    position = {sid: i + 1 for i, sid in enumerate(ranked_ids)}
    scores = {r.sample_id: float(r.score) for r in ranked}
    return {
        "precision_at_k": precision,
        "recall_at_k": recall,
        "per_kind_recall": per_kind_recall(ranked_ids, corrupted),
        "corrupted_ranks": {sid: {"kind": kind, "rank": position.get(sid), "score": scores.get(sid)}
                            for sid, kind in sorted(corrupted.items())},
    }


# the runner ------------------------------------------------------------------------------------------------------


def rank_without_model(dataset: Any, corrupted: CorruptedSet) -> list[Any]:
    from segstudio.metrics.suspicion import rank_dataset

    return rank_dataset(dataset, masks=corrupted.masks, sample_ids=corrupted.sample_ids, predictions=None,
                        probabilities=None)


#: the training of the out-of-fold models, per dataset: its recipe and settings sized for a CPU (minutes, not hours)
FOLD_TRAINING: dict[str, tuple[str, tuple[str, ...]]] = {
    "montgomery": ("lungs-lr", ("model.encoder=resnet18", "image_size=256", "epochs=20", "batch_size=4",
                                "num_workers=0")),
    "facade": ("facade", ("model.encoder=resnet18", "image_size=256", "epochs=10", "batch_size=4", "num_workers=0")),
}


def out_of_fold_predictions(corrupted: CorruptedSet, *, name: str, folds: int, device: str = "cpu") -> Any:
    """Out-of-fold predictions of ``folds`` models trained on the noisy labels (``corrupted.as_dataset()``: a
    cleaner never has clean labels to train on), with their probabilities."""
    import tempfile

    from segstudio.engine.kfold import OutOfFold, out_of_fold
    from segstudio.engine.recipes import load_recipe

    recipe, overrides = FOLD_TRAINING[name]
    cfg = load_recipe(recipe).with_overrides(list(overrides))
    oof: OutOfFold | None = None
    with tempfile.TemporaryDirectory(prefix="label-noise-folds-") as root:
        for ev in out_of_fold(corrupted.as_dataset(), cfg, k=folds, run_root=root, device=device):
            if isinstance(ev, OutOfFold):
                oof = ev
    assert oof is not None and not oof.cancelled
    return oof


def cached_out_of_fold(corrupted: CorruptedSet, *, name: str, folds: int, seed: int, cache: Path | None) -> Any:
    """:func:`out_of_fold_predictions`, kept in ``cache`` (one ``.npz`` per dataset, seed and k, keyed also by the
    fold models' config and the corruption's version) so that the rankers can be re-run on the same predictions
    without training again."""
    from segstudio.engine.kfold import OutOfFold
    from segstudio.engine.recipes import load_recipe

    recipe, overrides = FOLD_TRAINING[name]
    labels = (CORRUPTION_VERSION, corrupted.px_reference, corrupted.fraction, OOF_INFERENCE)
    # keyed by the fold models' whole config, so that a recipe that changes trains its models anew
    config = load_recipe(recipe).with_overrides(list(overrides)).to_json()
    key = f"{name}-seed{seed}-k{folds}-{zlib.crc32(repr((config, labels)).encode()):08x}"
    file = cache / f"{key}.npz" if cache is not None else None
    if file is not None and file.is_file():
        with np.load(file) as z:
            ids = [str(x) for x in z["ids"]]
            return OutOfFold(masks={sid: z[f"m{i}"] for i, sid in enumerate(ids)},
                             probabilities={sid: z[f"p{i}"] for i, sid in enumerate(ids)})
    oof = out_of_fold_predictions(corrupted, name=name, folds=folds)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        ids = sorted(oof.masks)
        arrays = {f"m{i}": oof.masks[sid] for i, sid in enumerate(ids)}
        arrays.update({f"p{i}": oof.probabilities[sid] for i, sid in enumerate(ids)})
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.array(ids), **arrays)
        os.replace(tmp, file)
    return oof


def rank_with_model(dataset: Any, corrupted: CorruptedSet, oof: Any) -> list[Any]:
    from segstudio.metrics.suspicion import rank_dataset

    return rank_dataset(dataset, masks=corrupted.masks, sample_ids=corrupted.sample_ids, predictions=oof.mask,
                        probabilities=oof.probs)


#: cleanlab is given the same labels and probabilities at this size (the longest side): its arrays are N × K × H × W
CLEANLAB_SIDE = 256


def rank_cleanlab(dataset: Any, corrupted: CorruptedSet, oof: Any) -> list[Any] | None:
    """cleanlab's segmentation label-quality scores (``cleanlab.segmentation.rank.get_label_quality_scores``,
    softmin) on the same corrupted labels and the same out-of-fold probabilities; None when cleanlab is not
    installed (``pip install -e .[bench]``)."""
    try:
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        print("cleanlab is not installed (pip install -e '.[bench]'): its row is left out", file=sys.stderr)
        return None
    import cv2

    ids = [sid for sid in corrupted.sample_ids if oof.probs(sid) is not None]
    index = {cid: i for i, cid in enumerate(dataset.schema.ids)}
    lut = np.zeros(max(index) + 1, np.int64)
    for cid, i in index.items():
        lut[cid] = i
    labels, probs = [], []
    for sid in ids:
        m, p = corrupted.masks(sid), oof.probs(sid)
        scale = min(1.0, CLEANLAB_SIDE / max(m.shape))
        size = (max(1, round(m.shape[1] * scale)), max(1, round(m.shape[0] * scale)))
        labels.append(lut[cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)])
        probs.append(np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in p]))
    scores, _ = get_label_quality_scores(np.stack(labels), np.stack(probs), verbose=False)

    class _Row:  # what evaluate_ranking reads
        def __init__(self, sid: str, score: float) -> None:
            self.sample_id, self.score = sid, score

    order = np.argsort(scores, kind="stable")  # low quality first
    return [_Row(ids[i], 1.0 - float(scores[i])) for i in order]


#: row name -> ranking function (``with_model`` runs with ``--folds K``)
MODES: dict[str, Callable[[Any, CorruptedSet], list[Any]]] = {"without_model": rank_without_model}


def run_dataset(name: str, path: Path, *, seed: int = 0, fraction: float = 0.2, folds: int = 0,
                cache: Path | None = None, px_reference: float | None = None) -> dict[str, Any]:
    from segstudio.datasets.registry import open_dataset

    dataset = open_dataset(path)
    corrupted = corrupt_dataset(dataset, fraction=fraction, seed=seed, px_reference=px_reference)
    t0 = time.perf_counter()
    corrupted.materialise()
    prepare_s = time.perf_counter() - t0
    out: dict[str, Any] = {"path": str(path), "format": dataset.format_name, "prepare_seconds": prepare_s}
    modes: dict[str, Callable[[Any, CorruptedSet], list[Any] | None]] = dict(MODES)
    if folds:
        t0 = time.perf_counter()
        oof = cached_out_of_fold(corrupted, name=name, folds=folds, seed=seed, cache=cache)
        out["folds"] = {"k": folds, "recipe": FOLD_TRAINING[name][0], "overrides": list(FOLD_TRAINING[name][1]),
                        "train_seconds": time.perf_counter() - t0}
        modes["with_model"] = lambda ds, cs: rank_with_model(ds, cs, oof)
        modes["cleanlab"] = lambda ds, cs: rank_cleanlab(ds, cs, oof)
    for mode, rank in modes.items():
        t0 = time.perf_counter()
        ranked = rank(dataset, corrupted)
        seconds = time.perf_counter() - t0
        if ranked is None:
            continue
        row = evaluate_ranking(ranked, corrupted.corrupted)
        out[mode] = {"n": len(corrupted.sample_ids), "k": len(corrupted.corrupted), "seconds": seconds, **row}
    out["manifest"] = corrupted.manifest()
    return out


def print_table(results: dict[str, Any]) -> None:
    kinds = list(ALL)
    print(f"\n{'dataset':<12} {'mode':<14} {'n':>4} {'k':>3} {'P@k':>6} {'R@k':>6} {'sec':>7}  per-kind recall@k")
    for name, res in results.items():
        for mode in (*MODES, "with_model", "cleanlab"):
            row = res.get(mode)
            if row is None:
                continue
            per = "  ".join(f"{k}={row['per_kind_recall'][k]:.2f}" for k in kinds if k in row["per_kind_recall"])
            print(f"{name:<12} {mode:<14} {row['n']:>4} {row['k']:>3} {row['precision_at_k']:>6.2f} "
                  f"{row['recall_at_k']:>6.2f} {row['seconds']:>7.1f}  {per}")


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import machine
    from segstudio.core.atomic import atomic_write_json

    ap = argparse.ArgumentParser(prog="python -m bench.label_noise", description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help=f"comma-separated, of {', '.join(DATASETS)} (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=HERE / "label_noise.json")
    ap.add_argument("--folds", type=int, default=0, metavar="K",
                    help="also rank with out-of-fold predictions of K models trained on the noisy labels (minutes)")
    ap.add_argument("--px-reference", type=float, default=None, metavar="N",
                    help="read the noise sizes as pixels of an N px image, scaled to each image (default: the "
                         "images' own pixels, as the issue states them)")
    ap.add_argument("--cache", type=Path, default=None, metavar="DIR",
                    help="keep the out-of-fold predictions in DIR and reuse them on the next run (same seed and K)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        ap.error(f"unknown datasets {unknown}; known: {', '.join(DATASETS)}")
    results: dict[str, Any] = {}
    for name in names:
        path = SHARED / DATASETS[name]
        if not path.exists():
            print(f"{name}: {path} is missing, skipped", file=sys.stderr)
            continue
        print(f"-- {name} ({path})", flush=True)
        results[name] = run_dataset(name, path, seed=args.seed, fraction=args.fraction, folds=args.folds,
                                    cache=args.cache, px_reference=args.px_reference)

    old: dict[str, Any] = {}
    if args.out.exists():
        import json

        try:
            old = json.loads(args.out.read_text()).get("datasets", {})
        except (ValueError, AttributeError):
            old = {}
    atomic_write_json(args.out, {"machine": machine(), "datasets": {**old, **results}})
    print_table(results)
    print(f"\nwrote {args.out}")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
