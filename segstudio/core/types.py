"""Value objects of the data model (DESIGN §3): classes and their schema."""

from __future__ import annotations

import colorsys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RGB = tuple[int, int, int]

#: Names a class has when it is the background (the pixels no object covers), compared lower-cased and stripped:
#: the one list the metrics (background left out of the means), the engine and the writers share.
BACKGROUND_NAMES = frozenset({"background", "_background_", "__background__", "bg", "backgr", "backgrounds",
                              "back ground"})

#: Index value that marks "ignore" pixels in semantic masks, where a format has one (VOC, CamVid void).
DEFAULT_IGNORE_INDEX = 255

#: Largest number of classes a multi-label mask holds (one bit each in a uint64 bitmask).
MAX_MULTILABEL_CLASSES = 64


@dataclass(frozen=True)
class ClassInfo:
    """One class. In a semantic schema ``id`` is the pixel value; in a multi-label schema it is the bit index."""

    id: int
    name: str
    colour: RGB
    ignore: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "colour": list(self.colour), "ignore": self.ignore}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ClassInfo:
        r, g, b = (int(c) for c in d["colour"])
        return ClassInfo(id=int(d["id"]), name=str(d["name"]), colour=(r, g, b), ignore=bool(d.get("ignore", False)))


def default_colour(i: int) -> RGB:
    """A distinct, stable colour for class ``i`` (golden-ratio hue walk; class 0 is black)."""
    if i == 0:
        return (0, 0, 0)
    h = (i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


@dataclass(frozen=True)
class ClassSchema:
    """Ordered classes of a dataset.

    Semantic (``multilabel=False``): a mask is a 2-D ``uint8``/``uint16`` index map whose values are class ids;
    ``ignore_index`` (if not None) marks unlabelled pixels. Class 0 is usually background.

    Multi-label (``multilabel=True``): a mask is a 2-D ``uint64`` bitmask; bit ``c.id`` set means the pixel
    belongs to class ``c``. There is no background class: a pixel with no bit set is background. Classes overlap.
    """

    classes: tuple[ClassInfo, ...]
    multilabel: bool = False
    ignore_index: int | None = None
    _by_id: dict[int, ClassInfo] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_id: dict[int, ClassInfo] = {}
        for c in self.classes:
            if c.id in by_id:
                raise ValueError(f"Duplicate class id {c.id} ({by_id[c.id].name!r} and {c.name!r})")
            by_id[c.id] = c
        if self.multilabel and any(not 0 <= c.id < MAX_MULTILABEL_CLASSES for c in self.classes):
            raise ValueError(f"Multi-label class ids must be bit indices 0..{MAX_MULTILABEL_CLASSES - 1}")
        object.__setattr__(self, "_by_id", by_id)

    # construction ---------------------------------------------------------------------------------------------
    @staticmethod
    def from_names(
        names: Sequence[str],
        *,
        multilabel: bool = False,
        colours: Sequence[RGB] | None = None,
        ignore_index: int | None = None,
    ) -> ClassSchema:
        """Classes with ids 0..n-1 in the order given (default colours unless ``colours`` is given)."""
        cols = list(colours) if colours is not None else [default_colour(i + (1 if multilabel else 0)) for i in range(len(names))]
        return ClassSchema(
            classes=tuple(ClassInfo(i, str(n), tuple(cols[i])) for i, n in enumerate(names)),  # type: ignore[arg-type]
            multilabel=multilabel,
            ignore_index=ignore_index,
        )

    # queries --------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    def by_id(self, class_id: int) -> ClassInfo:
        return self._by_id[class_id]

    def has_id(self, class_id: int) -> bool:
        return class_id in self._by_id

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def max_id(self) -> int:
        return max(self.ids, default=0)

    def palette(self, size: int | None = None) -> np.ndarray:
        """``(size, 3) uint8`` lookup table id → colour; ids with no class are black."""
        n = size if size is not None else self.max_id + 1
        lut = np.zeros((max(n, 1), 3), np.uint8)
        for c in self.classes:
            if c.id < n:
                lut[c.id] = c.colour
        return lut

    def mask_dtype(self) -> np.dtype:
        """The dtype masks of this schema use."""
        if self.multilabel:
            return np.dtype(np.uint64)
        top = max(self.max_id, self.ignore_index or 0)
        return np.dtype(np.uint8 if top <= 255 else np.uint16)

    # serialisation --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "multilabel": self.multilabel,
            "ignore_index": self.ignore_index,
            "classes": [c.to_dict() for c in self.classes],
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ClassSchema:
        return ClassSchema(
            classes=tuple(ClassInfo.from_dict(c) for c in d["classes"]),
            multilabel=bool(d.get("multilabel", False)),
            ignore_index=d.get("ignore_index"),
        )
