"""Writing predictions to disk in the conventions segstudio (and the dataset's own format) read back.

* ``index`` (default) — ``OUT/<sample id without suffix>.png``: the class ids as an 8/16-bit index PNG
  (semantic) or ``.npz`` holding the ``uint64`` bitmask under ``mask`` (multi-label). This is the layout
  ``segstudio DATASET --predictions OUT`` (``segstudio.datasets.predictions.PredictionFolder``) shows.
* ``class-folders`` — for class-folder datasets (Montgomery's ``leftMask/`` ``rightMask/``): one 0/255 PNG per
  class in a folder named like the dataset's, ``OUT/<class folder>/<image stem>.png``.

Probabilities go to ``<dir>/<sample id without suffix>.npz`` (``probabilities``: ``(K, H, W) float16``,
``class_ids``, ``class_names``); uncertainty to ``<dir>/<...>.png`` (entropy × 255, ``uint8``). Every file is
written atomically (``core.atomic``: the old or the new file after a crash; a full disk or a folder that cannot be
written is our error naming it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from segstudio.core.atomic import atomic_write_bytes, sweep_stale_temps
from segstudio.core.errors import SegstudioError, UnknownKeyError, io_error
from segstudio.datasets.base import Dataset
from segstudio.workspace.maskio import write_mask

LAYOUTS = ("index", "class-folders")


def _stem(out: Path, sample_id: str) -> Path:
    rel = PurePosixPath(sample_id).with_suffix("")
    if rel.is_absolute() or ".." in rel.parts:  # image-list ids are paths as given: keep the file name only
        rel = PurePosixPath(rel.name)
    return out.joinpath(*rel.parts)


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:  # a file where the folder belongs
        raise SegstudioError("A file is in the way of the output folder.", path=folder,
                             fix="Choose another --out folder, or move that file.") from e
    except OSError as e:
        raise io_error(e, folder, action="create the output folder") from e


def class_folders(dataset: Dataset) -> dict[int, str]:
    """Class id → mask folder name of a class-folders dataset (read from its samples' GT locators)."""
    found: dict[int, str] = {}
    for s in dataset.samples:
        if isinstance(s.gt, tuple):
            for part in s.gt:
                if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], Path):
                    found.setdefault(int(part[0]), part[1].parent.name)
    return found


class PredictionWriter:
    """Writes each sample's mask (and optional probabilities / uncertainty) under ``out``."""

    def __init__(
        self,
        out: str | Path,
        dataset: Dataset | None,
        *,
        layout: str = "index",
        probabilities: str | Path | None = None,
        uncertainty: str | Path | None = None,
    ) -> None:
        if layout not in LAYOUTS:
            raise UnknownKeyError("prediction layout", layout, list(LAYOUTS))
        self.out = Path(out).expanduser()
        self.layout = layout
        self.folders: dict[int, str] = {}
        if layout == "class-folders":
            self.folders = class_folders(dataset) if dataset is not None else {}
            if not self.folders or (dataset is not None and dataset.schema.multilabel):
                raise SegstudioError(
                    "The class-folders layout needs a semantic class-folders dataset to copy folder names from.",
                    path=None if dataset is None else dataset.root,
                    fix="Use --layout index (the layout the app reads with --predictions).",
                )
        self.prob_dir = Path(probabilities).expanduser() if probabilities is not None else None
        self.unc_dir = Path(uncertainty).expanduser() if uncertainty is not None else None
        _mkdir(self.out)
        # temp files a killed earlier run left behind (their writer is gone; a live one's are kept)
        for folder in (self.out, self.prob_dir, self.unc_dir):
            if folder is not None:
                sweep_stale_temps(folder)

    def write(
        self,
        sample_id: str,
        mask: np.ndarray,
        *,
        probabilities: np.ndarray | None = None,
        uncertainty: np.ndarray | None = None,
        class_ids: Sequence[int] = (),
        class_names: Sequence[str] = (),
    ) -> list[Path]:
        """Write one sample; returns the mask file(s) written."""
        written = []
        if self.layout == "index":
            stem = _stem(self.out, sample_id)
            _mkdir(stem.parent)
            written.append(write_mask(stem, np.ascontiguousarray(mask))[0])
        else:
            name = PurePosixPath(sample_id).stem + ".png"
            for cid, folder in sorted(self.folders.items()):
                plane = np.where(mask == cid, 255, 0).astype(np.uint8)
                path = self.out / folder / name
                _mkdir(path.parent)
                ok, buf = cv2.imencode(".png", plane)
                if not ok:  # pragma: no cover - OpenCV always encodes a uint8 plane
                    raise SegstudioError("OpenCV could not encode a mask.", path=path)
                atomic_write_bytes(path, buf.tobytes())
                written.append(path)
        if self.prob_dir is not None and probabilities is not None:
            stem = _stem(self.prob_dir, sample_id)
            path = stem.with_name(stem.name + ".npz")
            _mkdir(path.parent)
            npz = io.BytesIO()
            np.savez_compressed(
                npz,
                probabilities=probabilities.astype(np.float16),
                class_ids=np.asarray(list(class_ids), np.int64),
                class_names=np.asarray(list(class_names), dtype=str),
            )
            atomic_write_bytes(path, npz.getvalue())
        if self.unc_dir is not None and uncertainty is not None:
            stem = _stem(self.unc_dir, sample_id)
            path = stem.with_name(stem.name + ".png")
            _mkdir(path.parent)
            ok, enc = cv2.imencode(".png", np.clip(uncertainty * 255.0 + 0.5, 0, 255).astype(np.uint8))
            atomic_write_bytes(path, enc.tobytes())
        return written
