"""Paired folders, PH2 and CamVid (SegNet + colour-coded) on the real data and on broken fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError
from segstudio.datasets.registry import AmbiguousFormatError, detect, open_dataset


# --- paired folders ----------------------------------------------------------------------------------------------
def test_montgomery_union_masks_as_paired_folders(montgomery: Path) -> None:
    assert [d.name for d in detect(montgomery)][:2] == ["class-folders", "paired-folders"]
    ds = open_dataset(montgomery, format="paired-folders")
    assert ds.schema.names == ("background", "foreground") and len(ds) == 40 and not ds.all_problems()
    s = ds[5]
    expected = (np.asarray(Image.open(montgomery / "masks" / Path(s.id).name)) >= 128).astype(np.uint8)
    np.testing.assert_array_equal(ds.load_gt(s), expected)


def _paired(tmp: Path, n: int = 3, *, values: tuple[int, ...] = (0, 255)) -> Path:
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    for k in range(n):
        Image.fromarray(np.full((6, 8), 10 * k, np.uint8)).save(tmp / "images" / f"a{k}.jpg")
        m = np.zeros((6, 8), np.uint8)
        m[:, :4] = values[-1]
        if len(values) > 2:
            m[0, 0] = values[1]
        Image.fromarray(m).save(tmp / "masks" / f"a{k}.png")
    return tmp


def test_paired_detected_alone_and_binary(tmp_path: Path) -> None:
    root = _paired(tmp_path)
    assert detect(root)[0].name == "paired-folders"
    ds = open_dataset(root)
    gt = ds.load_gt(ds[0])
    assert gt.dtype == np.uint8 and set(np.unique(gt)) == {0, 1}


def test_paired_missing_mask_and_orphan_mask(tmp_path: Path) -> None:
    root = _paired(tmp_path)
    (root / "masks" / "a1.png").rename(root / "masks" / "zz.png")
    ds = open_dataset(root, format="paired-folders")
    s = ds.get("images/a1.jpg")
    assert [p.kind for p in s.problems] == [ProblemKind.MISSING_MASK] and ds.load_gt(s) is None
    assert [(p.kind, p.path.name) for p in ds.problems] == [(ProblemKind.MISSING_IMAGE, "zz.png")]
    assert ds.load_gt(ds.get("images/a0.jpg")) is not None  # the rest still opens


def test_paired_out_of_range_index_is_named(tmp_path: Path) -> None:
    root = _paired(tmp_path, values=(0, 7, 2))
    ds = open_dataset(root, format="paired-folders", classes=["bg", "a", "b"])
    with pytest.raises(DatasetProblemError) as e:
        ds.load_gt(ds[0])
    assert e.value.kind == ProblemKind.OUT_OF_RANGE and "7 (1 px)" in e.value.message
    assert e.value.path == root / "masks" / "a0.png"


def test_paired_size_mismatch(tmp_path: Path) -> None:
    root = _paired(tmp_path)
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(root / "masks" / "a2.png")
    ds = open_dataset(root)
    with pytest.raises(DatasetProblemError, match="3x3") as e:
        ds.load_gt(ds.get("images/a2.jpg"))
    assert e.value.kind == ProblemKind.SIZE_MISMATCH


def test_paired_splits_and_suffix(tmp_path: Path) -> None:
    for split in ("train", "valid"):
        d = tmp_path / split
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
        for k in range(2 if split == "train" else 1):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "images" / f"{split}{k}.png")
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "masks" / f"{split}{k}_mask.png")
    ds = open_dataset(tmp_path)
    assert ds.split_counts() == {"train": 2, "val": 1}
    assert all(s.has_gt for s in ds) and not ds.all_problems()


def test_truncated_mask_is_corrupt(tmp_path: Path) -> None:
    root = _paired(tmp_path)
    data = (root / "masks" / "a0.png").read_bytes()
    (root / "masks" / "a0.png").write_bytes(data[:40])
    ds = open_dataset(root)
    with pytest.raises(DatasetProblemError) as e:
        ds.load_gt(ds.get("images/a0.jpg"))
    assert e.value.kind == ProblemKind.CORRUPT and "a0.png" in str(e.value)


def test_union_folder_beside_two_class_folders_picks_class_folders(tmp_path: Path) -> None:
    root = _paired(tmp_path)
    for cls in ("left", "right"):
        (root / cls).mkdir()
        for k in range(3):
            Image.fromarray(np.zeros((6, 8), np.uint8)).save(root / cls / f"a{k}.png")
    found = {d.name: d.confidence for d in detect(root)}
    assert found["class-folders"] - found["paired-folders"] >= 0.15
    assert open_dataset(root).schema.names == ("background", "left", "right")


def test_close_confidences_raise_ambiguity_with_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.datasets import registry

    class Fake:
        description = "fake"

        def __init__(self, name: str, conf: float) -> None:
            self.name, self.conf = name, conf

        def sniff(self, path: Path) -> float:
            return self.conf

    monkeypatch.setattr(registry, "_FORMAT_MODULES", {"a": "x:A", "b": "x:B"})
    monkeypatch.setattr(registry, "_loaded", {"a": Fake("a", 0.8), "b": Fake("b", 0.75)})
    with pytest.raises(AmbiguousFormatError) as e:
        open_dataset(tmp_path)
    assert e.value.candidates == [("a", 0.8), ("b", 0.75)] and "--format" in str(e.value)


# --- PH2 -----------------------------------------------------------------------------------------------------------
def test_ph2_opens_with_lesion_masks(ph2: Path) -> None:
    assert detect(ph2)[0].name == "ph2"
    ds = open_dataset(ph2)
    assert ds.schema.names == ("background", "lesion") and len(ds) == 30 and not ds.all_problems()
    case = ph2 / "PH2 Dataset images" / "IMD002"
    s = ds.get("PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp")
    # IMD002 is the 24-bit BMP; IMD006 a 1-bit one: both must decode like PIL does.
    expected = (np.asarray(Image.open(case / "IMD002_lesion" / "IMD002_lesion.bmp").convert("L")) > 127).astype(np.uint8)
    np.testing.assert_array_equal(ds.load_gt(s), expected)
    s6 = ds.get("PH2 Dataset images/IMD006/IMD006_Dermoscopic_Image/IMD006.bmp")
    m6 = np.asarray(Image.open(ph2 / "PH2 Dataset images/IMD006/IMD006_lesion/IMD006_lesion.bmp").convert("L")) > 127
    np.testing.assert_array_equal(ds.load_gt(s6), m6.astype(np.uint8))
    assert ds.load_image(s).shape == (*expected.shape, 3)


def test_ph2_colour_classes_are_multilabel(ph2: Path) -> None:
    ds = open_dataset(ph2, colours=True)
    assert ds.schema.multilabel and ds.schema.names[:2] == ("lesion", "white")
    assert ds.schema.names[7:] == ("streaks",)  # IMD146_R1_LabelStreaks.bmp: a named region label
    assert not ds.all_problems()
    s146 = ds.get("PH2 Dataset images/IMD146/IMD146_Dermoscopic_Image/IMD146.bmp")
    streaks = np.asarray(Image.open(ph2 / "PH2 Dataset images/IMD146/IMD146_roi/IMD146_R1_LabelStreaks.bmp").convert("L")) > 127
    np.testing.assert_array_equal(((ds.load_gt(s146) >> np.uint64(7)) & np.uint64(1)).astype(bool), streaks)
    s = ds.get("PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp")
    gt = ds.load_gt(s)
    roi = np.asarray(Image.open(ph2 / "PH2 Dataset images/IMD002/IMD002_roi/IMD002_R1_Label4.bmp").convert("L")) > 127
    np.testing.assert_array_equal(((gt >> np.uint64(4)) & np.uint64(1)).astype(bool), roi)


# --- CamVid --------------------------------------------------------------------------------------------------------
def test_camvid_segnet_splits_and_labels(camvid: Path) -> None:
    assert detect(camvid)[0].name == "camvid-segnet"
    ds = open_dataset(camvid)
    assert ds.split_counts() == {"train": 30, "val": 10, "test": 10}
    assert len(ds.schema) == 12 and ds.schema.ignore_index == 11
    assert ds.schema.by_id(3).name == "Road" and ds.schema.by_id(3).colour == (128, 64, 128)
    s = ds.split("val")[0]
    expected = np.asarray(Image.open(camvid / "valannot" / Path(s.id).name))
    np.testing.assert_array_equal(ds.load_gt(s), expected)
    assert not ds.all_problems()


def _rgb_fixture(camvid: Path, tmp: Path, n: int = 3) -> Path:
    colours = [tuple(int(v) for v in ln.split()[:3]) for ln in (camvid / "label_colors.txt").read_text().splitlines() if ln.strip()]
    (tmp / "label_colors.txt").write_text((camvid / "label_colors.txt").read_text())
    lut = np.array(colours, np.uint8)
    for f in sorted((camvid / "trainannot").iterdir())[:n]:
        idx = np.asarray(Image.open(f))
        Image.open(camvid / "train" / f.name).save(tmp / f.name)
        Image.fromarray(lut[idx]).save(tmp / f"{f.stem}_L.png")
    return tmp


def test_camvid_rgb_decodes_colour_labels(camvid: Path, tmp_path: Path) -> None:
    root = _rgb_fixture(camvid, tmp_path)
    assert detect(root)[0].name == "camvid-rgb"
    ds = open_dataset(root)
    assert len(ds) == 3 and len(ds.schema) == 12 and ds.schema.ignore_index == 11
    for s in ds:
        np.testing.assert_array_equal(ds.load_gt(s), np.asarray(Image.open(camvid / "trainannot" / Path(s.id).name)))
    assert not ds.all_problems()


def test_camvid_rgb_unknown_colour_reported_with_counts(camvid: Path, tmp_path: Path) -> None:
    root = _rgb_fixture(camvid, tmp_path, n=1)
    lab = next(root.glob("*_L.png"))
    arr = np.asarray(Image.open(lab)).copy()
    arr[:2, :5] = (1, 2, 3)
    Image.fromarray(arr).save(lab)
    ds = open_dataset(root)
    gt = ds.load_gt(ds[0])
    assert (gt[:2, :5] == 11).all()
    (p,) = ds.problems
    assert p.kind == ProblemKind.UNKNOWN_COLOUR and "RGB(1, 2, 3) (10 px)" in p.message and p.path == lab


def test_camvid_rgb_class_dict_layout_with_split_folders(camvid: Path, tmp_path: Path) -> None:
    """Semantic-Segmentation-Suite shape: train/x.png + train_labels/x_L.png + class_dict.csv (name,r,g,b)."""
    rows = [ln.split() for ln in (camvid / "label_colors.txt").read_text().splitlines() if ln.strip()]
    (tmp_path / "class_dict.csv").write_text("name,r,g,b\n" + "".join(f"{r[3]},{r[0]},{r[1]},{r[2]}\n" for r in rows))
    lut = np.array([[int(v) for v in r[:3]] for r in rows], np.uint8)
    for split, src in (("train", "train"), ("val", "val")):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}_labels").mkdir()
        for f in sorted((camvid / f"{src}annot").iterdir())[:2]:
            Image.open(camvid / src / f.name).save(tmp_path / split / f.name)
            Image.fromarray(lut[np.asarray(Image.open(f))]).save(tmp_path / f"{split}_labels" / f"{f.stem}_L.png")
    assert detect(tmp_path)[0].name == "camvid-rgb"
    ds = open_dataset(tmp_path)
    assert ds.split_counts() == {"train": 2, "val": 2} and ds.schema.by_id(3).name == "Road"
    s = ds.split("val")[1]
    np.testing.assert_array_equal(ds.load_gt(s), np.asarray(Image.open(camvid / "valannot" / Path(s.id).name)))


def test_paired_colour_masks_decode_through_classes_json(tmp_path: Path) -> None:
    root = _paired(tmp_path, n=1)
    (root / "classes.json").write_text(
        '{"classes": [{"id": 0, "name": "bg", "colour": [0, 0, 0]}, {"id": 1, "name": "cat", "colour": [255, 0, 0]},'
        ' {"id": 2, "name": "dog", "colour": [0, 0, 255]}]}'
    )
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1:3, 1:3] = (255, 0, 0)
    rgb[4:, 5:] = (0, 0, 255)
    Image.fromarray(rgb).save(root / "masks" / "a0.png")
    ds = open_dataset(root, format="paired-folders")
    expected = np.zeros((6, 8), np.uint8)
    expected[1:3, 1:3] = 1
    expected[4:, 5:] = 2
    np.testing.assert_array_equal(ds.load_gt(ds[0]), expected)
    rgb[0, 0] = (9, 9, 9)
    Image.fromarray(rgb).save(root / "masks" / "a0.png")
    with pytest.raises(DatasetProblemError, match=r"RGB\(9, 9, 9\) \(1 px\)") as e:
        ds.load_gt(ds[0])
    assert e.value.kind == ProblemKind.UNKNOWN_COLOUR


def test_two_images_with_one_stem_are_reported_not_silently_dropped(tmp_path: Path) -> None:
    root = _paired(tmp_path, n=1)
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(root / "images" / "a0.png")
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["images/a0.jpg"]
    (p,) = ds.problems
    assert p.kind == ProblemKind.OTHER and "a0.jpg, a0.png share a stem" in p.message
