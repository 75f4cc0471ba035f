"""segstudio: review, correct and retrain 2D segmentation masks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
