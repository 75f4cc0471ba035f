"""A folder of predicted masks laid beside a dataset (``segstudio DATASET --predictions DIR``).

Layout: one file per sample, named after the sample — ``DIR/<sample id without suffix>.<ext>`` (the dataset's
own sub-folders kept) or ``DIR/<image stem>.<ext>`` (flat). ``<ext>`` is ``png``/``tif``/``tiff``/``bmp`` for
semantic index maps in the dataset's class ids (0/255 binary masks are read as class 1 when the schema has
exactly the classes 0 and 1), or ``npz`` holding one ``uint64`` bitmask array for multi-label datasets (the
workspace's own mask files). Listing decodes nothing; a bad file raises ``DatasetError`` naming it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.io import read_mask

_EXTS = (".png", ".tif", ".tiff", ".bmp", ".npz")


class PredictionFolder:
    """Finds and decodes the predicted mask of each sample of ``dataset`` in ``folder``."""

    def __init__(self, folder: str | Path, dataset: Dataset) -> None:
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise DatasetError("The predictions folder does not exist.", path=self.folder,
                               fix="Pass a folder of predicted masks named like the dataset's images.")
        self.schema: ClassSchema = dataset.schema
        files: dict[str, Path] = {}
        for p in self.folder.rglob("*"):
            if p.suffix.lower() in _EXTS and p.is_file():
                rel = p.relative_to(self.folder).with_suffix("").as_posix()
                files.setdefault(rel, p)
                files.setdefault("@" + p.stem, p)  # flat-name fallback; first one wins
        self._paths: dict[str, Path] = {}
        for s in dataset.samples:
            key = PurePosixPath(s.id).with_suffix("").as_posix()
            hit = files.get(key) or files.get("@" + PurePosixPath(s.id).stem)
            if hit is not None:
                self._paths[s.id] = hit

    def __len__(self) -> int:
        return len(self._paths)

    def path_for(self, sample: Sample | str) -> Path | None:
        return self._paths.get(sample if isinstance(sample, str) else sample.id)

    def load(self, sample: Sample | str, *, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The predicted mask in ``schema.mask_dtype()`` (``(H, W)``), or None when the sample has none.

        ``shape``: the image's ``(H, W)``; a prediction of another size is an error naming the file.
        """
        path = self.path_for(sample)
        if path is None:
            return None
        if path.suffix.lower() == ".npz":
            arr = _read_npz(path)
        else:
            arr = read_mask(path)
            if arr.ndim == 3:
                raise DatasetError("A predicted mask must be a single-channel index map, not colour.", path=path,
                                   fix="Write class ids (0, 1, 2, ...) as an 8- or 16-bit grayscale PNG.")
        if shape is not None and tuple(arr.shape[:2]) != tuple(shape):
            raise DatasetError(f"The predicted mask is {arr.shape[1]}x{arr.shape[0]} but the image is "
                               f"{shape[1]}x{shape[0]}.", path=path, fix="Predict at the image's own size.")
        return self._to_schema(arr, path)

    def _to_schema(self, arr: np.ndarray, path: Path) -> np.ndarray:
        schema = self.schema
        if schema.multilabel:
            if arr.dtype != np.uint64:
                raise DatasetError("A multi-label prediction must be a uint64 bitmask (.npz).", path=path,
                                   fix="Save one bit per class with numpy.savez(path, mask=bits.astype('uint64')).")
            return arr
        if arr.dtype == np.uint64:
            raise DatasetError("This dataset is semantic, but the prediction is a multi-label bitmask.", path=path)
        valid = set(schema.ids) | ({schema.ignore_index} if schema.ignore_index is not None else set())
        present = _values_present(arr)
        if present - valid and present <= {0, 255} and set(schema.ids) == {0, 1}:
            arr = (arr > 127).astype(np.uint8)
            present = _values_present(arr)
        bad = sorted(present - valid)
        if bad:
            raise DatasetError(f"The predicted mask holds values that are no class id: {bad[:8]}.", path=path,
                               fix=f"Use the dataset's class ids: {sorted(schema.ids)}.")
        return arr.astype(schema.mask_dtype(), copy=False)


def _values_present(arr: np.ndarray) -> set[int]:
    """The distinct values of an 8/16-bit mask (a histogram: much faster than ``np.unique`` on 2048²)."""
    if arr.dtype == np.uint8:
        hist = cv2.calcHist([arr], [0], None, [256], [0, 256]).ravel()
    else:
        hist = np.bincount(arr.ravel(), minlength=1)
    return {int(v) for v in np.flatnonzero(hist)}


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if not names:
                raise DatasetError("The .npz file holds no array.", path=path)
            arr = z["mask"] if "mask" in names else z[names[0]]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot read the .npz prediction ({exc}).", path=path) from exc
    if arr.ndim != 2:
        raise DatasetError(f"A predicted mask is 2-D; this one has shape {arr.shape}.", path=path)
    return np.asarray(arr)
