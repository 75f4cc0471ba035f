from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.errors import DatasetError, UnknownKeyError
from segstudio.core.types import ClassInfo, ClassSchema


def test_schema_round_trip_and_palette() -> None:
    s = ClassSchema.from_names(["background", "left", "right"], ignore_index=255)
    assert ClassSchema.from_dict(s.to_dict()) == s
    lut = s.palette()
    assert lut.shape == (3, 3) and tuple(lut[0]) == (0, 0, 0)
    assert len({tuple(c) for c in lut}) == 3
    assert s.mask_dtype() == np.uint8


def test_multilabel_schema_uses_uint64_and_bit_ids() -> None:
    s = ClassSchema.from_names([f"finger-{i}" for i in range(29)], multilabel=True)
    assert s.mask_dtype() == np.uint64
    with pytest.raises(ValueError):
        ClassSchema(classes=(ClassInfo(64, "x", (1, 2, 3)),), multilabel=True)


def test_duplicate_ids_rejected_and_uint16_for_many_classes() -> None:
    with pytest.raises(ValueError, match="Duplicate class id"):
        ClassSchema(classes=(ClassInfo(1, "a", (0, 0, 0)), ClassInfo(1, "b", (0, 0, 0))))
    big = ClassSchema.from_names([str(i) for i in range(300)])
    assert big.mask_dtype() == np.uint16


def test_errors_name_file_and_fix() -> None:
    e = DatasetError("Mask is truncated.", path="/d/m.png", fix="Re-export the mask.")
    assert "Mask is truncated." in str(e) and "/d/m.png" in str(e) and "Re-export" in str(e)
    k = UnknownKeyError("format", "nope", ["coco", "voc"])
    assert str(k) == "Unknown format 'nope'. Valid formats: coco, voc."
    assert isinstance(k, KeyError)
