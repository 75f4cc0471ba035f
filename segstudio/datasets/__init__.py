"""Ring 1: dataset formats, detection and safe image/mask I/O.

The entry points the app and the CLI use::

    from segstudio.datasets import open_dataset, detect, format_names, get_format, AmbiguousFormatError
    ds = open_dataset(path)                    # detected; AmbiguousFormatError lists candidates for a chooser
    ds = open_dataset(path, format="coco", overlap="multilabel")
    image = ds.load_image(ds[0]); gt = ds.load_gt(ds[0])

Layouts, detection rules and per-format options: docs/formats.md.
"""

from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.io import (
    CorruptImageError,
    DatasetProblemError,
    ImageTooLargeError,
    read_image,
    read_mask,
)
from segstudio.datasets.registry import (
    AmbiguousFormatError,
    Detection,
    detect,
    format_descriptions,
    format_names,
    get_format,
    open_dataset,
)

__all__ = [
    "AmbiguousFormatError",
    "CorruptImageError",
    "Dataset",
    "DatasetProblemError",
    "Detection",
    "ImageTooLargeError",
    "Problem",
    "ProblemKind",
    "Sample",
    "detect",
    "format_descriptions",
    "format_names",
    "get_format",
    "open_dataset",
    "read_image",
    "read_mask",
]
