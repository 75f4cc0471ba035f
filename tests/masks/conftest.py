"""Small masks and schemas for the editing tests (pure numpy; no real data needed)."""

from __future__ import annotations

import pytest

from segstudio.core.types import ClassSchema
from segstudio.masks import LabelMask

SEM = ClassSchema.from_names(["background", "a", "b", "c"], ignore_index=255)
# bit 63 included on purpose: a uint64 mask must use all its bits
ML = ClassSchema.from_names([f"bone{i}" for i in range(64)], multilabel=True)


@pytest.fixture
def sem_schema() -> ClassSchema:
    return SEM


@pytest.fixture
def ml_schema() -> ClassSchema:
    return ML


@pytest.fixture
def sem_mask() -> LabelMask:
    return LabelMask.empty((40, 50), SEM)


@pytest.fixture
def ml_mask() -> LabelMask:
    return LabelMask.empty((40, 50), ML)
