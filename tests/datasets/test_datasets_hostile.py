"""Issue 13: hostile and unlucky dataset files (cases 1, 4, 5 and the dataset part of 8), one test per case.

Each test builds the hostile input in a temporary folder and opens it through the public API; the dataset must
open, the bad file must be named (an error or a problem), and the rest must still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.core.errors import DatasetError
from segstudio.core.geometry import GeometryError, decode_rle_string, mask_to_rle, segmentation_runs
from segstudio.datasets import open_dataset
from segstudio.datasets.base import ProblemKind
from segstudio.datasets.io import DatasetProblemError, ReaderFailedError
from segstudio.datasets.stats import ClassStats, scan_stats


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _coco(root: Path, annotations: list[dict], *, images: list[dict] | None = None) -> Path:
    for name in ("a.png", "b.png"):
        _png(root / name, np.zeros((10, 12), np.uint8))
    doc = {
        "images": images if images is not None else [
            {"id": 1, "file_name": "a.png", "height": 10, "width": 12},
            {"id": 2, "file_name": "b.png", "height": 10, "width": 12},
        ],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": annotations,
    }
    (root / "ann.json").write_text(json.dumps(doc))
    return root


_GOOD = {"id": 5, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 8, 1, 8, 8, 1, 8]]}


# --- case 1: a crash from one annotation ------------------------------------------------------------------------
@pytest.mark.parametrize("far", [1e9, 1e8, -3e9, 2**40])
def test_case1_far_out_polygon_is_named_not_a_crash(tmp_path: Path, far: float) -> None:
    """Coordinates around 1e9 segfaulted pycocotools (1e8 made it allocate gigabytes): now our error, naming the
    file and the annotation id, and the other image's mask still loads."""
    bad = {"id": 17, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, far, 0, far, far, 0, far]]}
    ds = open_dataset(_coco(tmp_path, [bad, _GOOD]))
    with pytest.raises(DatasetProblemError) as e:
        ds.load_gt("a.png")
    assert e.value.kind == ProblemKind.BAD_ANNOTATION and e.value.path == tmp_path / "ann.json"
    assert e.value.message.startswith("Annotation id 17") and "outside" in e.value.message
    assert ds.load_gt("b.png").sum() == 49  # the rest still loads
    (result,) = [ev for ev in scan_stats(ds) if isinstance(ev, ClassStats)]  # info --stats skips and reports it
    assert result.masks_read == 1 and [p.sample_id for p in result.problems] == ["a.png"]


def test_case1_outline_budget_bounds_the_rasteriser(tmp_path: Path) -> None:
    """Sane coordinates, but a polygon zig-zagging across the image 200,000 times: refused before pycocotools."""
    ys = np.linspace(0, 9, 200_000)
    xs = np.where(np.arange(ys.size) % 2 == 0, -5.0, 20.0)
    zigzag = np.stack([xs, ys], 1).ravel().tolist()
    ds = open_dataset(_coco(tmp_path, [{"id": 3, "image_id": 1, "category_id": 1, "segmentation": [zigzag]}]))
    with pytest.raises(DatasetProblemError, match="outline"):
        ds.load_gt("a.png")


@pytest.mark.parametrize(
    "points",
    [[[0, 0], [1e9, 0], [1e9, 1e9]], [[0, 0], ["x", 1], [2, 2]], [[0, 0], [10**400, 1], [2, 2]], [[float("nan"), 0]]],
)
def test_case1_labelme_and_hand_bone_points_are_checked(tmp_path: Path, points: list) -> None:
    lm = tmp_path / "lm"
    _png(lm / "x.png", np.zeros((8, 8), np.uint8))
    shapes = [{"label": "a", "points": points, "shape_type": "polygon"},
              {"label": "a", "points": [[1, 1], [5, 1], [5, 5]], "shape_type": "polygon"}]
    (lm / "x.json").write_text(json.dumps({"shapes": shapes, "imagePath": "x.png"}))
    ds = open_dataset(lm, format="labelme")
    (sample,) = ds.samples
    if any(p.kind == ProblemKind.BAD_ANNOTATION for p in sample.problems):
        assert ds.load_gt(sample).sum() > 0  # malformed shape reported at open, the good one drawn
    else:
        with pytest.raises(DatasetProblemError, match="Shape 0"):
            ds.load_gt(sample)
    hb = tmp_path / "hb"
    _png(hb / "DCM" / "ID001" / "x.png", np.zeros((8, 8), np.uint8))
    (hb / "outputs_json" / "ID001").mkdir(parents=True)
    (hb / "outputs_json" / "ID001" / "x.json").write_text(
        json.dumps({"annotations": [{"label": "Radius", "points": points, "type": "poly_seg"}]})
    )
    ds = open_dataset(hb, format="hand-bone")
    with pytest.raises(DatasetProblemError) as e:
        ds.load_gt(ds[0])
    assert e.value.path == hb / "outputs_json" / "ID001" / "x.json"


def test_case1_rle_counts_are_bounded() -> None:
    with pytest.raises(GeometryError, match="no larger"):
        segmentation_runs({"size": [2, 2], "counts": [0, 2**63 + 5, 0]}, height=2, width=2)
    with pytest.raises(GeometryError):
        segmentation_runs({"size": [2, 2], "counts": [-1, 5]}, height=2, width=2)
    with pytest.raises(GeometryError, match="too large"):
        decode_rle_string("o" * 40 + "0", total=4)  # 40 continuation groups: a number of 200 bits
    with pytest.raises(GeometryError, match="more than"):
        decode_rle_string(mask_to_rle(np.ones((50, 50), bool))["counts"], total=4)
    with pytest.raises(GeometryError, match="whole numbers"):
        segmentation_runs({"size": [1e999, 2], "counts": "0"}, height=2, width=2)


# --- case 4: silent wrong masks -----------------------------------------------------------------------------------
def _paired(root: Path, masks: dict[str, np.ndarray]) -> Path:
    for name, m in masks.items():
        _png(root / "images" / f"{name}.png", np.zeros(m.shape, np.uint8))
        _png(root / "masks" / f"{name}.png", m)
    return root


def test_case4_binary_foreground_does_not_depend_on_the_mask_maximum(tmp_path: Path) -> None:
    """A 0/1 mask with one stray 2 kept its object only while 2 was absent: the threshold followed the max."""
    obj = np.zeros((6, 8), np.uint8)
    obj[1:5, 1:5] = 1
    stray = obj.copy()
    stray[0, 7] = 2
    ds = open_dataset(_paired(tmp_path, {"a": obj, "b": obj, "c": stray, "d": obj}))
    gt = ds.load_gt("images/c.png")
    assert gt[1:5, 1:5].all() and gt.sum() == 17  # the object, and the stray pixel read as foreground
    (p,) = [p for p in ds.problems if p.sample_id == "images/c.png"]
    assert p.kind == ProblemKind.OUT_OF_RANGE and p.path == tmp_path / "masks" / "c.png" and "2 (1 px)" in p.message


def test_case4_sixteen_bit_zero_one_mask_with_large_values(tmp_path: Path) -> None:
    obj = np.zeros((6, 8), np.uint16)
    obj[2:4, 2:6] = 1
    odd = obj.copy()
    odd[5, :3] = 60000
    ds = open_dataset(_paired(tmp_path, {"a": obj, "b": odd, "c": obj}))
    gt = ds.load_gt("images/b.png")
    assert gt[2:4, 2:6].all() and gt.sum() == 11
    assert any("60000 (3 px)" in p.message for p in ds.problems)


def test_case4_interpolated_zero_255_masks_still_threshold_at_half(tmp_path: Path) -> None:
    m = np.zeros((6, 8), np.uint8)
    m[:, :4] = 255
    m[:, 4] = 100  # an interpolated edge: background
    m[:, 5] = 140  # foreground
    ds = open_dataset(_paired(tmp_path, {"a": m, "b": m}))
    np.testing.assert_array_equal(ds.load_gt("images/a.png"), (m >= 128).astype(np.uint8))
    assert not ds.problems


def test_case4_zero_one_mask_among_zero_255_masks_is_not_emptied(tmp_path: Path) -> None:
    m255 = np.zeros((6, 8), np.uint8)
    m255[:3] = 255
    m01 = (m255 > 0).astype(np.uint8)
    ds = open_dataset(_paired(tmp_path, {"a": m255, "b": m01, "c": m255}))
    assert ds.load_gt("images/b.png").sum() == 24
    assert any(p.sample_id == "images/b.png" and "only 0 and 1" in p.message for p in ds.problems)


def test_case4_foreground_value_option_and_class_folders(tmp_path: Path) -> None:
    obj = np.zeros((6, 8), np.uint8)
    obj[1:4, 1:4] = 1
    stray = obj.copy()
    stray[5, 5] = 3
    root = tmp_path / "cf"
    for name in ("a", "b"):
        _png(root / "images" / f"{name}.png", np.zeros((6, 8), np.uint8))
        _png(root / "leftMask" / f"{name}.png", stray if name == "b" else obj)
        _png(root / "rightMask" / f"{name}.png", np.zeros((6, 8), np.uint8))
    ds = open_dataset(root, format="class-folders")
    assert (ds.load_gt("images/b.png") == 1).sum() == 10
    assert any("3 (1 px)" in p.message for p in ds.problems)
    ds = open_dataset(root, format="class-folders", foreground_value=255)
    assert (ds.load_gt("images/a.png") == 1).sum() == 9  # told 0/255, yet a 0/1 mask is never read as empty...
    assert any("only 0 and 1" in p.message for p in ds.problems)  # ...and is reported


# --- case 5: a dataset that disappears ----------------------------------------------------------------------------
def test_case5_self_referencing_symlink_does_not_empty_the_listing(tmp_path: Path) -> None:
    m = np.zeros((6, 8), np.uint8)
    m[:2] = 255
    root = _paired(tmp_path, {"a": m, "b": m, "c": m})
    os.symlink("loop.png", root / "images" / "loop.png")  # points to itself
    os.symlink("gone.png", root / "images" / "broken.png")
    ds = open_dataset(root)
    assert ds.format_name == "paired-folders" and [s.id for s in ds] == ["images/a.png", "images/b.png", "images/c.png"]
    skipped = {p.path.name: p for p in ds.problems if p.kind == ProblemKind.CORRUPT}
    assert set(skipped) == {"loop.png", "broken.png"}
    assert "points to itself" in skipped["loop.png"].message and "Fix:" in skipped["loop.png"].message
    assert ds.load_gt("images/b.png").sum() == 16


def test_case5_unreadable_subfolder_is_reported_and_the_rest_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied on one class folder (simulated: the tests may run as root, who reads everything)."""
    root = tmp_path / "cf"
    for name in ("a", "b"):
        _png(root / "images" / f"{name}.png", np.zeros((6, 8), np.uint8))
        for cls in ("leftMask", "rightMask", "heartMask"):
            _png(root / cls / f"{name}.png", np.full((6, 8), 255, np.uint8))
    real = os.scandir
    denied = str(root / "heartMask")

    def scandir(path: object = ".") -> object:
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    ds = open_dataset(root, format="class-folders")
    assert len(ds) == 2 and ds.load_gt("images/a.png").max() >= 1
    assert any(p.path == root / "heartMask" and "permission denied" in p.message for p in ds.problems)


def test_case5_coco_listing_survives_a_loop(tmp_path: Path) -> None:
    root = _coco(tmp_path, [_GOOD])
    os.symlink("x.png", root / "x.png")
    ds = open_dataset(root)
    assert not any(p.kind == ProblemKind.MISSING_IMAGE for s in ds for p in s.problems)
    assert any(p.path == root / "x.png" for p in ds.problems)


# --- case 8: raw errors instead of ours -----------------------------------------------------------------------------
def test_case8_coco_overflowing_compressed_rle(tmp_path: Path) -> None:
    rle = {"size": [10, 12], "counts": "0" + "o" * 30 + "0"}
    ds = open_dataset(_coco(tmp_path, [{"id": 9, "image_id": 1, "category_id": 1, "segmentation": rle}, _GOOD]))
    with pytest.raises(DatasetProblemError, match="Annotation id 9"):
        ds.load_gt("a.png")
    assert ds.load_gt("b.png").sum() == 49


def test_case8_deep_nesting_is_our_error(tmp_path: Path) -> None:
    root = _coco(tmp_path, [])
    (root / "ann.json").write_text('{"images": [], "annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DatasetProblemError, match="nested too deeply") as e:
        open_dataset(root, format="coco")
    assert e.value.path == root / "ann.json"


def test_case8_mistyped_fields(tmp_path: Path) -> None:
    """``"height": 1e999``, a list where an id belongs, strings where numbers belong: reported, the rest opens."""
    images = [
        {"id": 1, "file_name": "a.png", "height": 1e999, "width": "12"},
        {"id": [2], "file_name": "b.png", "height": 10, "width": 12},
        {"id": 3, "file_name": ["c.png"]},
    ]
    text = json.dumps({
        "images": images,
        "categories": [{"id": [1], "name": "list"}, {"id": 1, "name": {"deep": [[]]}}],
        "annotations": [{"id": [4], "image_id": 1, "category_id": [1], "segmentation": [[1, 1, 5, 1, 5, 5]]},
                        {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [["1", 1, 5, 1, 5, 5]]},
                        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]], "area": "x"}],
    }).replace("Infinity", "1e999")
    root = _coco(tmp_path, [])
    (root / "ann.json").write_text(text)
    ds = open_dataset(root)
    assert sorted(s.id for s in ds) == ["a.png", "b.png"]
    assert any("height" in p.message for p in ds.get("a.png").problems)
    with pytest.raises(DatasetProblemError, match="Annotation id 5"):
        ds.load_gt("a.png")
    assert ds.load_gt("b.png").sum() == 0  # no usable id: no annotations, an empty mask
    assert any(p.kind == ProblemKind.BAD_ANNOTATION and "file_name" in p.message for p in ds.problems)


def test_case8_broken_json_and_text_files_name_the_file(tmp_path: Path) -> None:
    root = _paired(tmp_path / "p", {"a": np.zeros((4, 4), np.uint8)})
    (root / "labels.txt").write_bytes(b"bg\n\xff\xfe\n")
    with pytest.raises(DatasetError, match="UTF-8") as e:
        open_dataset(root)
    assert e.value.path == root / "labels.txt"
    (root / "labels.txt").unlink()
    (root / "classes.json").write_text(json.dumps({"classes": [{"id": 1e999, "name": "x"}]}))
    with pytest.raises(DatasetError, match="'id' must be") as e:
        open_dataset(root)
    assert e.value.path == root / "classes.json"
    (root / "classes.json").write_text(json.dumps({"classes": [{"id": 0, "name": "a"}, {"id": 0, "name": "b"}]}))
    with pytest.raises(DatasetError, match="Duplicate class id"):
        open_dataset(root)


def test_case8_non_utf8_file_name_keeps_the_image_usable(tmp_path: Path) -> None:
    """``os.fsdecode`` gives lone surrogates, which SQLite cannot store: the id is escaped, the image loads."""
    m = np.zeros((6, 8), np.uint8)
    m[:2] = 255
    root = _paired(tmp_path, {"ok": m})
    raw = os.fsencode(root) + b"/images/caf\xe9.png"
    _png(Path(os.fsdecode(raw)), np.full((6, 8), 7, np.uint8))
    _png(Path(os.fsdecode(os.fsencode(root) + b"/masks/caf\xe9.png")), m)
    ds = open_dataset(root)
    ids = sorted(s.id for s in ds)
    assert ids == ["images/caf\\xe9.png", "images/ok.png"]
    for sid in ids:
        sid.encode("utf-8")  # storable
    s = ds.get("images/caf\\xe9.png")
    assert ds.load_image(s).max() == 7 and ds.load_gt(s).sum() == 16
    (note,) = s.problems
    assert "not valid UTF-8" in note.message and "rename" in note.message
    str(note).encode("utf-8")


def test_case8_corrupt_gt_mask_does_not_abort_the_scan(tmp_path: Path) -> None:
    m = np.zeros((6, 8), np.uint8)
    m[:2] = 255
    root = _paired(tmp_path, {"a": m, "b": m, "c": m})
    (root / "masks" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    ds = open_dataset(root)
    (result,) = [ev for ev in scan_stats(ds) if isinstance(ev, ClassStats)]
    assert result.masks_read == 2 and [p.path for p in result.problems] == [root / "masks" / "b.png"]


def test_case8_reader_surprises_become_our_error(tmp_path: Path) -> None:
    m = np.zeros((6, 8), np.uint8)
    ds = open_dataset(_paired(tmp_path, {"a": m}))

    def broken(ds: object, sample: object) -> None:
        raise IndexError("a reader bug")

    ds.read_gt = broken  # type: ignore[assignment]
    with pytest.raises(ReaderFailedError, match="IndexError") as e:
        ds.load_gt("images/a.png")
    assert e.value.path == tmp_path / "masks" / "a.png"
