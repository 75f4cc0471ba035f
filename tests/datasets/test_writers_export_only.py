"""Export-only layouts: the hand-bone RLE CSV decodes back exactly, the nnU-Net v2 raw dataset passes a structural
check and its labels equal the masks, per-class binary PNGs hold each class (overlaps included)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from writerkit import dataset_items, write_checked

from segstudio.core.types import ClassInfo, ClassSchema, default_colour
from segstudio.datasets.io import read_image, read_mask
from segstudio.datasets.registry import open_dataset
from segstudio.datasets.writing import DatasetExportError, ExportItem, get_writer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


_items = dataset_items
_write = write_checked


def _decode_rle(rle: str, *, height: int, width: int) -> np.ndarray:
    """The competition's decoder, written from its description: 1-based starts, lengths, row-major."""
    flat = np.zeros(height * width, bool)
    values = [int(v) for v in rle.split()]
    for start, length in zip(values[0::2], values[1::2], strict=True):
        flat[start - 1 : start - 1 + length] = True
    return flat.reshape(height, width)


def _multilabel_items(root: Path) -> tuple[ClassSchema, list[ExportItem], dict[str, np.ndarray]]:
    schema = ClassSchema(tuple(ClassInfo(i, n, default_colour(i + 1)) for i, n in enumerate(["finger-1", "Radius",
                                                                                               "Ulna"])), multilabel=True)
    m = np.zeros((16, 20), np.uint64)
    m[0:10, 0:12] |= np.uint64(1)
    m[5:16, 8:20] |= np.uint64(2)  # overlaps finger-1
    m[15, 19] |= np.uint64(1)  # the last pixel: a run that ends the image
    items, masks = [], {}
    for name, mask in (("ID001/a.png", m), ("ID002/b.png", np.zeros_like(m))):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros(mask.shape, np.uint8)).save(p)
        items.append(ExportItem(name, p, lambda p=p: read_image(p), lambda mask=mask: mask))
        masks[name] = mask
    return schema, items, masks


def test_rle_csv_decodes_back_exactly_on_montgomery(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery)
    out = _write("hand-bone-csv", _items(ds), ds.schema, tmp_path / "out")
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_name", "class", "rle"]
    classes = [c.name for c in ds.schema if c.id != 0]
    assert len(rows) - 1 == len(ds) * len(classes)  # one row per image and class
    by_key = {(r[0], r[1]): r[2] for r in rows[1:]}
    for s in ds:
        gt = ds.load_gt(s)
        for c in ds.schema:
            if c.id == 0:
                continue
            got = _decode_rle(by_key[(Path(s.id).name, c.name)], height=gt.shape[0], width=gt.shape[1])
            np.testing.assert_array_equal(got, gt == c.id, err_msg=f"{s.id} {c.name}")


def test_rle_csv_multilabel_overlaps_and_empty_rows(tmp_path: Path) -> None:
    schema, items, masks = _multilabel_items(tmp_path / "src")
    out = _write("hand-bone-csv", items, schema, tmp_path / "out")
    rows = list(csv.DictReader(open(out / "submission.csv", newline="")))
    assert [(r["image_name"], r["class"]) for r in rows] == [(n, c) for n in ("a.png", "b.png") for c in schema.names]
    for r in rows:
        mask = masks["ID001/a.png" if r["image_name"] == "a.png" else "ID002/b.png"]
        bit = schema.names.index(r["class"])
        expected = (mask >> np.uint64(bit)) & np.uint64(1) != 0
        np.testing.assert_array_equal(_decode_rle(r["rle"], height=16, width=20), expected)
        assert (r["rle"] == "") == (not expected.any())  # absent class: an empty rle
    first = next(r["rle"] for r in rows if r["class"] == "finger-1")
    assert first.split()[:2] == ["1", "12"]  # row-major, 1-based: the first row's 12 pixels


def test_nnunet_structure_and_labels_on_montgomery(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery)
    out = _write("nnunet", _items(ds), ds.schema, tmp_path / "out", dataset_id=7, dataset_name="Montgomery lungs")
    (folder,) = out.iterdir()
    assert folder.name == "Dataset007_Montgomery_lungs"
    doc = json.loads((folder / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "gray"} and doc["file_ending"] == ".png"
    assert doc["labels"] == {"background": 0, "left lung": 1, "right lung": 2}
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
    assert doc["numTraining"] == len(images) == len(labels) == len(ds)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+_0000\.png", n) for n in images)
    assert [n[: -len("_0000.png")] for n in images] == [n[: -len(".png")] for n in labels]
    for case, sid in doc["segstudio_cases"].items():
        np.testing.assert_array_equal(read_mask(folder / "labelsTr" / f"{case}.png"), ds.load_gt(sid))
        np.testing.assert_array_equal(read_image(folder / "imagesTr" / f"{case}_0000.png"), ds.load_image(sid))


def test_nnunet_ignore_last_test_split_and_rgb(tmp_path: Path) -> None:
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "lesion", (255, 0, 0))), ignore_index=255)
    src = tmp_path / "src"
    src.mkdir()
    mask = np.zeros((8, 9), np.uint8)
    mask[2:5, 2:6] = 1
    mask[7, :] = 255
    items = []
    for name, split, m in (("a.png", "train", mask), ("b.png", "test", mask), ("c.png", None, None)):
        Image.fromarray(np.full((8, 9, 3), (10, 20, 30), np.uint8)).save(src / name)
        items.append(ExportItem(name, src / name, lambda n=name: read_image(src / n), lambda m=m: m, split))
    out = _write("nnunet", items, schema, tmp_path / "out")
    folder = out / "Dataset501_segstudio"
    doc = json.loads((folder / "dataset.json").read_text())
    assert doc["labels"] == {"background": 0, "lesion": 1, "ignore": 2}  # ignore: the highest value
    assert doc["channel_names"] == {"0": "R", "1": "G", "2": "B"} and doc["numTraining"] == 1
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["b_0000.png", "c_0000.png"]
    label = read_mask(folder / "labelsTr" / "a.png")
    np.testing.assert_array_equal(label, np.where(mask == 255, 2, mask))
    np.testing.assert_array_equal(read_image(folder / "imagesTr" / "a_0000.png"), read_image(src / "a.png"))


def test_nnunet_refuses_multilabel_naming_alternatives(tmp_path: Path) -> None:
    schema, items, _ = _multilabel_items(tmp_path / "src")
    (tmp_path / "out").mkdir()
    with pytest.raises(DatasetExportError, match="binary-pngs") as e:
        list(get_writer("nnunet").write(items, schema=schema, out=tmp_path / "out", options={}))
    assert "multi-label" in str(e.value) and not any((tmp_path / "out").iterdir())


def test_binary_pngs_multilabel_overlaps(tmp_path: Path) -> None:
    schema, items, masks = _multilabel_items(tmp_path / "src")
    out = _write("binary-pngs", items, schema, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["Radius", "Ulna", "finger-1", "images"]
    for sid, mask in masks.items():
        assert (out / "images" / sid).read_bytes() == (tmp_path / "src" / sid).read_bytes()
        for bit, name in enumerate(schema.names):
            png = read_mask(out / name / sid)
            assert set(np.unique(png).tolist()) <= {0, 255}
            np.testing.assert_array_equal(png == 255, (mask >> np.uint64(bit)) & np.uint64(1) != 0)


def test_binary_pngs_on_ph2_read_back_as_class_folders(ph2: Path, tmp_path: Path) -> None:
    ds = open_dataset(ph2)
    items = _items(ds)[:4]
    flat = [ExportItem(Path(it.sample_id).name, it.image_path, it.load_image, it.load_mask) for it in items]
    out = _write("binary-pngs", flat, ds.schema, tmp_path / "out")
    back = open_dataset(out, format="class-folders")
    assert back.schema.names == ("background", "lesion")
    for it, orig in zip(flat, items, strict=True):
        np.testing.assert_array_equal(back.load_gt("images/" + it.sample_id), ds.load_gt(orig.sample_id))
