"""Pseudo-labels: the predictions of unlabelled images, accepted after a look, become mask versions that the next
training round uses; labelled or corrected images are never overwritten."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import MaskSource, ReviewStatus


def _select(win: MainWindow, ids: list[str]) -> None:
    """Ctrl-click these rows of the sample list."""
    b = win.browser
    sel = b.view.selectionModel()
    sel.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for sid in ids:
        sel.select(b.proxy.index(b.proxy.proxy_row_of(b.model_.row_of(sid)), 0), flags)
    assert sorted(b.selected_ids()) == sorted(ids)


@pytest.fixture
def partly_labelled(tmp_path: Path, sample_dataset_path: Path) -> tuple[Path, Path, list[str]]:
    """The bundled sample with the masks of two images removed, and a predictions folder for every image."""
    root = tmp_path / "lungs"
    shutil.copytree(sample_dataset_path, root)
    stems = sorted(p.stem for p in (root / "cxr").glob("*.png"))
    unlabelled = stems[:2]
    for stem in unlabelled:
        for sub in ("leftMask", "rightMask"):
            (root / sub / f"{stem}.png").unlink()
    preds = tmp_path / "preds"
    preds.mkdir()
    for k, stem in enumerate(stems):
        img = cv2.imread(str(root / "cxr" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        pred = np.zeros(img.shape, np.uint8)
        pred[100:200, 60 + k: 200] = 1
        pred[100:200, 300:450] = 2
        cv2.imwrite(str(preds / f"{stem}.png"), pred)
    return root, preds, unlabelled


def test_accepting_predictions_labels_only_the_unlabelled_images(qtbot, partly_labelled) -> None:
    root, preds, unlabelled = partly_labelled
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    ds = win.open_dataset(root, predictions=preds)
    assert ds is not None
    ids = {s.name.removesuffix(".png"): s.id for s in ds.samples}
    targets = [ids[u] for u in unlabelled]
    assert not any(ds.get(t).has_gt for t in targets)
    labelled = next(s.id for s in ds.samples if s.has_gt)
    gt_before = (root / "leftMask" / Path(labelled).name).read_bytes()
    _select(win, [*targets, labelled])
    win.actions_["accept_pseudo_labels"].trigger()
    ws = win.review.workspace
    for t in targets:
        v = ws.versions.latest(t)
        assert v is not None and v.source is MaskSource.ACCEPTED_PREDICTION
        assert np.array_equal(ws.versions.load(v), win.review.prediction_mask(t))
        assert win.review.review(t).status is ReviewStatus.ACCEPTED
    # the labelled image keeps its GT: no version, file untouched
    assert ws.versions.latest(labelled) is None
    assert (root / "leftMask" / Path(labelled).name).read_bytes() == gt_before
    assert "2 prediction(s) accepted as labels; 1 left alone" in win.statusBar().currentMessage()
    # the next training round sees them as labelled
    from segstudio.engine.data import corrections_from
    from segstudio.engine.data import labelled as labelled_samples

    pool = {s.id for s in labelled_samples(ds, corrections_from(ws.versions))}
    assert set(targets) <= pool and len(pool) == len(ds)
    # accepting again changes nothing: they are labelled now
    _select(win, targets)
    win.actions_["accept_pseudo_labels"].trigger()
    assert all(len(ws.versions.versions(t)) == 1 for t in targets)
    win.close()
