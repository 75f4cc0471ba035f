"""The view modes of the review screen (the Layers panel offers them, the split view shows them)."""

VIEW_MODES: dict[str, str] = {
    "single": "Single view",
    "gt|pred": "GT | prediction",
    "before|after": "Before | after",
}
