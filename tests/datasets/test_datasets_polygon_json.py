"""labelme JSON and the hand-bone layout (29 overlapping classes -> multi-label), on fixtures of the exact shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mu

from segstudio.datasets.base import ProblemKind
from segstudio.datasets.formats.polygon_json import HAND_BONE_CLASSES
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import detect, open_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ref(poly: list[float], h: int, w: int) -> np.ndarray:
    return mu.decode(mu.merge(mu.frPyObjects([poly], h, w))).astype(bool)


def _hand_bone(root: Path, *, with_test: bool = True) -> dict[str, list[list[float]]]:
    """train/DCM/ID001/image1_R.png + train/outputs_json/ID001/image1_R.json, every class once, overlapping."""
    polys: dict[str, list[list[float]]] = {}
    for split, cases in (("train", ["ID001", "ID002"]), ("test", ["ID100"] if with_test else [])):
        for case in cases:
            d = root / split / "DCM" / case
            d.mkdir(parents=True)
            for side in ("L", "R"):
                Image.fromarray(np.full((48, 64), 90, np.uint16)).save(d / f"image_{side}.png")
                if split == "train":
                    anns = []
                    for i, label in enumerate(HAND_BONE_CLASSES):
                        x, y = 2 * i % 50, i % 30
                        pts = [[x, y], [x + 12, y], [x + 12, y + 14], [x, y + 14]]
                        anns.append({"id": f"a{i}", "type": "poly_seg", "attributes": {}, "points": pts, "label": label})
                        polys[label] = pts
                    j = root / split / "outputs_json" / case
                    j.mkdir(parents=True, exist_ok=True)
                    (j / f"image_{side}.json").write_text(json.dumps({"annotations": anns, "filename": f"image_{side}.png"}))
    return polys


def test_hand_bone_multilabel_with_splits(tmp_path: Path) -> None:
    polys = _hand_bone(tmp_path)
    assert detect(tmp_path)[0].name == "hand-bone"
    ds = open_dataset(tmp_path)
    assert ds.schema.multilabel and len(ds.schema) == 29 and ds.schema.names[19] == "Trapezium"
    assert ds.split_counts() == {"train": 4, "test": 2}
    assert not any(s.has_gt for s in ds.split("test")) and not ds.all_problems()
    s = ds.split("train")[0]
    gt = ds.load_gt(s)
    assert gt.dtype == np.uint64 and gt.shape == (48, 64)
    for cid, label in enumerate(HAND_BONE_CLASSES):
        flat = [float(v) for p in polys[label] for v in p]
        np.testing.assert_array_equal(((gt >> np.uint64(cid)) & np.uint64(1)).astype(bool), _ref(flat, 48, 64))
    bits = np.unpackbits(gt.view(np.uint8)).reshape(48, 64, 64).sum(-1)
    assert bits.max() >= 5  # overlapping bones all kept
    assert ds.load_image(s).dtype == np.uint16


def test_hand_bone_unknown_label_and_missing_json(tmp_path: Path) -> None:
    _hand_bone(tmp_path, with_test=False)
    j = tmp_path / "train" / "outputs_json" / "ID001" / "image_L.json"
    d = json.loads(j.read_text())
    d["annotations"][0]["label"] = "finger-99"
    j.write_text(json.dumps(d))
    (tmp_path / "train" / "outputs_json" / "ID002" / "image_R.json").unlink()
    ds = open_dataset(tmp_path)
    miss = [p for p in ds.all_problems() if p.kind == ProblemKind.MISSING_MASK]
    assert len(miss) == 1 and miss[0].sample_id == "train/DCM/ID002/image_R.png"
    with pytest.raises(DatasetProblemError, match="finger-99") as e:
        ds.load_gt("train/DCM/ID001/image_L.png")
    assert e.value.kind == ProblemKind.OUT_OF_RANGE and e.value.path == j


def _labelme(root: Path, shapes: list[dict], *, image_path: str = "a.png", name: str = "a") -> Path:
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / f"{name}.png")
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
           "imageHeight": 20, "imageWidth": 30}
    (root / f"{name}.json").write_text(json.dumps(doc))
    return root


def _shape(label: str, pts: list[list[float]], kind: str = "polygon") -> dict:
    return {"label": label, "points": pts, "group_id": None, "shape_type": kind, "flags": {}}


def test_labelme_polygon_rectangle_circle(tmp_path: Path) -> None:
    poly = [[2, 2], [12, 2], [7, 12]]
    root = _labelme(tmp_path, [
        _shape("tree", poly),
        _shape("car", [[10, 5], [25, 15]], "rectangle"),
        _shape("sun", [[24, 5], [24, 8]], "circle"),
        _shape("tip", [[1, 1]], "point"),
    ])
    assert detect(root)[0].name == "labelme"
    ds = open_dataset(root)
    assert ds.schema.names == ("background", "car", "sun", "tree")
    gt = ds.load_gt(ds[0])
    tree = _ref([2, 2, 12, 2, 7, 12], 20, 30)
    car = _ref([10, 5, 25, 5, 25, 15, 10, 15], 20, 30)
    expected = np.zeros((20, 30), np.uint8)
    expected[tree] = 3
    expected[car] = 1
    np.testing.assert_array_equal(gt[:, :20], expected[:, :20])  # the circle lies right of column 20
    assert gt[6, 24] == 2  # circle centre
    (note,) = ds.problems
    assert "1 point" in note.message


def test_labelme_labels_txt_and_path_escape_and_unknown_label(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\ncar\n")
    _labelme(tmp_path, [_shape("car", [[0, 0], [5, 0], [5, 5]]), _shape("boat", [[0, 0], [5, 0], [5, 5]])])
    _labelme(tmp_path, [_shape("car", [[0, 0], [5, 0], [5, 5]])], image_path="../../secret.png", name="b")
    ds = open_dataset(tmp_path, format="labelme")
    assert ds.schema.names == ("background", "car") and ds.schema.ignore_index == 255
    assert [s.id for s in ds] == ["a.png"]
    kinds = sorted(p.kind.value for p in ds.all_problems())
    assert kinds == ["out_of_range", "path_escape"]
    esc = next(p for p in ds.problems if p.kind == ProblemKind.PATH_ESCAPE)
    assert "../../secret.png" in esc.message and esc.path == tmp_path / "b.json"


def test_labelme_overlap_semantic_later_wins_multilabel_keeps(tmp_path: Path) -> None:
    sq = [[0, 0], [10, 0], [10, 10], [0, 10]]
    root = _labelme(tmp_path, [_shape("a", sq), _shape("b", [[5, 5], [15, 5], [15, 15], [5, 15]])])
    assert open_dataset(root).load_gt("a.png")[7, 7] == 2
    ml = open_dataset(root, multilabel=True)
    assert int(ml.load_gt("a.png")[7, 7]) == 0b11


def test_two_labelme_files_for_one_image_are_reported(tmp_path: Path) -> None:
    sq = [[0, 0], [10, 0], [10, 10], [0, 10]]
    _labelme(tmp_path, [_shape("a", sq)])
    doc = json.loads((tmp_path / "a.json").read_text())
    (tmp_path / "copy.json").write_text(json.dumps(doc))
    ds = open_dataset(tmp_path, format="labelme")
    assert [s.id for s in ds] == ["a.png"]
    assert any("A second annotation file for a.png" in p.message for p in ds.problems)
