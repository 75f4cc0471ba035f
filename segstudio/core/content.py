"""The image's content: the picture without the constant bands along its sides (the black padding of a film
resized into a square, a scanner's border).

Two users: the label-quality checks measure class areas and centres against it (a lung is the same share of a
chest whether or not the film was padded), and a model trained with ``data.crop=content`` sees only it, at the
training size (the lungs of a film with a 35 % black band get 1.5x the pixels, and sit where they sit on every
other film). nnU-Net crops every case to its non-zero region for the same reason.
"""

from __future__ import annotations

import numpy as np

#: a row or column of the image whose grey values spread less than this is a constant band (padding, a film's
#: unexposed border), not part of the picture
BAND_STD = 3.0
#: a content box smaller than this share of the image is not believed (a nearly blank image): the whole is used
MIN_CONTENT_SHARE = 0.25


def content_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the image without the constant bands along its sides; the whole image when it has
    none, or when what is left would be under :data:`MIN_CONTENT_SHARE` of it (a nearly blank image)."""
    def grey(a: np.ndarray) -> np.ndarray:
        a = a if a.ndim == 2 else a[..., :3].mean(axis=-1) if a.shape[2] >= 3 else a[..., 0]
        return a.astype(np.float32)

    h, w = image.shape[:2]
    # every 4th pixel along the line is enough to tell a constant band from a picture, at a quarter of the cost
    rows = np.flatnonzero(grey(image[:, ::4]).std(axis=1) > BAND_STD)
    cols = np.flatnonzero(grey(image[::4, :]).std(axis=0) > BAND_STD)
    if rows.size == 0 or cols.size == 0:
        return 0, h, 0, w
    box = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (box[1] - box[0]) * (box[3] - box[2]) < MIN_CONTENT_SHARE * h * w:
        return 0, h, 0, w
    return box


__all__ = ["BAND_STD", "MIN_CONTENT_SHARE", "content_box"]
