"""The real datasets open in the app through the format registry, with a chooser when detection is ambiguous,
and a broken file is reported for its sample while the rest of the dataset keeps working."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from segstudio.gui.main_window import MainWindow


@pytest.fixture
def window(show_window) -> MainWindow:
    return show_window(size=(1300, 850))


@pytest.mark.parametrize(
    ("fixture", "rel", "n_samples", "n_classes", "fmt"),
    [
        ("montgomery", "", 40, 3, "class-folders"),
        ("ph2", "", 30, 2, "ph2"),
        ("camvid", "", 50, 12, "camvid-segnet"),
        ("facade_coco", "train/_annotations.coco.json", 40, 11, "coco"),
    ],
)
def test_real_dataset_opens_in_the_app(window: MainWindow, request, fixture, rel, n_samples, n_classes, fmt) -> None:
    root: Path = request.getfixturevalue(fixture)
    ds = window.open_dataset(root / rel if rel else root)
    assert ds is not None and ds.format_name == fmt
    assert window.browser.model_.rowCount() == len(ds) == n_samples
    assert window.class_panel.tree.topLevelItemCount() == len(ds.schema) == n_classes
    cur = window.session.current
    assert cur is not None and cur.error is None and cur.gt is not None
    assert cur.gt.shape == cur.image.shape[:2] == window.editor.mask.shape
    assert fmt in window.status.dataset.text()
    window.go_next()
    assert window.session.current.row == 1


def test_ambiguous_detection_asks_for_the_format(window: MainWindow, monkeypatch, sample_dataset_path) -> None:
    from segstudio.datasets import registry
    from segstudio.gui.screen import session as controller

    real_open = registry.open_dataset
    calls: list[str | None] = []

    def fake_open(path, *, format=None, **kw):  # noqa: A002
        calls.append(format)
        if format is None:
            raise registry.AmbiguousFormatError(Path(path), [("paired-folders", 0.7), ("class-folders", 0.65)])
        return real_open(path, format=format, **kw)

    asked: list[list[str]] = []

    def choose(parent, title, label, items, current, editable):  # noqa: ANN001
        asked.append(list(items))
        return items[1], True

    monkeypatch.setattr(controller, "open_dataset", fake_open)
    monkeypatch.setattr("segstudio.gui.window.opening.QInputDialog.getItem", choose)
    ds = window.open_dataset(sample_dataset_path)
    assert ds is not None and ds.format_name == "class-folders"
    assert calls == [None, "class-folders"]
    assert asked[0][0].startswith("paired-folders — ") and asked[0][1].startswith("class-folders — ")


def test_a_broken_mask_is_reported_and_the_rest_opens(window: MainWindow, tmp_path: Path, sample_dataset_path,
                                                      monkeypatch) -> None:
    data = tmp_path / "lungs"
    shutil.copytree(sample_dataset_path, data)
    victim = sorted((data / "rightMask").glob("*.png"))[2]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated PNG
    messages: list[str] = []
    monkeypatch.setattr(window.statusBar(), "showMessage", lambda text, *_a: messages.append(text))
    ds = window.open_dataset(data)
    assert ds is not None and len(ds) == 8
    window.navigation.go_to_sample(f"cxr/{victim.name}")
    cur = window.session.current
    assert cur.sample.id == f"cxr/{victim.name}"
    assert cur.image.shape == (512, 512) and cur.gt is None
    assert any(victim.name in m for m in messages), messages
    window.go_next()
    nxt = window.session.current
    assert nxt.gt is not None and np.count_nonzero(nxt.gt) > 1000


def test_opening_a_workspace_opens_its_dataset_with_format_and_predictions(window: MainWindow, qtbot, tmp_path,
                                                                           sample_dataset_path, monkeypatch) -> None:
    """The MIME association hands a ``<dataset>.segstudio`` folder (or its workspace.sqlite) to ``segstudio``."""
    import cv2

    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME")  # this test is about the workspace beside the dataset
    data = tmp_path / "lungs"
    shutil.copytree(sample_dataset_path, data)
    preds = tmp_path / "preds"
    preds.mkdir()
    for img in (data / "cxr").glob("*.png"):
        cv2.imwrite(str(preds / img.name), np.zeros((512, 512), np.uint8))
    assert window.open_dataset(data, format_name="class-folders", predictions=preds) is not None
    ws_folder = window.review.workspace.folder
    assert ws_folder == tmp_path / "lungs.segstudio"

    again = MainWindow()
    qtbot.addWidget(again)
    for target in (ws_folder, ws_folder / "workspace.sqlite"):
        ds = again.open_dataset(target)
        assert ds is not None and ds.root.resolve() == data.resolve() and ds.format_name == "class-folders"
        assert again.review.predictions is not None and again.review.predictions.folder == preds.resolve()
