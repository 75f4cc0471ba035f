"""The editable label mask: one API over semantic index maps and multi-label bitmasks, with patch history.

Semantic (``schema.multilabel`` False): ``uint8``/``uint16 (H, W)``, one class id per pixel (``ignore_index`` is
a value like any other here). Multi-label: ``uint64 (H, W)``, bit ``c`` set means the pixel is in class ``c``.

Every edit goes through :meth:`LabelMask.paint` (a region set to / cleared of one class) or
:meth:`LabelMask.assign` (new per-pixel values for a box). Both honour an :class:`EditGuard` (locked classes,
"only inside class X"), build one :class:`~segstudio.masks.history.Patch`, apply it and push it to the history,
except inside a stroke (:meth:`begin_stroke` ... :meth:`end_stroke`), where each call applies at once (the canvas
shows it) and a :class:`~segstudio.masks.stroke.StrokeRecorder` turns them into a single undo step.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from psygnal import Signal, SignalGroup

from segstudio.core.types import ClassSchema
from segstudio.masks.flood import FillScope, FloodFiller, FloodRegion
from segstudio.masks.geometry import BBox
from segstudio.masks.guard import NO_GUARD, EditGuard
from segstudio.masks.history import DEFAULT_HISTORY_BUDGET, History, Patch, Step, use_cv2
from segstudio.masks.stroke import StrokeRecorder

log = logging.getLogger(__name__)



class LabelMaskEvents(SignalGroup):
    """Events of a :class:`LabelMask` (psygnal; the canvas subscribes, nothing here knows Qt)."""

    #: pixels in this box changed (an edit, an undo, a redo, a new array)
    region_changed = Signal(BBox)
    #: the unsaved-changes flag flipped (True: differs from the last :meth:`LabelMask.mark_clean`)
    dirty = Signal(bool)
    #: the undo/redo availability may have changed
    history_changed = Signal()


class LabelMask:
    """A 2-D label array with a class schema, edit guards, undoable patches and change events.

    ``array``: ``(H, W)`` of ``schema.mask_dtype()`` (``uint8``/``uint16`` semantic, ``uint64`` multi-label).
    The array is owned (copied unless ``copy=False``); read it through :attr:`array` (read-only view).
    """

    def __init__(
        self,
        array: np.ndarray,
        schema: ClassSchema,
        *,
        history_budget_bytes: int = DEFAULT_HISTORY_BUDGET,
        copy: bool = True,
    ) -> None:
        self._schema = schema
        self._array = self._checked(array, copy=copy)
        self.history = History(budget_bytes=history_budget_bytes)
        self.events = LabelMaskEvents()
        self._clean_serial: int | None = 0
        self._dirty = False
        self._stroke: StrokeRecorder | None = None
        self._filler: FloodFiller | None = None

    @classmethod
    def empty(cls, shape: tuple[int, int], schema: ClassSchema, *, fill: int = 0, **kw: int) -> LabelMask:
        """A mask of ``shape`` (``(H, W)``) holding ``fill`` everywhere (0 = background / no class)."""
        return cls(np.full(shape, fill, dtype=schema.mask_dtype()), schema, copy=False, **kw)

    def _checked(self, array: np.ndarray, *, copy: bool) -> np.ndarray:
        a = np.asarray(array)
        if a.ndim != 2:
            raise ValueError(f"a label mask is 2-D (H, W); got shape {a.shape}")
        want = self._schema.mask_dtype()
        if self._schema.multilabel:
            if a.dtype != np.uint64:
                raise ValueError(f"a multi-label mask is uint64 (one bit per class); got {a.dtype}")
        elif a.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"a semantic mask is uint8 or uint16; got {a.dtype} (schema wants {want})")
        return np.array(a, copy=True, order="C") if copy or not a.flags.c_contiguous else a

    # read access ------------------------------------------------------------------------------------------
    @property
    def schema(self) -> ClassSchema:
        return self._schema

    @property
    def multilabel(self) -> bool:
        return self._schema.multilabel

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._array.shape[0]), int(self._array.shape[1]))

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def array(self) -> np.ndarray:
        """The label array as a read-only view (``(H, W)``; edits go through the methods below)."""
        v = self._array.view()
        v.flags.writeable = False
        return v

    def plane(self, class_id: int, bbox: BBox | None = None) -> np.ndarray:
        """``bool (H, W)`` (or the ``bbox`` crop) of the pixels in class ``class_id``."""
        a = self._array if bbox is None else self._array[bbox.slices]
        if self.multilabel:
            return (a & np.uint64(1 << class_id)) != 0
        return a == class_id

    def flood_region(
        self,
        x: int,
        y: int,
        *,
        class_id: int = 0,
        scope: FillScope = "value",
        connectivity: int = 4,
        image: np.ndarray | None = None,
        tolerance: float | None = None,
    ) -> FloodRegion | None:
        """The contiguous region around pixel ``(x, y)``; see :meth:`FloodFiller.region` for the arguments."""
        if self._filler is None:
            self._filler = FloodFiller()
        return self._filler.region(
            self._array, x, y, multilabel=self.multilabel, class_id=class_id, scope=scope,
            connectivity=connectivity, image=image, tolerance=tolerance,
        )

    def flood_fill(
        self,
        x: int,
        y: int,
        *,
        class_id: int,
        erase: bool = False,
        erase_value: int = 0,
        guard: EditGuard = NO_GUARD,
        scope: FillScope = "value",
        connectivity: int = 4,
        image: np.ndarray | None = None,
        tolerance: float | None = None,
    ) -> BBox | None:
        """Flood-fill the region around pixel ``(x, y)`` into class ``class_id`` (or out of it) as one step.

        Region arguments as :meth:`FloodFiller.filled`; paint arguments as :meth:`paint` (semantic erasing with
        ``class_id`` < 0 clears any class). Returns the box changed, or None.
        """
        if self._filler is None:
            self._filler = FloodFiller()
        if not (0 <= x < self.shape[1] and 0 <= y < self.shape[0]):
            return None
        if self.dtype == np.uint8 and not (image is not None and tolerance is not None):
            return self._flood_fill_in_place(x, y, class_id=class_id, erase=erase, erase_value=erase_value,
                                             guard=guard, connectivity=connectivity)
        with self._filler.filled(
            self._array, x, y, multilabel=self.multilabel, class_id=max(class_id, 0), scope=scope,
            connectivity=connectivity, image=image, tolerance=tolerance,
        ) as found:
            if found is None:
                return None
            return self.paint(found.bbox, found.region, class_id=class_id, erase=erase, erase_value=erase_value,
                              guard=guard, known_value=found.value)

    def _flood_fill_in_place(
        self, x: int, y: int, *, class_id: int, erase: bool, erase_value: int, guard: EditGuard, connectivity: int
    ) -> BBox | None:
        # plain uint8 semantic fill: every region pixel holds the seed value, so the guard reduces to scalar
        # checks, and one OpenCV pass finds and paints the region (no separate apply pass over ~27M pixels)
        assert self._filler is not None
        seed = int(self._array[y, x])
        target = int(erase_value) if erase else int(class_id)
        if (
            seed == target
            or target in guard.locked
            or seed in guard.locked
            or (guard.paint_inside is not None and seed != guard.paint_inside)
            or (erase and class_id >= 0 and seed != class_id)
        ):
            return None
        with self._filler.painted(self._array, x, y, target, connectivity=connectivity) as (box, region, count):
            patch = Patch.uniform_region(box, region, seed ^ target, dtype=self.dtype, count=count)
        self._record(patch)
        return patch.bbox

    def value_at(self, x: int, y: int) -> int:
        return int(self._array[y, x])

    def contains(self, x: float, y: float) -> bool:
        return 0 <= x < self._array.shape[1] and 0 <= y < self._array.shape[0]

    @property
    def dirty(self) -> bool:
        """True when the array differs from the state at the last :meth:`mark_clean` (by history position)."""
        return self._dirty

    def mark_clean(self) -> None:
        """Call after saving: the current state becomes the clean one."""
        self._clean_serial = self.history.top_serial
        self._set_dirty(False)

    # editing ----------------------------------------------------------------------------------------------
    def paint(
        self,
        bbox: BBox,
        region: np.ndarray,
        *,
        class_id: int,
        erase: bool = False,
        erase_value: int = 0,
        guard: EditGuard = NO_GUARD,
        known_value: int | None = None,
    ) -> BBox | None:
        """Put the ``bool (bbox.height, bbox.width)`` ``region`` into class ``class_id`` (or take it out).

        Semantic: painting writes ``class_id``; erasing writes ``erase_value`` to region pixels that hold
        ``class_id``, or to every region pixel when ``class_id`` < 0. Multi-label: sets / clears bit ``class_id``
        only; the other planes never change. ``known_value``: the caller knows every region pixel holds this value
        (a flood fill does), which skips the per-pixel checks. Returns the box of changed pixels, or None.
        """
        clipped = bbox.clip(self.shape)
        if clipped.is_empty:
            return None
        if clipped != bbox:
            region = region[clipped.offset_within(bbox).slices]
            bbox = clipped
        region = region.astype(np.bool_, copy=False)
        old = self._array[bbox.slices]
        if self.multilabel:
            return self._paint_multilabel(bbox, region, old, class_id=class_id, erase=erase, guard=guard,
                                          known_value=known_value)
        target = int(erase_value) if erase else int(class_id)
        if target in guard.locked:
            return None
        if known_value is not None:
            kv = int(known_value)
            if (
                kv == target
                or kv in guard.locked
                or (guard.paint_inside is not None and kv != guard.paint_inside)
                or (erase and class_id >= 0 and kv != class_id)
            ):
                return None
            return self._commit(bbox, region, kv ^ target)
        if erase and class_id >= 0:
            region = region & (old == class_id)
        if guard.active:
            region = region & guard.allowed_semantic(old)
        # old ^ target inside the region, zero outside: the patch's delta in its dense form
        dense = np.zeros(bbox.shape, self.dtype)
        if use_cv2(old):
            cv2.bitwise_xor(old, target, dst=dense, mask=np.ascontiguousarray(region).view(np.uint8))  # type: ignore[call-overload]  # cv2 takes a scalar; stubs miss it
        else:
            np.bitwise_xor(old, self.dtype.type(target), out=dense, where=region)
        return self._commit_dense(bbox, dense, new_value=target)

    def _paint_multilabel(
        self,
        bbox: BBox,
        region: np.ndarray,
        old: np.ndarray,
        *,
        class_id: int,
        erase: bool,
        guard: EditGuard,
        known_value: int | None,
    ) -> BBox | None:
        if class_id in guard.locked or (guard.paint_inside == class_id and not erase):
            return None  # a locked plane never changes; painting a class only inside itself changes nothing
        bit = 1 << class_id
        if known_value is not None:
            kv = int(known_value)
            if bool(kv & bit) != erase:
                return None
            if guard.paint_inside is not None and not (kv >> guard.paint_inside) & 1:
                return None
            return self._commit(bbox, region, bit)
        has = (old & np.uint64(bit)) != 0
        changed = region & has if erase else region & ~has
        if guard.paint_inside is not None:
            changed &= (old & np.uint64(1 << guard.paint_inside)) != 0
        return self._commit(bbox, changed, bit)

    def assign(self, bbox: BBox, values: np.ndarray, *, guard: EditGuard = NO_GUARD) -> BBox | None:
        """Write ``values`` (``(bbox.height, bbox.width)`` of the mask dtype) into ``bbox`` as one step.

        Pixels the guard protects keep their value (multi-label: locked bits keep theirs, other bits change).
        Returns the box of changed pixels, or None.
        """
        clipped = bbox.clip(self.shape)
        if clipped.is_empty:
            return None
        if clipped != bbox:
            values = values[clipped.offset_within(bbox).slices]
            bbox = clipped
        old = self._array[bbox.slices]
        new = np.asarray(values, dtype=self.dtype)
        if new.shape != bbox.shape:
            raise ValueError(f"values {new.shape} do not match the box {bbox.shape}")
        if self.multilabel:
            lk = np.uint64(guard.locked_bits())
            if lk:
                new = (new & ~lk) | (old & lk)
            if guard.paint_inside is not None:
                new = np.where((old & np.uint64(1 << guard.paint_inside)) != 0, new, old)
            return self._commit_dense(bbox, old ^ new)
        dense = old ^ new
        if guard.active:
            allowed = guard.allowed_semantic(old)
            if guard.locked:
                allowed &= ~guard.locked_lut(self.dtype)[new]
            dense[~allowed] = 0
        return self._commit_dense(bbox, dense)

    def apply(self, patch: Patch) -> BBox | None:
        """Apply an externally built ``patch`` (its delta must match the current array) as one undo step."""
        self._apply_and_record(patch)
        return patch.bbox

    # strokes ----------------------------------------------------------------------------------------------
    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self) -> None:
        """Start collecting edits into one undo step (ends any stroke still open)."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = StrokeRecorder(self.dtype)

    def end_stroke(self) -> BBox | None:
        """Make the stroke's edits one undo step; returns the box the stroke changed, or None."""
        stroke, self._stroke = self._stroke, None
        patches = stroke.finish() if stroke is not None else []
        if not patches:  # nothing changed, or the stroke undid itself
            self._set_dirty(self.history.top_serial != self._clean_serial)
            return None
        step = Step(tuple(patches), serial=self.history.next_serial())
        self.history.push(step)
        self._after_history_change()
        return step.bbox

    def cancel_stroke(self) -> BBox | None:
        """Revert the open stroke's edits and record nothing; returns the box restored, or None."""
        stroke, self._stroke = self._stroke, None
        parts = stroke.parts() if stroke is not None else []
        if not parts:
            return None
        box: BBox | None = None
        for p in parts:  # XOR patches commute: any order restores the start
            p.apply_to(self._array)
            box = p.bbox.union(box)
        assert box is not None
        self.events.region_changed.emit(box)
        self._set_dirty(self.history.top_serial != self._clean_serial)
        return box

    # undo / redo ------------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return self.history.can_undo or bool(self._stroke)

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo and self._stroke is None

    def undo(self) -> BBox | None:
        """Revert the last step (an open stroke is ended first); returns the box restored, or None."""
        if self._stroke is not None:
            self.end_stroke()
        step = self.history.pop_undo()
        if step is None:
            return None
        step.apply_to(self._array)
        self.events.region_changed.emit(step.bbox)
        self._after_history_change()
        return step.bbox

    def redo(self) -> BBox | None:
        """Re-apply the last undone step; returns its box, or None."""
        if self._stroke is not None:
            self.end_stroke()
        step = self.history.pop_redo()
        if step is None:
            return None
        step.apply_to(self._array)
        self.events.region_changed.emit(step.bbox)
        self._after_history_change()
        return step.bbox

    def set_array(self, array: np.ndarray, *, copy: bool = True) -> None:
        """Replace the whole array (a loaded mask version); history is cleared and the state is clean."""
        self._stroke = None
        self._array = self._checked(array, copy=copy)
        self.history.clear()
        self._clean_serial = self.history.top_serial
        self.events.region_changed.emit(BBox.full(self._array.shape))
        self.events.history_changed.emit()
        self._set_dirty(False)

    # internals --------------------------------------------------------------------------------------------
    def _commit(
        self,
        bbox: BBox,
        changed: np.ndarray,
        delta: np.ndarray | int,
    ) -> BBox | None:
        built = Patch.build(bbox, changed, delta, dtype=self.dtype)
        if built is None:
            return None
        patch, tight_changed = built
        self._apply_and_record(patch, changed=tight_changed)
        return patch.bbox

    def _commit_dense(self, bbox: BBox, dense: np.ndarray, *, new_value: int | None = None) -> BBox | None:
        built = Patch.from_dense(bbox, dense)
        if built is None:
            return None
        patch, tight_changed = built
        self._apply_and_record(patch, changed=tight_changed, new_value=new_value)
        return patch.bbox

    def _apply_and_record(
        self, patch: Patch, *, changed: np.ndarray | None = None, new_value: int | None = None
    ) -> None:
        if new_value is not None and changed is not None and not patch.uniform and not patch.dense:
            # one new value for mixed old ones: a masked set is much cheaper than a gather/scatter xor
            np.copyto(self._array[patch.bbox.slices], self.dtype.type(new_value), where=changed)
        else:
            patch.apply_to(self._array, changed=changed)
        self._record(patch)

    def _record(self, patch: Patch) -> None:
        """Record an already applied ``patch``: into the open stroke, or as one undo step."""
        if self._stroke is not None:
            self._stroke.add(patch)
            self.events.region_changed.emit(patch.bbox)
            self._set_dirty(True)
            return
        self.history.push(Step((patch,), serial=self.history.next_serial()))
        self.events.region_changed.emit(patch.bbox)
        self._after_history_change()

    def _after_history_change(self) -> None:
        self.events.history_changed.emit()
        self._set_dirty(self.history.top_serial != self._clean_serial)

    def _set_dirty(self, value: bool) -> None:
        if value != self._dirty:
            self._dirty = value
            self.events.dirty.emit(value)
