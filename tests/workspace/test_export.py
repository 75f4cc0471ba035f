"""Export orchestration (issue 14): filters, versions, predictions, class renaming/merging, manifest and change
report, destination refusals, cancel and failure leave nothing, the source GT stays byte-identical.

The orchestration is tested through a small test-only writer (one ``.npy`` mask per item), so it does not depend on
any one format's writer; the end-to-end tests at the bottom use the real ``paired-folders`` and ``coco`` writers."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segstudio.core.errors import SegstudioError, UnknownKeyError
from segstudio.core.types import ClassSchema
from segstudio.datasets import writing
from segstudio.datasets.registry import open_dataset
from segstudio.datasets.writing import DatasetExportError, ExportItem, WriteProgress
from segstudio.workspace import MaskSource, ReviewStatus, Workspace
from segstudio.workspace.export import (
    ExportCancelled,
    ExportFinished,
    ExportProgress,
    ExportRequest,
    ExportStarted,
    change_counts,
    class_mapping,
    plan_export,
    run_export,
)

CLASSES = ["background", "lung", "heart"]
H = W = 16


class NpyWriter:
    """Test writer: ``masks/<id>.npy`` per item and ``schema.json``; can be told to fail after ``fail_at`` items."""

    name = "npy"
    description = "test"
    multilabel = True

    def __init__(self, *, fail_at: int | None = None, multilabel: bool = True) -> None:
        self.fail_at = fail_at
        self.multilabel = multilabel

    def write(self, items: Sequence[ExportItem], *, schema: ClassSchema, out: Path,
              options: Mapping[str, Any]) -> Iterator[WriteProgress]:  # fmt: skip
        (out / "schema.json").write_text(json.dumps({"schema": schema.to_dict(), "options": dict(options)}))
        for i, it in enumerate(items):
            if self.fail_at is not None and i == self.fail_at:
                raise DatasetExportError("test failure", path=out)
            m = it.load_mask()
            p = out / "masks" / f"{it.rel}.npy"
            p.parent.mkdir(parents=True, exist_ok=True)
            if m is not None:
                np.save(p, m)
            yield WriteProgress(i + 1, len(items), p if m is not None else None)


@pytest.fixture
def npy_writer(monkeypatch: pytest.MonkeyPatch) -> NpyWriter:
    w = NpyWriter()
    monkeypatch.setitem(writing.WRITER_MODULES, "npy", "tests:unused")
    monkeypatch.setitem(writing._loaded, "npy", w)
    return w


def _gt(i: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:8, 2 + i % 4 : 8 + i % 4] = 1
    m[10:14, 10:14] = 2
    return m


def make_dataset(root: Path, n: int = 6) -> Path:
    """A paired-folders dataset with three classes in ``root`` (train/val splits)."""
    for k, split in enumerate(("train", "val")):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(k, n, 2):
            img = np.full((H, W), 40 + i, np.uint8)
            cv2.imwrite(str(root / split / "images" / f"case{i}.png"), img)
            cv2.imwrite(str(root / split / "masks" / f"case{i}.png"), _gt(i))
    (root / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def ds_ws(tmp_path: Path) -> tuple[Any, Workspace, dict[str, str]]:
    root = make_dataset(tmp_path / "data")
    before = tree_digest(root)
    ds = open_dataset(root)
    assert ds.format_name == "paired-folders" and len(ds) == 6
    ws = Workspace.for_dataset(ds.root)
    yield ds, ws, before
    ws.close()
    assert tree_digest(root) == before, "the source dataset changed"


def _ids(ds: Any) -> list[str]:
    return sorted(s.id for s in ds)


def _run(req: ExportRequest, cancel: Any = None) -> list[Any]:
    return list(run_export(req, cancel=cancel))


def _exported(out: Path, sid: str) -> np.ndarray:
    return np.load(out / "masks" / f"{sid}.npy")


def test_latest_correction_applied_with_manifest_and_report(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws
    sid = _ids(ds)[0]
    fixed = _gt(0)
    fixed[0:2, :] = 1  # 32 px of lung added
    fixed[10:14, 10:12] = 0  # 8 px of heart removed
    ws.save_mask(sid, _gt(0), author="ann")  # v1, superseded
    ws.save_mask(sid, fixed, author="ann")  # v2
    ws.reviews.set(sid, ReviewStatus.CORRECTED, reviewer="ann")
    out = tmp_path / "out"
    events = _run(ExportRequest(ds, ws, "npy", out, options={"k": 1}))
    assert isinstance(events[0], ExportStarted) and events[0].total == 6
    progress = [e for e in events if isinstance(e, ExportProgress)]
    assert [p.done for p in progress] == list(range(1, 7)) and progress[-1].eta_s == 0
    assert all(p.path is None or p.path.is_relative_to(out) for p in progress)
    fin = events[-1]
    assert isinstance(fin, ExportFinished) and fin.out == out.resolve()
    assert fin.counts["images"] == 6 and fin.counts["correction"] == 1 and fin.counts["gt"] == 5
    np.testing.assert_array_equal(_exported(out, sid), fixed)
    other = _ids(ds)[1]
    np.testing.assert_array_equal(_exported(out, other), ds.load_gt(other))

    man = json.loads((out / "export.json").read_text())
    assert man["source"]["format"] == "paired-folders" and man["workspace"] == str(ws.folder)
    assert man["writer"] == {"name": "npy", "options": {"k": 1}}
    by_id = {e["sample_id"]: e for e in man["images"]}
    assert by_id[sid]["source"] == "correction" and by_id[sid]["version"] == 2 and by_id[sid]["used"] == "correction v2"
    assert by_id[sid]["review"] == "corrected" and by_id[sid]["reviewer"] == "ann"
    assert by_id[sid]["pixels"]["lung"] == int((fixed == 1).sum())
    assert by_id[other]["source"] == "gt" and by_id[other]["review"] == "unreviewed"
    # every file is listed with its checksum (the manifest and report themselves excepted)
    for rel, digest in man["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert set(man["files"]) == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {
        "export.json", "changes.csv"}
    with (out / "changes.csv").open() as f:
        rows = list(csv.DictReader(f))
    got = {(r["sample_id"], r["class"]): (int(r["added"]), int(r["removed"])) for r in rows}
    old = ds.load_gt(sid)
    exp_lung = (int(((fixed == 1) & (old != 1)).sum()), int(((old == 1) & (fixed != 1)).sum()))
    assert got[(sid, "lung")] == exp_lung and got[(sid, "heart")] == (0, 8)
    assert got[(sid, "background")] == (int(((fixed == 0) & (old != 0)).sum()), int(((old == 0) & (fixed != 0)).sum()))
    assert {r["sample_id"] for r in rows} == {sid}
    # nothing left beside the destination
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_filters_status_split_and_versions(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws
    a, b, c = _ids(ds)[:3]
    ws.save_mask(a, np.ones((H, W), np.uint8))  # v1
    ws.save_mask(a, np.full((H, W), 2, np.uint8))  # v2
    ws.reviews.set(a, ReviewStatus.CORRECTED, reviewer="r1")
    ws.reviews.set(b, ReviewStatus.ACCEPTED, reviewer="r2")
    ws.reviews.set(c, ReviewStatus.REJECTED)
    plan = plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", statuses=frozenset({"accepted", "corrected"})))
    assert sorted(it.sample.id for it in plan.items) == sorted([a, b])
    plan = plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", splits=frozenset({"val"})))
    assert {it.sample.split for it in plan.items} == {"val"} and len(plan.items) == 3
    with pytest.raises(UnknownKeyError, match="split"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", splits=frozenset({"nope"})))
    with pytest.raises(UnknownKeyError, match="status"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", statuses=frozenset({"done"})))
    with pytest.raises(DatasetExportError, match="No image matches"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", statuses=frozenset({"flagged"})))
    # versions: latest, original, a number (the newest version <= N)
    for version, want in (("latest", 2), ("original", None), (1, 1), ("1", 1), (5, 2)):
        out = tmp_path / f"v{version!r}"
        _run(ExportRequest(ds, ws, "npy", out, version=version))
        expect = ds.load_gt(a) if want is None else np.full((H, W), want, np.uint8)
        np.testing.assert_array_equal(_exported(out, a), expect)
    with pytest.raises(DatasetExportError, match="version"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "o1", version="newest"))


def test_predictions_modes(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws
    a, b = _ids(ds)[:2]
    human = np.ones((H, W), np.uint8)
    ws.save_mask(a, human, source=MaskSource.CORRECTION)  # v1
    ws.save_mask(a, np.full((H, W), 2, np.uint8), source=MaskSource.ACCEPTED_PREDICTION)  # v2
    ws.save_mask(b, np.full((H, W), 2, np.uint8), source=MaskSource.ACCEPTED_PREDICTION)  # v1
    _run(ExportRequest(ds, ws, "npy", tmp_path / "none"))
    np.testing.assert_array_equal(_exported(tmp_path / "none", a), human)  # the human version below
    np.testing.assert_array_equal(_exported(tmp_path / "none", b), ds.load_gt(b))  # the GT
    ev = _run(ExportRequest(ds, ws, "npy", tmp_path / "acc", predictions="accepted"))
    np.testing.assert_array_equal(_exported(tmp_path / "acc", a), np.full((H, W), 2, np.uint8))
    assert ev[-1].counts["accepted_prediction"] == 2
    man = json.loads((tmp_path / "acc" / "export.json").read_text())
    assert {e["sample_id"]: e["used"] for e in man["images"]}[b] == "accepted prediction v1"
    with pytest.raises(UnknownKeyError, match="predictions mode"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "x", predictions="all"))


def test_model_predictions_fill_images_without_gt(tmp_path: Path, npy_writer: NpyWriter) -> None:
    root = make_dataset(tmp_path / "data", n=4)
    (root / "train" / "masks" / "case0.png").unlink()  # an image without GT
    ds = open_dataset(root)
    sid = next(s.id for s in ds if not s.has_gt)
    with Workspace.for_dataset(ds.root) as ws:
        pred = np.full((H, W), 2, np.uint8)
        ws.predictions.save(sid, pred, checkpoint_id="/ckpt/a", model_stamp="s1")
        ws.predictions.save(_ids(ds)[-1], np.zeros((H, W), np.uint8), checkpoint_id="/ckpt/a", model_stamp="s1")
        _run(ExportRequest(ds, ws, "npy", tmp_path / "acc", predictions="accepted"))
        assert not (tmp_path / "acc" / "masks" / f"{sid}.npy").exists()  # no mask without the option
        ev = _run(ExportRequest(ds, ws, "npy", tmp_path / "un", predictions="unreviewed"))
        np.testing.assert_array_equal(_exported(tmp_path / "un", sid), pred)
        # a prediction never replaces a GT
        np.testing.assert_array_equal(_exported(tmp_path / "un", _ids(ds)[-1]), ds.load_gt(_ids(ds)[-1]))
        assert ev[-1].counts["model_prediction"] == 1
        man = json.loads((tmp_path / "un" / "export.json").read_text())
        e = {e["sample_id"]: e for e in man["images"]}[sid]
        assert e["source"] == "model_prediction" and e["checkpoint"] == "/ckpt/a" and e["model_stamp"] == "s1"
        rows = list(csv.DictReader((tmp_path / "un" / "changes.csv").open()))
        assert {(r["class"], r["added"], r["removed"]) for r in rows if r["sample_id"] == sid} == {
            ("heart", str(H * W), "0"), ("background", "0", str(H * W))}


def test_classes_rename_and_merge(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws
    sid = _ids(ds)[0]
    gt = ds.load_gt(sid)
    # keep lung only: heart becomes background, ids compacted
    _run(ExportRequest(ds, ws, "npy", tmp_path / "k", classes=("lung",)))
    schema = ClassSchema.from_dict(json.loads((tmp_path / "k" / "schema.json").read_text())["schema"])
    assert schema.names == ("background", "lung")
    np.testing.assert_array_equal(_exported(tmp_path / "k", sid), (gt == 1).astype(np.uint8))
    # rename only: ids kept
    _run(ExportRequest(ds, ws, "npy", tmp_path / "r", rename={"lung": "lungs"}))
    schema = ClassSchema.from_dict(json.loads((tmp_path / "r" / "schema.json").read_text())["schema"])
    assert schema.names == ("background", "lungs", "heart") and schema.ids == (0, 1, 2)
    np.testing.assert_array_equal(_exported(tmp_path / "r", sid), gt)
    # merge: equal new names become one class
    _run(ExportRequest(ds, ws, "npy", tmp_path / "m", rename={"lung": "organ", "heart": "organ"}))
    schema = ClassSchema.from_dict(json.loads((tmp_path / "m" / "schema.json").read_text())["schema"])
    assert schema.names == ("background", "organ")
    np.testing.assert_array_equal(_exported(tmp_path / "m", sid), (gt > 0).astype(np.uint8))
    man = json.loads((tmp_path / "m" / "export.json").read_text())
    assert man["class_map"] == {"background": "background", "lung": "organ", "heart": "organ"}
    with pytest.raises(UnknownKeyError, match="liver"):
        plan_export(ExportRequest(ds, ws, "npy", tmp_path / "x", classes=("liver",)))


def test_class_mapping_multilabel_and_without_background() -> None:
    ml = ClassSchema.from_names(["a", "b", "c"], multilabel=True)
    m = np.array([[0b001, 0b011, 0b110, 0b100]], np.uint64)
    cm = class_mapping(ml, classes=("a", "c"))
    assert cm.schema.names == ("a", "c") and cm.schema.multilabel
    np.testing.assert_array_equal(cm.apply(m), np.array([[0b01, 0b01, 0b10, 0b10]], np.uint64))
    cm = class_mapping(ml, rename={"b": "a"})  # merge: bits OR together
    np.testing.assert_array_equal(cm.apply(m), np.array([[0b01, 0b01, 0b11, 0b10]], np.uint64))
    # overlapping classes stay overlapping in the change report
    assert change_counts(np.zeros_like(m), m, ml) == {"a": (2, 0), "b": (2, 0), "c": (2, 0)}
    camvid = ClassSchema.from_names(["Sky", "Road", "Car"], ignore_index=255)
    cm = class_mapping(camvid, classes=("Road",))
    np.testing.assert_array_equal(cm.apply(np.array([[0, 1, 2, 255]], np.uint8)), [[255, 0, 255, 255]])
    with pytest.raises(DatasetExportError, match="background"):
        class_mapping(ClassSchema.from_names(["Sky", "Road"]), classes=("Road",))


def test_multilabel_into_a_semantic_writer_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(writing.WRITER_MODULES, "flat", "tests:unused")
    monkeypatch.setitem(writing._loaded, "flat", NpyWriter(multilabel=False))
    root = tmp_path / "ml"
    (root / "images").mkdir(parents=True)
    for cls in ("a", "b"):
        (root / cls).mkdir()
    cv2.imwrite(str(root / "images" / "x.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(root / "a" / "x.png"), np.full((8, 8), 255, np.uint8))
    cv2.imwrite(str(root / "b" / "x.png"), np.full((8, 8), 255, np.uint8))
    ds = open_dataset(root, format="class-folders", multilabel=True)
    with pytest.raises(DatasetExportError, match="multi-label"):
        plan_export(ExportRequest(ds, None, "flat", tmp_path / "out"))


def test_destination_refusals(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(DatasetExportError, match="not empty"):
        plan_export(ExportRequest(ds, ws, "npy", busy))
    with pytest.raises(DatasetExportError, match="into the dataset"):
        plan_export(ExportRequest(ds, ws, "npy", ds.root / "export"))
    with pytest.raises(DatasetExportError, match="into the dataset"):
        plan_export(ExportRequest(ds, ws, "npy", ds.root))
    with pytest.raises(DatasetExportError, match="into the workspace"):
        plan_export(ExportRequest(ds, ws, "npy", ws.folder / "exports"))
    with pytest.raises(DatasetExportError, match="is a file"):
        plan_export(ExportRequest(ds, ws, "npy", busy / "keep.txt"))
    with pytest.raises(UnknownKeyError, match="paired-folders"):
        plan_export(ExportRequest(ds, ws, "no-such-format", tmp_path / "o"))
    assert (busy / "keep.txt").read_text() == "x"
    # an existing empty folder is fine, and is where the export lands
    empty = tmp_path / "empty"
    empty.mkdir()
    assert isinstance(_run(ExportRequest(ds, ws, "npy", empty))[-1], ExportFinished)
    assert (empty / "export.json").is_file()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_cancel_mid_way_leaves_nothing(ds_ws: Any, npy_writer: NpyWriter, tmp_path: Path) -> None:
    ds, ws, _ = ds_ws

    class Token:
        cancelled = False

    token = Token()
    out = tmp_path / "exports" / "cancelled"
    seen = []
    for ev in run_export(ExportRequest(ds, ws, "npy", out), cancel=token):
        seen.append(ev)
        if isinstance(ev, ExportProgress) and ev.done == 3:
            token.cancelled = True
    assert isinstance(seen[-1], ExportCancelled) and seen[-1].done == 3
    assert not out.exists() and _leftovers(out.parent) == []
    # into an existing empty folder: it stays, empty
    out.mkdir()
    token.cancelled = False
    gen = run_export(ExportRequest(ds, ws, "npy", out), cancel=token)
    next(gen), next(gen)
    token.cancelled = True
    assert isinstance(list(gen)[-1], ExportCancelled)
    assert list(out.iterdir()) == [] and _leftovers(out.parent) == []


def test_consumer_abandoning_or_a_failing_writer_leaves_nothing(ds_ws: Any, npy_writer: NpyWriter,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    ds, ws, _ = ds_ws
    out = tmp_path / "abandoned"
    gen = run_export(ExportRequest(ds, ws, "npy", out))
    next(gen), next(gen), next(gen)
    assert _leftovers(tmp_path) != []  # the temp folder while it runs
    gen.close()
    assert not out.exists() and _leftovers(tmp_path) == []
    npy_writer.fail_at = 2
    with pytest.raises(SegstudioError, match="test failure"):
        _run(ExportRequest(ds, ws, "npy", out))
    assert not out.exists() and _leftovers(tmp_path) == []


def test_without_workspace_exports_the_gt(tmp_path: Path, npy_writer: NpyWriter) -> None:
    root = make_dataset(tmp_path / "data", n=2)
    ds = open_dataset(root)
    ev = _run(ExportRequest(ds, None, "npy", tmp_path / "out"))
    assert ev[-1].counts == {"images": 2, "gt": 2, "changed": 0, "files": 5}
    assert (tmp_path / "out" / "changes.csv").read_text() == "sample_id,class,added,removed,source\n"
