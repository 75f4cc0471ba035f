"""Post-processing of predicted masks (DESIGN rule 7: a string-keyed registry).

A step is ``PostStep(name, params)``; ``apply_steps`` runs them in order on one prediction. Steps:

* ``thresholds`` — per-class decision thresholds for binary / multi-label outputs (``{class name: value}``),
  applied to the probabilities, so it comes first whatever its position;
* ``keep_largest`` — keep the ``k`` largest 8-connected components of each class (``k=1``);
* ``min_area`` — drop components smaller than ``pixels``;
* ``fill_holes`` — fill the holes inside each class's regions.

The mask steps act on each foreground class (``classes=name|name`` picks some); in a semantic mask the removed
pixels become background. From the command line a step is written ``name`` or ``name:key=value,key=value``
(``keep_largest:k=2``, ``thresholds:lesion=0.4``, ``min_area:pixels=500,classes=left lung|right lung``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import ClassSchema
from segstudio.engine.task import Task
from segstudio.metrics import background_ids


class PostprocessError(SegstudioError):
    """A post-processing step's parameters do not fit it or the checkpoint's classes."""


@dataclass(frozen=True)
class PostStep:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in STEPS:
            raise UnknownKeyError("post-processing step", self.name, list(STEPS))


@dataclass(frozen=True)
class PostContext:
    """What a step needs to know about the prediction: its classes and how to re-threshold probabilities."""

    schema: ClassSchema
    task: Task
    #: ``(probabilities (K, H, W), thresholds per output channel) -> mask``
    hard_mask: Callable[[Any, Sequence[float]], np.ndarray]
    thresholds: tuple[float, ...]


def _class_ids(ctx: PostContext, params: Mapping[str, Any]) -> list[int]:
    names = params.get("classes")
    if names is None:
        bg = set(background_ids(ctx.schema))
        return [c for c in ctx.task.class_ids if c not in bg]
    wanted = names.split("|") if isinstance(names, str) else list(names)
    by_name = {n.strip().lower(): cid for n, cid in zip(ctx.task.class_names, ctx.task.class_ids, strict=True)}
    out = []
    for n in wanted:
        key = str(n).strip().lower()
        if key not in by_name:
            raise UnknownKeyError("class", str(n), list(ctx.task.class_names))
        out.append(by_name[key])
    return out


def _planes(mask: np.ndarray, ctx: PostContext, params: Mapping[str, Any]) -> list[tuple[int, np.ndarray]]:
    if ctx.schema.multilabel:
        return [(cid, ((mask >> np.uint64(cid)) & np.uint64(1)).astype(bool)) for cid in _class_ids(ctx, params)]
    return [(cid, mask == cid) for cid in _class_ids(ctx, params)]


def _background(ctx: PostContext) -> int:
    bg = background_ids(ctx.schema)
    if not bg:
        raise PostprocessError(
            "Removing regions from a semantic mask needs a background class to put in their place.",
            fix="Use this step only with datasets that have a class named background.",
        )
    return bg[0]


def _write(mask: np.ndarray, cid: int, before: np.ndarray, after: np.ndarray, ctx: PostContext) -> np.ndarray:
    """Put the changed plane of class ``cid`` back into ``mask`` (copy-on-write)."""
    removed, added = before & ~after, after & ~before
    if not removed.any() and not added.any():
        return mask
    out = mask.copy()
    if ctx.schema.multilabel:
        bit = np.uint64(1) << np.uint64(cid)
        out[removed] &= ~bit
        out[added] |= bit
    else:
        if removed.any():
            out[removed] = _background(ctx)
        out[added] = cid
    return out


def _components(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(H, W) int32`` and areas ``(n,) int64`` of the 8-connected components (label 0 = outside)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(plane.view(np.uint8), connectivity=8)
    return labels, stats[:, cv2.CC_STAT_AREA].astype(np.int64) if n else np.zeros(1, np.int64)


def keep_largest(mask: np.ndarray, probs: Any, ctx: PostContext, params: Mapping[str, Any]) -> np.ndarray:
    k = int(params.get("k", 1))
    if k < 1:
        raise PostprocessError(f"keep_largest needs k ≥ 1, got {k}.")
    for cid, plane in _planes(mask, ctx, params):
        labels, areas = _components(plane)
        if len(areas) - 1 <= k:
            continue
        keep_labels = np.argsort(-areas[1:], kind="stable")[:k] + 1
        lut = np.zeros(len(areas), bool)
        lut[keep_labels] = True
        mask = _write(mask, cid, plane, lut[labels], ctx)
    return mask


def min_area(mask: np.ndarray, probs: Any, ctx: PostContext, params: Mapping[str, Any]) -> np.ndarray:
    if "pixels" not in params:
        raise PostprocessError("min_area needs pixels=N (the smallest region to keep).", fix="e.g. min_area:pixels=100")
    limit = int(params["pixels"])
    for cid, plane in _planes(mask, ctx, params):
        labels, areas = _components(plane)
        lut = areas >= limit
        lut[0] = False
        mask = _write(mask, cid, plane, lut[labels], ctx)
    return mask


def fill_holes(mask: np.ndarray, probs: Any, ctx: PostContext, params: Mapping[str, Any]) -> np.ndarray:
    from scipy import ndimage

    for cid, plane in _planes(mask, ctx, params):
        mask = _write(mask, cid, plane, ndimage.binary_fill_holes(plane), ctx)
    return mask


def thresholds(mask: np.ndarray, probs: Any, ctx: PostContext, params: Mapping[str, Any]) -> np.ndarray:
    if ctx.task.mode == "multiclass":
        raise PostprocessError(
            "Per-class thresholds apply to binary and multi-label models; this one picks the most likely class.",
            fix="Leave the thresholds step out for multi-class checkpoints.",
        )
    if probs is None:
        raise PostprocessError("The thresholds step needs the probabilities of the prediction.")
    ths = list(ctx.thresholds)
    names = [n.strip().lower() for n in ctx.task.class_names]
    for name, value in params.items():
        key = str(name).strip().lower()
        if key not in names:
            raise UnknownKeyError("class", str(name), list(ctx.task.class_names))
        # binary: one output channel, for the foreground class (index 1)
        channel = 0 if ctx.task.mode == "binary" else names.index(key)
        if ctx.task.mode == "binary" and names.index(key) != 1:
            raise PostprocessError(f"A binary model has one threshold, for {ctx.task.class_names[1]!r}.")
        ths[channel] = float(value)
    return ctx.hard_mask(probs, ths)


Step = Callable[[np.ndarray, Any, PostContext, Mapping[str, Any]], np.ndarray]
STEPS: dict[str, Step] = {
    "thresholds": thresholds,
    "keep_largest": keep_largest,
    "min_area": min_area,
    "fill_holes": fill_holes,
}


def step_names() -> list[str]:
    return list(STEPS)


def apply_steps(mask: np.ndarray, *, probs: Any, steps: Sequence[PostStep], ctx: PostContext) -> np.ndarray:
    """Run ``steps`` on one ``(H, W)`` mask (``probs``: its ``(K, H, W)`` probabilities, for ``thresholds``)."""
    ordered = sorted(steps, key=lambda s: s.name != "thresholds")  # stable: the others keep their order
    for s in ordered:
        mask = STEPS[s.name](mask, probs, ctx, s.params)
    return mask


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_step(spec: str) -> PostStep:
    """``"name"`` or ``"name:key=value,key=value"`` → ``PostStep``."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise PostprocessError(f"Cannot read {part!r} in post-processing step {spec!r}.", fix="Write key=value.")
        params[key.strip()] = _value(value.strip())
    return PostStep(name.strip(), params)


def describe(steps: Sequence[Any]) -> str:
    """A stable text of the steps (cache keys, logs)."""
    return ";".join(f"{s.name}:{sorted((str(k), str(v)) for k, v in s.params.items())}" for s in steps)
