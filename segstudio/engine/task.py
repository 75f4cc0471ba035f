"""How a dataset's ClassSchema maps to network outputs and training targets.

binary: one output channel (sigmoid) for the second class; multiclass: one channel per class (softmax);
multilabel: one channel per class bit (sigmoid, overlapping). Classes flagged ``ignore`` and the schema's
``ignore_index`` become ``IGNORE`` in targets and never get a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segstudio.core.errors import SegstudioError
from segstudio.core.types import BACKGROUND_NAMES, ClassSchema

#: Target value of pixels that take no part in losses or metrics (torch's CrossEntropy default).
IGNORE = -100


class TaskError(SegstudioError):
    """The configured mode does not fit the dataset's classes."""


@dataclass(frozen=True)
class Task:
    """``class_ids[i]`` is the schema class id of class index ``i`` (multilabel: of channel ``i``)."""

    mode: str
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    schema_ignore_index: int | None = None

    @property
    def out_channels(self) -> int:
        return 1 if self.mode == "binary" else len(self.class_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def metric_indices(self) -> tuple[int, ...]:
        """Class indices averaged into mean Dice/IoU: everything but a background class (binary: the foreground)."""
        if self.mode == "multilabel":
            return tuple(range(self.num_classes))
        if self.mode == "binary":
            return (1,)
        fg = tuple(i for i, n in enumerate(self.class_names) if n.strip().lower() not in BACKGROUND_NAMES)
        return fg or tuple(range(self.num_classes))

    @property
    def background_index(self) -> int | None:
        """The class index of "nothing here": binary 0, multi-class its background class (the first not in
        :attr:`metric_indices`), None where there is none (multi-label: no class at all)."""
        if self.mode == "binary":
            return 0
        if self.mode == "multilabel":
            return None
        rest = [i for i in range(self.num_classes) if i not in self.metric_indices]
        return rest[0] if rest else None

    def lut(self, max_value: int) -> np.ndarray:
        """``(max_value + 1,) int64`` map GT value → class index (IGNORE for ignored/unknown values)."""
        lut = np.full(max_value + 1, IGNORE, np.int64)
        for i, cid in enumerate(self.class_ids):
            if cid <= max_value:
                lut[cid] = i
        return lut

    def target_from_gt(self, gt: np.ndarray) -> np.ndarray:
        """GT mask → target. Semantic: ``(H, W) int64`` class indices with IGNORE. Multilabel: ``(C, H, W) uint8``."""
        if self.mode == "multilabel":
            bits = gt.astype(np.uint64, copy=False)
            return np.stack([((bits >> np.uint64(c)) & np.uint64(1)).astype(np.uint8) for c in self.class_ids])
        top = int(gt.max()) if gt.size else 0
        return self.lut(max(top, max(self.class_ids)))[gt.astype(np.int64, copy=False)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "class_ids": list(self.class_ids),
            "class_names": list(self.class_names),
            "schema_ignore_index": self.schema_ignore_index,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Task:
        return Task(
            mode=str(d["mode"]),
            class_ids=tuple(int(c) for c in d["class_ids"]),
            class_names=tuple(str(n) for n in d["class_names"]),
            schema_ignore_index=d.get("schema_ignore_index"),
        )


def resolve_task(schema: ClassSchema, mode: str = "auto") -> Task:
    classes = [c for c in schema.classes if not c.ignore and c.id != schema.ignore_index]
    if not classes:
        raise TaskError("The dataset's class schema has no trainable class.", fix="Check the dataset's classes.")
    if mode == "auto":
        mode = "multilabel" if schema.multilabel else ("binary" if len(classes) == 2 else "multiclass")
    if schema.multilabel != (mode == "multilabel"):
        raise TaskError(
            f"Mode {mode!r} does not fit a {'multi-label' if schema.multilabel else 'semantic'} dataset.",
            fix="Set model.mode=auto (or multilabel for overlapping classes, binary/multiclass otherwise).",
        )
    if mode == "binary" and len(classes) != 2:
        raise TaskError(
            f"Binary mode needs exactly two classes (background, foreground); this dataset has {len(classes)}.",
            fix="Set model.mode=multiclass.",
        )
    if mode == "multiclass" and len(classes) < 2:
        raise TaskError("Multi-class mode needs at least two classes.", fix="Set model.mode=binary or auto.")
    return Task(
        mode=mode,
        class_ids=tuple(c.id for c in classes),
        class_names=tuple(c.name for c in classes),
        schema_ignore_index=schema.ignore_index,
    )
