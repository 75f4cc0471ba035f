"""COCO, labelme and hand-bone writers: read -> write -> read gives the same masks, schema and splits; pycocotools
reads the COCO output back; and the reader fixes that came with them (labelme's example layout, mask shapes,
COCO crowd regions as ignore)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from writerkit import dataset_items, write_checked

from segstudio.core.types import ClassInfo, ClassSchema, default_colour
from segstudio.datasets.base import Dataset, ProblemKind
from segstudio.datasets.formats.polygon_json import HAND_BONE_CLASSES
from segstudio.datasets.formats.writer_kit import mask_to_polygons
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import open_dataset
from segstudio.datasets.writing import DatasetExportError, ExportItem, get_writer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


_items = dataset_items
_write = write_checked


def _same(a: Dataset, b: Dataset) -> None:
    assert b.schema == a.schema
    assert [(s.id, s.split) for s in b] == [(s.id, s.split) for s in a]
    for s in a:
        np.testing.assert_array_equal(b.load_gt(s.id), a.load_gt(s), err_msg=s.id)


def _iou(x: np.ndarray, y: np.ndarray) -> float:
    return float((x & y).sum() / max((x | y).sum(), 1))


# --- COCO on the real facade set -----------------------------------------------------------------------------------


def test_coco_rle_round_trip_on_facade_is_exact(facade_coco: Path, tmp_path: Path) -> None:
    src = open_dataset(facade_coco)
    out = _write("coco", _items(src), src.schema, tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "train/_annotations.coco.json", "valid/_annotations.coco.json"]
    back = open_dataset(out)
    assert back.format_name == "coco" and not back.all_problems()
    _same(src, back)
    for s in src:  # byte for byte
        assert (out / s.id).read_bytes() == s.image.read_bytes()


def test_coco_output_loads_with_pycocotools_one_annotation_per_class(facade_coco: Path, tmp_path: Path) -> None:
    src = open_dataset(facade_coco)
    val = [it for it in _items(src) if it.split == "val"]
    out = _write("coco", val, src.schema, tmp_path / "out")
    coco = COCO(str(out / "valid" / "_annotations.coco.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names) == [c.id for c in src.schema if c.id != 0]
    for img in coco.dataset["images"]:
        gt = src.load_gt("valid/" + img["file_name"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert len({a["category_id"] for a in anns}) == len(anns)  # one per class
        assert sorted(a["category_id"] for a in anns) == sorted(set(np.unique(gt).tolist()) - {0})
        for a in anns:
            np.testing.assert_array_equal(coco.annToMask(a).astype(bool), gt == a["category_id"])
            assert a["area"] == int((gt == a["category_id"]).sum())


def test_coco_polygons_per_component_iou_on_facade(facade_coco: Path, tmp_path: Path) -> None:
    """Polygons: every instance rasterises back with IoU >= 0.99 (they are pixel-edge outlines: in fact exact)."""
    import cv2

    src = open_dataset(facade_coco)
    val = [it for it in _items(src) if it.split == "val"]
    out = _write("coco", val, src.schema, tmp_path / "out", encoding="polygon", instances="components")
    coco = COCO(str(out / "valid" / "_annotations.coco.json"))
    worst, n = 1.0, 0
    for img in coco.dataset["images"]:
        gt = src.load_gt("valid/" + img["file_name"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        for cid in set(np.unique(gt).tolist()) - {0}:
            count, _labels = cv2.connectedComponents((gt == cid).astype(np.uint8), connectivity=8)
            assert sum(a["category_id"] == cid for a in anns) == count - 1  # one annotation per component
        for a in anns:
            assert isinstance(a["segmentation"], list)
            m = coco.annToMask(a).astype(bool)
            plane = gt == a["category_id"]
            # the component this annotation is: the source pixels of its class that it overlaps
            count, labels = cv2.connectedComponents(plane.astype(np.uint8), connectivity=8)
            k = np.bincount(labels[m]).argmax()
            worst = min(worst, _iou(m, labels == k))
            n += 1
    assert n > 50 and worst >= 0.99
    _same(_subset(src, "val"), open_dataset(out))


def _subset(ds: Dataset, split: str) -> Dataset:
    return Dataset(root=ds.root, format_name=ds.format_name, schema=ds.schema, samples=ds.split(split),
                   read_image=ds.read_image, read_gt=ds.read_gt, options=ds.options)


def test_coco_multilabel_keeps_overlaps_and_reads_back_multilabel(facade_coco: Path, tmp_path: Path) -> None:
    src = open_dataset(facade_coco, overlap="multilabel")
    val = _subset(src, "val")
    out = _write("coco", _items(val), src.schema, tmp_path / "out")
    back = open_dataset(out)  # no option: the file says it is multi-label
    assert back.schema.multilabel
    _same(val, back)
    overlapping = [s for s in val if (np.unpackbits(val.load_gt(s).view(np.uint8)).reshape(-1, 64).sum(1) > 1).any()]
    assert overlapping  # the facade windows overlap facades: the test covers overlaps


def test_polygons_with_holes_and_islands_are_exact() -> None:
    from pycocotools import mask as mu

    m = np.zeros((40, 50), bool)
    m[2:30, 3:40] = True
    m[8:20, 10:30] = False  # a hole
    m[12:15, 15:18] = True  # an island in the hole
    m[33:38, 5:6] = True  # a one-pixel-wide bar
    m[35, 45] = True  # a single pixel
    m[25:28, 42:45] = True
    m[28, 45] = True  # touching diagonally only
    polys = mask_to_polygons(m)
    # outer with its hole, island, bar, single pixel, and the diagonal pair as one (8-connected) component
    assert len(polys) == 5
    back = mu.decode(mu.merge(mu.frPyObjects(polys, 40, 50))).astype(bool)
    np.testing.assert_array_equal(back, m)


def test_coco_bad_option_refused_before_writing(tmp_path: Path) -> None:
    schema = ClassSchema.from_names(["background", "a"])
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(img)
    item = ExportItem("a.png", img, lambda: np.zeros((4, 4), np.uint8), lambda: np.zeros((4, 4), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DatasetExportError, match="rle, polygon"):
        list(get_writer("coco").write([item], schema=schema, out=out, options={"encoding": "mesh"}))
    assert not any(out.iterdir())


# --- labelme and hand-bone on fixtures ------------------------------------------------------------------------------


def _fixture_items(root: Path, masks: dict[str, np.ndarray], *, split: str | None = None) -> list[ExportItem]:
    items = []
    for name, mask in masks.items():
        img = root / name
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(mask.shape, 77, np.uint8)).save(img)
        items.append(ExportItem(name, img, lambda img=img: np.asarray(Image.open(img)), lambda m=mask: m, split))
    return items


def _semantic_masks() -> dict[str, np.ndarray]:
    a = np.zeros((30, 40), np.uint8)
    a[2:25, 2:30] = 1
    a[8:16, 8:20] = 2  # class 2 inside class 1: class 1 has a hole
    a[26:29, 30:38] = 255  # ignore
    b = np.zeros((30, 40), np.uint8)
    b[5:10, 5:35] = 2
    return {"a.png": a, "sub/b.png": b}


def _multilabel_masks() -> dict[str, np.ndarray]:
    a = np.zeros((30, 40), np.uint64)
    a[2:25, 2:30] |= np.uint64(1 << 0)
    a[8:28, 8:35] |= np.uint64(1 << 1)  # overlaps class 0
    a[10:12, 10:12] &= ~np.uint64(1 << 1)  # a hole in class 1 only
    a[0:5, 30:40] |= np.uint64(1 << 4)
    return {"x.png": a}


def test_labelme_semantic_round_trip_with_holes_and_ignore(tmp_path: Path) -> None:
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "wall", (200, 10, 10)),
                          ClassInfo(2, "door", (10, 200, 10))), ignore_index=255)
    masks = _semantic_masks()
    out = _write("labelme", _fixture_items(tmp_path / "src", masks), schema, tmp_path / "out")
    assert (out / "labels.txt").read_text().splitlines() == ["__ignore__", "_background_", "wall", "door"]
    doc = json.loads((out / "a.json").read_text())
    assert doc["imagePath"] == "a.png" and (doc["imageHeight"], doc["imageWidth"]) == (30, 40)
    assert {s["label"] for s in doc["shapes"]} == {"wall", "door", "__ignore__"}
    assert json.loads((out / "sub__b.json").read_text())["imagePath"] == "sub/b.png"
    back = open_dataset(out)
    assert back.format_name == "labelme" and back.schema == schema
    for sid, m in masks.items():
        np.testing.assert_array_equal(back.load_gt(sid), m)
    # without classes.json (labelme's own files only): labels.txt gives the same ids and the ignore index
    (out / "classes.json").unlink()
    plain = open_dataset(out)
    assert plain.schema.names == ("background", "wall", "door") and plain.schema.ignore_index == 255
    np.testing.assert_array_equal(plain.load_gt("a.png"), masks["a.png"])


def test_labelme_multilabel_round_trip_keeps_overlaps(tmp_path: Path) -> None:
    schema = ClassSchema(tuple(ClassInfo(i, n, default_colour(i + 1)) for i, n in enumerate("abcde")), multilabel=True)
    masks = _multilabel_masks()
    out = _write("labelme", _fixture_items(tmp_path / "src", masks), schema, tmp_path / "out")
    back = open_dataset(out)
    assert back.schema == schema
    np.testing.assert_array_equal(back.load_gt("x.png"), masks["x.png"])


def test_hand_bone_round_trip_multilabel_with_splits(tmp_path: Path) -> None:
    schema = ClassSchema(tuple(ClassInfo(i, n, default_colour(i + 1)) for i, n in enumerate(HAND_BONE_CLASSES)),
                         multilabel=True)
    rng = np.random.default_rng(3)
    masks = {}
    for case, name in (("ID001", "image_L.png"), ("ID001", "image_R.png"), ("ID002", "image_L.png")):
        m = np.zeros((48, 64), np.uint64)
        for bit in rng.choice(29, 8, replace=False):
            y, x = rng.integers(0, 30), rng.integers(0, 45)
            m[y : y + 15, x : x + 18] |= np.uint64(1 << int(bit))
        masks[f"train/DCM/{case}/{name}"] = m
    items = _fixture_items(tmp_path / "src", masks, split="train")
    test_img = tmp_path / "src" / "test" / "DCM" / "ID100" / "image_L.png"
    test_img.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(test_img)
    items.append(ExportItem("test/DCM/ID100/image_L.png", test_img, lambda: np.zeros((48, 64), np.uint8),
                            lambda: None, "test"))
    out = _write("hand-bone", items, schema, tmp_path / "out")
    assert (out / "train" / "outputs_json" / "ID001" / "image_R.json").is_file()
    assert not (out / "test" / "outputs_json").exists()
    back = open_dataset(out)
    assert back.format_name == "hand-bone" and back.schema == schema
    assert back.split_counts() == {"train": 3, "test": 1} and not back.get("test/DCM/ID100/image_L.png").has_gt
    for sid, m in masks.items():
        np.testing.assert_array_equal(back.load_gt(sid), m)
    bits = np.unpackbits(back.load_gt(next(iter(masks))).view(np.uint8)).reshape(-1, 64).sum(1)
    assert bits.max() >= 2  # overlaps survived


def test_hand_bone_refuses_other_classes(tmp_path: Path) -> None:
    items = _fixture_items(tmp_path / "src", {"a.png": np.zeros((4, 4), np.uint8)})
    with pytest.raises(DatasetExportError, match="labelme or coco"):
        list(get_writer("hand-bone").write(items, schema=ClassSchema.from_names(["background", "lesion"]),
                                           out=tmp_path, options={}))


# --- reader fixes ---------------------------------------------------------------------------------------------------


def _labelme_doc(shapes: list[dict], *, image: str = "a.png", h: int = 20, w: int = 30) -> dict:
    return {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image, "imageData": None,
            "imageHeight": h, "imageWidth": w}


def _poly(label: str, pts: list[list[float]]) -> dict:
    return {"label": label, "points": pts, "group_id": None, "shape_type": "polygon", "flags": {}}


def test_labelme_example_layout_ignore_and_background(tmp_path: Path) -> None:
    """labelme's examples/semantic_segmentation: labels.txt beside data_annotated/, __ignore__ / _background_."""
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\nperson\nbottle\n")
    data = tmp_path / "data_annotated"
    data.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(data / "a.png")
    doc = _labelme_doc([
        _poly("person", [[0, 0], [20, 0], [20, 20], [0, 20]]),
        _poly("_background_", [[5, 5], [10, 5], [10, 10], [5, 10]]),  # a hole, painted as background
        _poly("__ignore__", [[25, 0], [30, 0], [30, 20], [25, 20]]),
    ])
    (data / "a.json").write_text(json.dumps(doc))
    ds = open_dataset(data)
    assert ds.format_name == "labelme"
    assert ds.schema.names == ("background", "person", "bottle") and ds.schema.ignore_index == 255
    gt = ds.load_gt("a.png")
    assert gt[2, 2] == 1 and gt[7, 7] == 0 and gt[10, 27] == 255 and not ds.all_problems()


def test_labelme_ignore_without_labels_txt_is_no_class(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    doc = _labelme_doc([_poly("cat", [[0, 0], [9, 0], [9, 9], [0, 9]]), _poly("__ignore__", [[20, 0], [30, 0], [30, 9]])])
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = open_dataset(tmp_path)
    assert ds.schema.names == ("background", "cat") and ds.schema.ignore_index == 255
    assert (ds.load_gt("a.png") == 255).any()


def _mask_shape(label: str, box: tuple[int, int], pixels: np.ndarray) -> dict:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8) * 255).save(buf, format="PNG")
    x, y = box
    h, w = pixels.shape
    return {"label": label, "points": [[x, y], [x + w - 1, y + h - 1]], "group_id": None, "shape_type": "mask",
            "flags": {}, "mask": base64.b64encode(buf.getvalue()).decode("ascii")}


def test_labelme_mask_shapes_are_painted_and_bounds_checked(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "b.png")
    pixels = np.zeros((6, 8), bool)
    pixels[1:5, 2:7] = True
    pixels[2, 3] = False
    (tmp_path / "a.json").write_text(json.dumps(_labelme_doc([_mask_shape("blob", (10, 4), pixels)])))
    (tmp_path / "b.json").write_text(json.dumps(_labelme_doc([_mask_shape("blob", (26, 4), pixels)], image="b.png")))
    ds = open_dataset(tmp_path)
    expected = np.zeros((20, 30), np.uint8)
    expected[4:10, 10:18][pixels] = 1
    np.testing.assert_array_equal(ds.load_gt("a.png"), expected)
    with pytest.raises(DatasetProblemError, match="not inside the 30x20 image") as e:
        ds.load_gt("b.png")  # the box runs past the right edge
    assert e.value.kind == ProblemKind.BAD_ANNOTATION and e.value.path == tmp_path / "b.json"


def test_labelme_mask_shape_of_wrong_size_or_not_png(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    shape = _mask_shape("blob", (0, 0), np.ones((6, 8), bool))
    shape["points"] = [[0, 0], [3, 3]]  # the PNG is 8x6, the box 4x4
    broken = {**_mask_shape("blob", (0, 0), np.ones((2, 2), bool)), "mask": "bm90IGEgcG5n"}
    (tmp_path / "a.json").write_text(json.dumps(_labelme_doc([shape])))
    ds = open_dataset(tmp_path)
    with pytest.raises(DatasetProblemError, match="not its box's 4x4"):
        ds.load_gt("a.png")
    (tmp_path / "a.json").write_text(json.dumps(_labelme_doc([broken])))
    with pytest.raises(DatasetProblemError, match="not a base64 PNG"):
        open_dataset(tmp_path).load_gt("a.png")


def test_coco_crowd_as_ignore_option(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "a.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 6, 0, 6, 6, 0, 6]], "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[4, 4, 10, 4, 10, 10, 4, 10]], "iscrowd": 0},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    default = open_dataset(tmp_path)
    assert default.schema.ignore_index is None and default.load_gt("a.png")[1, 1] == 1
    ignored = open_dataset(tmp_path, crowd="ignore")
    gt = ignored.load_gt("a.png")
    assert ignored.schema.ignore_index == 255
    assert gt[1, 1] == 255 and gt[5, 5] == 255 and gt[8, 8] == 1  # crowd on top of the overlap
    ml = open_dataset(tmp_path, crowd="ignore", overlap="multilabel")
    assert int(ml.load_gt("a.png")[1, 1]) == 0 and "crowd" in ml.problems[-1].message
