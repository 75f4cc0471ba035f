"""Folder writers (issue 14): read -> write -> read gives the same masks, schema and splits.

On the real datasets where the format matches (Montgomery as class-folders, semantic and multi-label, and as
paired-folders; PH2; CamVid SegNet as camvid-segnet and as paired-folders), on small fixtures built here
elsewhere (VOC, DICOM, camvid-rgb, overlapping multi-label class folders, 16-bit ids, colliding names), and the
refusals: a layout that cannot hold what it is given raises before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets import open_dataset
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.io import image_size
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress, get_writer

#: Real-data round trips use a few samples: enough to cover the layout, fast enough for every run.
SUBSET = 6


def _items(ds: Dataset, samples: list[Sample]) -> list[ExportItem]:
    return [
        ExportItem(s.id, s.image, (lambda s=s: ds.load_image(s)), (lambda s=s: ds.load_gt(s)), s.split)
        for s in samples
    ]


def _write(writer: str, items: list[ExportItem], schema: ClassSchema, out: Path, **options: object) -> list[WriteProgress]:
    out.mkdir(parents=True, exist_ok=True)
    return list(get_writer(writer).write(items, schema=schema, out=out, options=options))


def _same_schema(a: ClassSchema, b: ClassSchema, *, colours: bool = True) -> None:
    assert a.names == b.names
    assert a.ids == b.ids
    assert a.ignore_index == b.ignore_index
    assert a.multilabel == b.multilabel
    assert [c.ignore for c in a.classes] == [c.ignore for c in b.classes]
    if colours:
        assert [c.colour for c in a.classes] == [c.colour for c in b.classes]


def _round_trip(
    ds: Dataset, samples: list[Sample], writer: str, out: Path, *, fmt: str | None = None, colours: bool = True,
    **open_options: object,
) -> Dataset:
    """Write ``samples`` of ``ds`` with ``writer`` into ``out``, open ``out`` (detected) and check it matches:
    the format detected, the schema, and per sample (matched by image stem) the mask and the split."""
    progress = _write(writer, _items(ds, samples), ds.schema, out)
    assert [p.done for p in progress] == list(range(1, len(samples) + 1))
    assert all(p.total == len(samples) and p.path is not None and p.path.is_file() for p in progress)
    back = open_dataset(out, **open_options)
    assert back.format_name == (fmt or writer)
    _same_schema(back.schema, ds.schema, colours=colours)
    by_stem = {Path(s.id).stem: s for s in back.samples}
    assert sorted(by_stem) == sorted(Path(s.id).stem for s in samples)
    for s in samples:
        b = by_stem[Path(s.id).stem]
        want, got = ds.load_gt(s), back.load_gt(b)
        assert (want is None) == (got is None), s.id
        if want is not None and got is not None:
            assert got.dtype == want.dtype, s.id
            assert np.array_equal(got, want), s.id
        assert b.split == s.split, s.id
    assert not back.all_problems(), [str(p) for p in back.all_problems()]
    return back


def _same_bytes(a: Path, b: Path) -> bool:
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def _by_split(ds: Dataset, n: int) -> list[Sample]:
    return [s for split in ("train", "val", "test") for s in ds.split(split)[:n]]


# --- real data ------------------------------------------------------------------------------------------------------


def test_montgomery_class_folders_semantic(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="class-folders")
    assert not ds.schema.multilabel
    back = _round_trip(ds, ds.samples[:SUBSET], "class-folders", tmp_path / "out")
    # the background class is written as no folder; each lung has its own
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == ["images", "left_lung", "right_lung"]
    for s in ds.samples[:SUBSET]:
        assert _same_bytes(s.image, back.get(f"images/{s.image.name}").image)  # copied byte for byte


def test_montgomery_class_folders_multilabel(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="class-folders", multilabel=True)
    assert ds.schema.multilabel
    _round_trip(ds, ds.samples[:SUBSET], "class-folders", tmp_path / "out")  # classes.json says multi-label


def test_montgomery_paired_folders(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="paired-folders")
    back = _round_trip(ds, ds.samples[:SUBSET], "paired-folders", tmp_path / "out")
    mask = Image.open(tmp_path / "out" / "masks" / f"{ds.samples[0].image.stem}.png")
    # a palette PNG: viewers show the schema's colours while the values stay class ids
    assert mask.mode == "P"
    assert tuple(mask.getpalette()[3:6]) == ds.schema.by_id(1).colour  # type: ignore[index]
    assert back.schema == ds.schema


def test_ph2_native_layout(ph2: Path, tmp_path: Path) -> None:
    ds = open_dataset(ph2)
    back = _round_trip(ds, ds.samples[:SUBSET], "ph2", tmp_path / "out")
    assert [s.id for s in back.samples] == [s.id for s in ds.samples[:SUBSET]]  # IMDxxx names kept
    for s in ds.samples[:SUBSET]:
        assert _same_bytes(s.image, back.get(s.id).image)


def test_camvid_segnet_to_camvid_segnet(camvid: Path, tmp_path: Path) -> None:
    ds = open_dataset(camvid)
    samples = _by_split(ds, 2)
    assert {s.split for s in samples} == {"train", "val", "test"}
    back = _round_trip(ds, samples, "camvid-segnet", tmp_path / "out")
    assert [s.id for s in back.samples] == [s.id for s in samples]  # train/x.png stays train/x.png


def test_camvid_segnet_to_paired_keeps_splits_and_ignore(camvid: Path, tmp_path: Path) -> None:
    ds = open_dataset(camvid)
    samples = _by_split(ds, 2)
    _round_trip(ds, samples, "paired-folders", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["classes.json", "test", "train", "val"]


# --- fixtures -------------------------------------------------------------------------------------------------------


def _rects(h: int, w: int, *boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for y0, y1, x0, x1, v in boxes:
        m[y0:y1, x0:x1] = v
    return m


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_class_folders_multilabel_overlaps_stay(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in ("images", "bone_a", "bone_b", "bone_c"):
        (src / d).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_rgb(24, 32, i)).save(src / "images" / f"x{i}.png")
        Image.fromarray(_rects(24, 32, (2, 14, 2, 20, 255))).save(src / "bone_a" / f"x{i}.png")
        Image.fromarray(_rects(24, 32, (8, 20, 10, 30, 255))).save(src / "bone_b" / f"x{i}.png")  # overlaps a
        Image.fromarray(_rects(24, 32, (0, 24, 15 + i, 17 + i, 255))).save(src / "bone_c" / f"x{i}.png")
    ds = open_dataset(src, format="class-folders", multilabel=True)
    gt = ds.load_gt(ds.samples[0])
    assert gt is not None and ((gt & 1) & (gt >> 1) & 1).any()  # the fixture has overlapping pixels
    _round_trip(ds, ds.samples, "class-folders", tmp_path / "out")


def _voc(tmp: Path) -> Path:
    root = tmp / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    palette = Image.open(_palette_png(tmp)).getpalette()
    for i, split in enumerate(("train", "train", "val")):
        Image.fromarray(_rgb(20, 30, i)).save(root / "JPEGImages" / f"2007_00000{i}.jpg", quality=90)
        m = _rects(20, 30, (0, 20, 0, 30, 255), (1, 19, 1, 29, 0), (3, 12, 4, 20, 15), (8, 18, 12 + i, 28, 7))
        im = Image.fromarray(m, mode="P")
        im.putpalette(palette)  # type: ignore[arg-type]
        im.save(root / "SegmentationClass" / f"2007_00000{i}.png")
        with open(root / "ImageSets/Segmentation" / f"{split}.txt", "a") as f:
            f.write(f"2007_00000{i}\n")
    return root


def _palette_png(tmp: Path) -> Path:
    from segstudio.datasets.formats.voc import voc_colour

    im = Image.new("P", (1, 1))
    im.putpalette([c for i in range(256) for c in voc_colour(i)])
    im.save(tmp / "pal.png")
    return tmp / "pal.png"


def test_voc_round_trip(tmp_path: Path) -> None:
    ds = open_dataset(_voc(tmp_path))
    assert ds.schema.ignore_index == 255 and {s.split for s in ds} == {"train", "val"}
    back = _round_trip(ds, ds.samples, "voc", tmp_path / "out")
    assert not (tmp_path / "out" / "labels.txt").exists()  # VOC's own 21 classes need none
    for s in ds.samples:
        assert _same_bytes(s.image, back.get(s.id).image)  # the JPEGs are not re-encoded


def test_voc_custom_classes_write_labels(tmp_path: Path) -> None:
    ds = open_dataset(_voc(tmp_path))
    schema = ClassSchema(tuple(ClassInfo(i, f"kind {i}", c.colour) for i, c in enumerate(ds.schema)), ignore_index=255)
    _write("voc", _items(ds, ds.samples), schema, tmp_path / "out")
    back = open_dataset(tmp_path / "out")
    _same_schema(back.schema, schema)


def _dicom_src(tmp: Path) -> Path:
    from pydicom.data import get_testdata_file

    d = tmp / "series"
    (d / "masks").mkdir(parents=True)
    for n in ("CT_small.dcm", "MR_small.dcm"):
        src = get_testdata_file(n, download=False)
        if src is None:
            pytest.skip("pydicom's bundled test files are not installed")
        shutil.copy(src, d / n)
        w, h = image_size(d / n)
        Image.fromarray(_rects(h, w, (5, 30, 5, 40, 1), (20, 50, 30, 60, 2))).save(d / "masks" / f"{Path(n).stem}.png")
    return d


def test_dicom_round_trip_multiclass(tmp_path: Path) -> None:
    ds = open_dataset(_dicom_src(tmp_path), classes=["background", "liver", "tumour"])
    back = _round_trip(ds, ds.samples, "dicom", tmp_path / "out")
    for s in ds.samples:
        assert _same_bytes(s.image, back.get(s.id).image)


def test_dicom_refuses_non_dicom_images(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="paired-folders")
    with pytest.raises(DatasetExportError, match="paired-folders"):
        _write("dicom", _items(ds, ds.samples[:2]), ds.schema, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())


def _camvid_rgb(tmp: Path) -> Path:
    root = tmp / "camvid_rgb"
    colours = [((128, 128, 128), "Sky"), ((128, 0, 0), "Building"), ((128, 64, 128), "Road"), ((0, 0, 0), "Void")]
    root.mkdir()
    (root / "label_colors.txt").write_text("".join(f"{r} {g} {b}\t{n}\n" for (r, g, b), n in colours))
    lut = np.array([c for c, _ in colours], np.uint8)
    for i, split in enumerate(("train", "train", "val")):
        (root / split).mkdir(exist_ok=True)
        Image.fromarray(_rgb(16, 24, i)).save(root / split / f"f{i}.png")
        m = _rects(16, 24, (0, 8, 0, 24, 0), (8, 16, 0, 24, 2), (4, 12, 6 + i, 14, 1), (14, 16, 0, 4, 3))
        Image.fromarray(lut[m]).save(root / split / f"f{i}_L.png")
    return root


def test_camvid_rgb_round_trip(tmp_path: Path) -> None:
    ds = open_dataset(_camvid_rgb(tmp_path))
    assert ds.format_name == "camvid-rgb" and ds.schema.ignore_index == 3
    _round_trip(ds, ds.samples, "camvid-rgb", tmp_path / "out")


def test_paired_sixteen_bit_ids(tmp_path: Path) -> None:
    """Ids past 255 cannot be palette indices: the masks become 16-bit grey PNGs and read back alike."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(300, "cell", (0, 200, 0))))
    for i in range(2):
        Image.fromarray(_rgb(12, 12, i)).save(src / "images" / f"c{i}.png")
        Image.fromarray(_rects(12, 12, (2, 8, 2, 8 + i, 1)).astype(np.uint16) * 300).save(src / "masks" / f"c{i}.png")
    (src / "classes.json").write_bytes(__import__("json").dumps(schema.to_dict()).encode())
    ds = open_dataset(src, format="paired-folders")
    assert ds.schema == schema and ds.schema.mask_dtype() == np.uint16
    _round_trip(ds, ds.samples, "paired-folders", tmp_path / "out")
    assert Image.open(tmp_path / "out" / "masks" / "c0.png").mode.startswith("I")


def test_colliding_names_from_subfolders_stay_apart(tmp_path: Path) -> None:
    """Two images named alike in different folders (hand-bone's ID001/image.png) get distinct files."""
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "thing", (255, 0, 0))))
    masks = {"a/img.png": _rects(8, 8, (0, 4, 0, 4, 1)), "b/img.png": _rects(8, 8, (4, 8, 4, 8, 1))}
    items = []
    for sid, m in masks.items():
        p = tmp_path / "src" / sid
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(8, 8, len(items))).save(p)
        items.append(ExportItem(sid, p, lambda: np.zeros((8, 8, 3), np.uint8), lambda m=m: m))
    _write("paired-folders", items, schema, tmp_path / "out")
    back = open_dataset(tmp_path / "out")
    got = {s.id: back.load_gt(s) for s in back.samples}
    assert sorted(got) == ["images/a__img.png", "images/b__img.png"]
    assert np.array_equal(got["images/a__img.png"], masks["a/img.png"])
    assert np.array_equal(got["images/b__img.png"], masks["b/img.png"])


# --- refusals and containment --------------------------------------------------------------------------------------


def test_paired_refuses_multilabel_naming_formats_that_keep_overlaps(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="class-folders", multilabel=True)
    out = tmp_path / "out"
    with pytest.raises(DatasetExportError) as e:
        _write("paired-folders", _items(ds, ds.samples[:2]), ds.schema, out)
    for name in ("class-folders", "binary-pngs", "coco"):
        assert name in str(e.value)
    assert not any(out.iterdir())  # refused before anything was written


@pytest.mark.parametrize("writer", ["voc", "camvid-segnet", "camvid-rgb", "dicom", "ph2"])
def test_palette_layouts_refuse_multilabel(writer: str, tmp_path: Path) -> None:
    schema = ClassSchema((ClassInfo(0, "a", (1, 2, 3)), ClassInfo(1, "b", (4, 5, 6))), multilabel=True)
    item = ExportItem("x.png", tmp_path / "x.png", lambda: np.zeros((2, 2), np.uint8), lambda: np.zeros((2, 2), np.uint64))
    with pytest.raises(DatasetExportError):
        _write(writer, [item], schema, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())


def test_ph2_refuses_more_than_a_lesion(montgomery: Path, tmp_path: Path) -> None:
    ds = open_dataset(montgomery, format="class-folders")  # background, left lung, right lung
    with pytest.raises(DatasetExportError, match="lesion"):
        _write("ph2", _items(ds, ds.samples[:1]), ds.schema, tmp_path / "out")


def test_list_layouts_refuse_an_ignore_they_cannot_name(tmp_path: Path) -> None:
    ds = open_dataset(_voc(tmp_path))  # ignore 255 outside the classes
    with pytest.raises(DatasetExportError, match="Void"):
        _write("camvid-segnet", _items(ds, ds.samples), ds.schema, tmp_path / "out1")
    cam = open_dataset(_camvid_rgb(tmp_path))  # ignore is the class Void
    with pytest.raises(DatasetExportError, match="void"):
        _write("voc", _items(cam, cam.samples), cam.schema, tmp_path / "out2")


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).digest()
    return out


@pytest.mark.parametrize("writer", ["paired-folders", "class-folders", "camvid-segnet", "voc"])
def test_writes_nothing_outside_out_and_leaves_the_source_alone(writer: str, tmp_path: Path) -> None:
    src = _voc(tmp_path / "data")
    ds = open_dataset(src)
    # a hostile id must not lead a file out of the export folder
    items = [ExportItem("../../" + s.id, s.image, (lambda s=s: ds.load_image(s)), (lambda s=s: ds.load_gt(s)), s.split)
             for s in ds.samples]
    schema = ds.schema
    if writer == "camvid-segnet":  # camvid names its ignore class: give it one
        schema = ClassSchema((*ds.schema.classes[:21], ClassInfo(21, "Void", (0, 0, 0), ignore=True)), ignore_index=21)
        items = [ExportItem(it.sample_id, it.image_path, it.load_image,
                            (lambda it=it: np.where(it.load_mask() == 255, 21, it.load_mask()).astype(np.uint8)),
                            it.split) for it in items]
    before = _tree(tmp_path)
    out = tmp_path / "exports" / "out"
    _write(writer, items, schema, out)
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert new and all(p.startswith(str(Path("exports") / "out")) for p in new), new
    assert {k: v for k, v in after.items() if k in before} == before  # the source is byte-identical


def test_a_mask_value_without_a_class_is_refused_naming_the_sample(tmp_path: Path) -> None:
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "thing", (255, 0, 0))))
    img = tmp_path / "x.png"
    Image.fromarray(_rgb(4, 4, 0)).save(img)
    item = ExportItem("images/x.png", img, lambda: np.zeros((4, 4, 3), np.uint8), lambda: _rects(4, 4, (0, 1, 0, 1, 9)))
    with pytest.raises(DatasetExportError, match=r"images/x\.png.*\[9\]"):
        _write("paired-folders", [item], schema, tmp_path / "out")
