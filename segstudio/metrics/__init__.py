"""GT vs prediction metrics and label-suspicion scores (ring 1: numpy, scipy, OpenCV only).

Semantic masks are ``(H, W)`` ``uint8``/``uint16`` class-index maps; multi-label masks are ``(H, W)`` ``uint64``
bitmasks (bit ``c`` per class) — see :class:`segstudio.core.types.ClassSchema`.
"""

from segstudio.metrics.compare import (
    BACKGROUND_NAMES,
    ClassScore,
    ErrorCode,
    SampleComparison,
    background_ids,
    class_plane,
    compare_masks,
    comparison_from_counts,
    error_counts,
    error_map,
)
from segstudio.metrics.confusion import (
    ClassCounts,
    class_counts,
    confusion_matrix,
    counts_from_matrix,
    multilabel_counts,
)
from segstudio.metrics.quality import (
    QUALITY_CHECKS,
    ClassQuality,
    QualityCheck,
    QualityReport,
    assess_mask,
    get_check,
    shape_figures,
)
from segstudio.metrics.scores import (
    average_surface_distance,
    class_accuracy,
    dice,
    hd95,
    iou,
    pixel_accuracy,
    precision,
    recall,
    specificity,
)

__all__ = [
    "BACKGROUND_NAMES",
    "QUALITY_CHECKS",
    "ClassCounts",
    "ClassQuality",
    "ClassScore",
    "ErrorCode",
    "QualityCheck",
    "QualityReport",
    "SampleComparison",
    "assess_mask",
    "average_surface_distance",
    "background_ids",
    "class_accuracy",
    "class_counts",
    "class_plane",
    "compare_masks",
    "comparison_from_counts",
    "confusion_matrix",
    "counts_from_matrix",
    "dice",
    "error_counts",
    "error_map",
    "get_check",
    "hd95",
    "iou",
    "multilabel_counts",
    "pixel_accuracy",
    "precision",
    "recall",
    "shape_figures",
    "specificity",
]
