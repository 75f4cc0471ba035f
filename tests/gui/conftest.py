from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _semantic_gt(root: Path, stem: str) -> np.ndarray:
    import cv2

    left = cv2.imread(str(root / "leftMask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
    right = cv2.imread(str(root / "rightMask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
    gt = np.zeros(left.shape, np.uint8)
    gt[left] = 1
    gt[right] = 2
    return gt


@pytest.fixture(scope="session")
def montgomery_predictions(montgomery: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A predictions folder for the real Montgomery left/right data, made by perturbing its GT: most samples are
    eroded by a few pixels (good predictions), one has its lungs swapped (the worst). Returns (folder, worst id)."""
    import cv2

    out = tmp_path_factory.mktemp("montgomery_predictions")
    stems = sorted(p.stem for p in (montgomery / "cxr").glob("*.png"))
    worst = stems[7]
    kernel = np.ones((5, 5), np.uint8)
    for i, stem in enumerate(stems):
        gt = _semantic_gt(montgomery, stem)
        if stem == worst:
            pred = np.where(gt == 1, 2, np.where(gt == 2, 1, 0)).astype(np.uint8)
        else:
            pred = np.zeros_like(gt)
            for c in (1, 2):
                plane = cv2.erode((gt == c).astype(np.uint8), kernel, iterations=1 + i % 4)
                pred[plane > 0] = c
        cv2.imwrite(str(out / f"{stem}.png"), pred)
    return out, f"cxr/{worst}.png"


@pytest.fixture
def show_window(qtbot):
    """Makes main windows: ``show_window(path, predictions=..., size=(w, h))`` is a new window shown at that size,
    with ``path`` opened (and its first sample loaded) when one is given."""
    from segstudio.gui.main_window import MainWindow

    def make(path: Path | None = None, *, predictions: Path | None = None,
             size: tuple[int, int] = (1200, 800)) -> MainWindow:
        win = MainWindow()
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        if path is not None:
            assert win.open_dataset(path, predictions=predictions) is not None
            qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
        return win

    return make


@pytest.fixture
def window(show_window, sample_dataset_path: Path):
    """The main window on the bundled sample, shown; background jobs are stopped before it goes."""
    win = show_window(sample_dataset_path)
    yield win
    win.training.stop_and_wait(60)
    win.predictions_view.inference.stop_and_wait(60)

