"""Whole-class mask operations, each one undoable step that returns the box it changed (None: nothing changed).

All of them act on one class (semantic: the pixels holding ``class_id``; multi-label: bit ``class_id``'s plane),
honour an :class:`~segstudio.masks.label.EditGuard` (locked classes, "only inside class X") and, in multi-label
masks, never change another plane (except :func:`replace_class` and :func:`copy_prediction`, whose job it is).
Work is done on the class's bounding box, not the whole image.
"""

from __future__ import annotations

import cv2
import numpy as np

from segstudio.masks.geometry import BBox
from segstudio.masks.guard import NO_GUARD, EditGuard
from segstudio.masks.label import LabelMask


def _class_box(mask: LabelMask, class_id: int, *, pad: int = 0) -> tuple[BBox, np.ndarray] | None:
    """Box of class ``class_id`` padded by ``pad`` (clipped) and the ``bool`` plane over it; None if absent."""
    plane = mask.plane(class_id)
    box = BBox.of_nonzero(plane)
    if box is None:
        return None
    box = box.pad(pad).clip(mask.shape)
    return box, plane[box.slices]


def _erase(mask: LabelMask, box: BBox, region: np.ndarray, *, class_id: int, erase_value: int,
           guard: EditGuard) -> BBox | None:
    return mask.paint(box, region, class_id=class_id, erase=True, erase_value=erase_value, guard=guard)


def fill_holes(mask: LabelMask, *, class_id: int, guard: EditGuard = NO_GUARD) -> BBox | None:
    """Put into ``class_id`` every pixel enclosed by it (background components that do not reach the box edge).

    Semantic: an enclosed pixel of another class is filled too unless that class is locked.
    """
    found = _class_box(mask, class_id, pad=1)
    if found is None:
        return None
    box, plane = found
    # flood the outside from a padded border; whatever the flood cannot reach and is not the class is a hole
    outside = np.zeros((plane.shape[0] + 2, plane.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = plane
    ff_mask = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, ff_mask, (0, 0), 1, 0, 0, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    reached = ff_mask[2:-2, 2:-2].view(np.bool_)
    holes = ~plane & ~reached
    if not holes.any():
        return None
    return mask.paint(box, holes, class_id=class_id, guard=guard)


def _components(plane: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """``int32`` component labels of a ``bool`` plane and their areas (index 0 = background)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(plane.view(np.uint8), connectivity=connectivity)
    return labels, stats[:, cv2.CC_STAT_AREA]


def remove_islands(
    mask: LabelMask,
    *,
    class_id: int,
    min_size: int,
    connectivity: int = 8,
    erase_value: int = 0,
    guard: EditGuard = NO_GUARD,
) -> BBox | None:
    """Remove the components of ``class_id`` smaller than ``min_size`` pixels (semantic: to ``erase_value``)."""
    found = _class_box(mask, class_id)
    if found is None:
        return None
    box, plane = found
    labels, areas = _components(np.ascontiguousarray(plane), connectivity)
    small = areas < min_size
    small[0] = False
    if not small.any():
        return None
    return _erase(mask, box, small[labels], class_id=class_id, erase_value=erase_value, guard=guard)


def keep_largest(
    mask: LabelMask,
    *,
    class_id: int,
    k: int = 1,
    connectivity: int = 8,
    erase_value: int = 0,
    guard: EditGuard = NO_GUARD,
) -> BBox | None:
    """Keep the ``k`` largest components of ``class_id`` (lungs: 2) and erase the others (ties: lower label)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    found = _class_box(mask, class_id)
    if found is None:
        return None
    box, plane = found
    labels, areas = _components(np.ascontiguousarray(plane), connectivity)
    if len(areas) - 1 <= k:
        return None
    order = np.argsort(-areas[1:], kind="stable") + 1
    drop = np.ones(len(areas), np.bool_)
    drop[0] = False
    drop[order[:k]] = False
    return _erase(mask, box, drop[labels], class_id=class_id, erase_value=erase_value, guard=guard)


def _disk(radius: int) -> np.ndarray:
    """``uint8 (2r+1, 2r+1)`` Euclidean disk: offsets with dx² + dy² <= r² (cv2's ellipse element is squarer)."""
    d = np.arange(-radius, radius + 1)
    return (d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius).astype(np.uint8)


def dilate(mask: LabelMask, *, class_id: int, radius: int, guard: EditGuard = NO_GUARD) -> BBox | None:
    """Grow ``class_id`` by a disk of ``radius`` px (semantic: over other classes unless they are locked)."""
    if radius <= 0:
        return None
    found = _class_box(mask, class_id, pad=radius)
    if found is None:
        return None
    box, plane = found
    grown = cv2.dilate(plane.view(np.uint8), _disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask.paint(box, grown.view(np.bool_) & ~plane, class_id=class_id, guard=guard)


def erode(
    mask: LabelMask, *, class_id: int, radius: int, erase_value: int = 0, guard: EditGuard = NO_GUARD
) -> BBox | None:
    """Shrink ``class_id`` by a disk of ``radius`` px (the image border does not erode it)."""
    if radius <= 0:
        return None
    found = _class_box(mask, class_id, pad=1)
    if found is None:
        return None
    box, plane = found
    # replicate the border so a class touching the image edge is not eaten from outside the image
    shrunk = cv2.erode(plane.view(np.uint8), _disk(radius), borderType=cv2.BORDER_REPLICATE)
    return _erase(mask, box, plane & ~shrunk.view(np.bool_), class_id=class_id, erase_value=erase_value,
                  guard=guard)


def replace_class(mask: LabelMask, *, source: int, target: int, guard: EditGuard = NO_GUARD) -> BBox | None:
    """Relabel every pixel of class ``source`` as ``target`` (multi-label: move bit ``source`` to ``target``)."""
    if source == target:
        return None
    found = _class_box(mask, source)
    if found is None:
        return None
    box, plane = found
    if not mask.multilabel:
        return mask.paint(box, plane, class_id=target, guard=guard, known_value=source)
    old = mask.array[box.slices]
    moved = (old & ~np.uint64(1 << source)) | np.uint64(1 << target)
    return mask.assign(box, np.where(plane, moved, old), guard=guard)


def copy_prediction(
    mask: LabelMask,
    prediction: np.ndarray,
    *,
    region: np.ndarray | None = None,
    bbox: BBox | None = None,
    class_id: int | None = None,
    guard: EditGuard = NO_GUARD,
) -> BBox | None:
    """Accept the prediction here: copy ``prediction`` (same shape and dtype as the mask) into the label.

    Where: ``region`` (``bool (H, W)``) and/or ``bbox`` (the whole image when both are None). ``class_id``: copy
    only that class (semantic: pixels predicted as it become it, pixels labelled as it but predicted otherwise take
    the prediction; multi-label: only that bit), else every value.
    """
    if prediction.shape != mask.shape:
        raise ValueError(f"prediction {prediction.shape} and mask {mask.shape} differ in size")
    if prediction.dtype != mask.dtype:
        raise ValueError(f"prediction dtype {prediction.dtype} differs from the mask's {mask.dtype}")
    box = (bbox or BBox.full(mask.shape)).clip(mask.shape)
    if region is not None:
        rb = BBox.of_nonzero(region[box.slices], origin=box)
        if rb is None:
            return None
        box = rb
    if box.is_empty:
        return None
    old = mask.array[box.slices]
    pred = prediction[box.slices]
    where = np.ones(box.shape, np.bool_) if region is None else region[box.slices].astype(np.bool_)
    if class_id is None:
        new = np.where(where, pred, old)
    elif mask.multilabel:
        bit = np.uint64(1 << class_id)
        new = np.where(where, (old & ~bit) | (pred & bit), old)
    else:
        c = old.dtype.type(class_id)
        take = where & ((pred == c) | (old == c))
        new = np.where(take, pred, old)
    return mask.assign(box, new, guard=guard)
