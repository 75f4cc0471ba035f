"""COCO JSON: the real facade export, overlap policies, RLE, and every broken-annotation problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from segstudio.core.errors import UnknownKeyError
from segstudio.core.geometry import mask_to_rle, mask_to_uncompressed_rle
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import detect, open_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_facade_opens_with_splits_and_deduplicated_classes(facade_coco: Path) -> None:
    assert detect(facade_coco)[0].name == "coco"
    ds = open_dataset(facade_coco)
    assert ds.split_counts() == {"train": 40, "val": 10}
    # 11 categories, the unused duplicate "facade" (id 0) dropped -> background + 10 classes.
    assert len(ds.schema) == 11 and ds.schema.names.count("facade") == 1
    assert [p.kind for p in ds.all_problems()] == [ProblemKind.OTHER]
    assert "repeats a name" in ds.problems[0].message


@pytest.mark.parametrize("policy", ["last", "multilabel"])
def test_facade_masks_equal_pycocotools(facade_coco: Path, policy: str) -> None:
    ds = open_dataset(facade_coco, overlap=policy)
    coco = COCO(str(facade_coco / "valid" / "_annotations.coco.json"))
    cat_name = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    s = ds.split("val")[0]
    img = next(i for i in coco.dataset["images"] if i["file_name"] == Path(s.id).name)
    expected = np.zeros((img["height"], img["width"]), np.uint64 if policy == "multilabel" else np.uint8)
    by_name = {c.name: c.id for c in ds.schema}
    for a in coco.dataset["annotations"]:  # file order: the later annotation wins ("last")
        if a["image_id"] != img["id"]:
            continue
        m = coco.annToMask(a).astype(bool)
        cid = by_name[cat_name[a["category_id"]]]
        if policy == "multilabel":
            expected[m] |= np.uint64(1) << np.uint64(cid)
        else:
            expected[m] = cid
    gt = ds.load_gt(s)
    assert gt.dtype == expected.dtype
    np.testing.assert_array_equal(gt, expected)
    if policy == "multilabel":
        bits = np.unpackbits(gt.view(np.uint8)).reshape(*gt.shape, 64).sum(-1)
        assert bits.max() >= 2  # windows on facades: overlaps are kept


def _coco(tmp: Path, *, images: list[dict] | None = None, anns: list[dict] | None = None, cats: list[dict] | None = None) -> Path:
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp / "a.png")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp / "b.png")
    doc = {
        "images": images if images is not None else [
            {"id": 7, "file_name": "a.png", "height": 10, "width": 12},
            {"id": 9, "file_name": "b.png", "height": 10, "width": 12},
        ],
        "categories": cats if cats is not None else [{"id": 5, "name": "big"}, {"id": 40, "name": "small"}],
        "annotations": anns if anns is not None else [
            {"id": 1, "image_id": 7, "category_id": 40, "segmentation": [[2, 2, 5, 2, 5, 5, 2, 5]], "area": 9, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 5, "segmentation": [[0, 0, 10, 0, 10, 8, 0, 8]], "area": 80, "iscrowd": 0},
        ],
    }
    (tmp / "ann.json").write_text(json.dumps(doc))
    return tmp / "ann.json"


def test_non_contiguous_ids_and_overlap_policies(tmp_path: Path) -> None:
    f = _coco(tmp_path)
    last = open_dataset(f)
    assert last.schema.names == ("background", "big", "small") and last.schema.ids == (0, 1, 2)
    g = last.load_gt("a.png")
    assert g[3, 3] == 1  # "big" comes later in the file and covers "small"
    smallest = open_dataset(f, overlap="smallest")
    assert smallest.load_gt("a.png")[3, 3] == 2  # small on top
    ml = open_dataset(f, overlap="multilabel")
    assert int(ml.load_gt("a.png")[3, 3]) == 0b11
    assert not last.load_gt("b.png").any()
    with pytest.raises(UnknownKeyError, match="smallest"):
        open_dataset(f, overlap="top")


def test_rle_compressed_uncompressed_and_crowd(tmp_path: Path) -> None:
    m = np.zeros((10, 12), bool)
    m[1:4, 6:11] = True
    anns = [
        {"id": 1, "image_id": 7, "category_id": 5, "segmentation": mask_to_uncompressed_rle(m), "iscrowd": 1},
        {"id": 2, "image_id": 9, "category_id": 40, "segmentation": mask_to_rle(m), "iscrowd": 1},
    ]
    ds = open_dataset(_coco(tmp_path, anns=anns))
    np.testing.assert_array_equal(ds.load_gt("a.png"), m.astype(np.uint8))
    np.testing.assert_array_equal(ds.load_gt("b.png"), m.astype(np.uint8) * 2)


def test_file_name_escaping_root_is_reported_and_skipped(tmp_path: Path) -> None:
    images = [
        {"id": 7, "file_name": "a.png", "height": 10, "width": 12},
        {"id": 8, "file_name": "../../etc/passwd", "height": 10, "width": 12},
        {"id": 9, "file_name": "/etc/hosts", "height": 10, "width": 12},
    ]
    ds = open_dataset(_coco(tmp_path, images=images))
    assert [s.id for s in ds] == ["a.png"]
    escapes = [p for p in ds.problems if p.kind == ProblemKind.PATH_ESCAPE]
    assert len(escapes) == 2 and "../../etc/passwd" in escapes[0].message and escapes[0].path == tmp_path / "ann.json"


def test_giant_declared_size_is_flagged_without_decoding(tmp_path: Path) -> None:
    images = [{"id": 7, "file_name": "a.png", "height": 200_000, "width": 200_000}]
    ds = open_dataset(_coco(tmp_path, images=images))
    assert [p.kind for p in ds[0].problems] == [ProblemKind.TOO_LARGE]


def test_unknown_category_and_bad_rle_and_size_mismatch(tmp_path: Path) -> None:
    anns = [
        {"id": 1, "image_id": 7, "category_id": 99, "segmentation": [[0, 0, 3, 0, 3, 3]]},
        {"id": 2, "image_id": 9, "category_id": 5, "segmentation": {"size": [10, 12], "counts": [5, 5]}},
    ]
    images = [
        {"id": 7, "file_name": "a.png", "height": 10, "width": 12},
        {"id": 9, "file_name": "b.png", "height": 10, "width": 12},
    ]
    ds = open_dataset(_coco(tmp_path, anns=anns, images=images))
    (p,) = [p for p in ds.problems if p.kind == ProblemKind.OUT_OF_RANGE]
    assert "category_id 99" in p.message
    with pytest.raises(DatasetProblemError, match="add up to 10") as e:
        ds.load_gt("b.png")
    assert e.value.kind == ProblemKind.BAD_ANNOTATION and e.value.path == tmp_path / "ann.json"
    images[0]["width"] = 30
    ds2 = open_dataset(_coco(tmp_path, anns=anns, images=images))
    with pytest.raises(DatasetProblemError) as e2:
        ds2.load_gt("a.png")
    assert e2.value.kind == ProblemKind.SIZE_MISMATCH and "30x10" in e2.value.message


def test_broken_json_names_the_file(tmp_path: Path) -> None:
    f = _coco(tmp_path)
    f.write_text(f.read_text()[:-20])
    with pytest.raises(DatasetProblemError) as e:
        open_dataset(f, format="coco")
    assert e.value.kind == ProblemKind.BAD_ANNOTATION and e.value.path == f


def test_annotations_without_segmentation_or_image_are_reported(tmp_path: Path) -> None:
    anns = [
        {"id": 1, "image_id": 7, "category_id": 5, "bbox": [0, 0, 3, 3]},  # bbox only
        {"id": 2, "image_id": 555, "category_id": 5, "segmentation": [[0, 0, 3, 0, 3, 3]]},
        {"id": 3, "image_id": 7, "category_id": 40, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
    ]
    ds = open_dataset(_coco(tmp_path, anns=anns))
    kinds = {p.kind: p.message for p in ds.problems}
    assert "1 annotation(s) have no image_id or no segmentation" in kinds[ProblemKind.BAD_ANNOTATION]
    assert "1 annotation(s) refer to image ids not listed" in kinds[ProblemKind.MISSING_IMAGE]
    assert ds.load_gt("a.png")[1, 1] == 2  # the good annotation still paints
