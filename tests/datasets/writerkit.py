"""What the writer round-trip tests share: export items straight from a dataset, and one checked write."""

from __future__ import annotations

from pathlib import Path

from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset
from segstudio.datasets.writing import ExportItem, get_writer


def dataset_items(ds: Dataset) -> list[ExportItem]:
    """Every sample of ``ds`` as an export item (its own image, GT and split)."""
    return [ExportItem(s.id, s.image, lambda s=s: ds.load_image(s), lambda s=s: ds.load_gt(s), s.split) for s in ds]


def write_checked(name: str, items: list[ExportItem], schema: ClassSchema, out: Path, **options: object) -> Path:
    """Write ``items`` with writer ``name`` into ``out``; the writer reports each item once, in order."""
    out.mkdir(parents=True, exist_ok=True)
    progress = list(get_writer(name).write(items, schema=schema, out=out, options=options))
    assert [p.done for p in progress] == list(range(1, len(items) + 1))
    return out
