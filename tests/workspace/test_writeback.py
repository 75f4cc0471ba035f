"""Write-back into the source dataset with a backup, and restore (issue 14), on copies in tmp_path."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.datasets.registry import open_dataset
from segstudio.datasets.writing import DatasetExportError
from segstudio.workspace import MaskSource, ReviewStatus, Workspace
from segstudio.workspace.writeback import (
    WritebackCancelled,
    WritebackFinished,
    WritebackProgress,
    list_backups,
    plan_writeback,
    restore_backup,
    run_writeback,
)

H = W = 16


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _gt(i: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:8, 2 + i : 8 + i] = 1
    m[10:14, 10:14] = 2
    return m


def make_paired(root: Path, *, n: int = 4, kind: str = "index") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"c{i}.png"), np.full((H, W), 50 + i, np.uint8))
        m = _gt(i)
        if kind == "binary":
            cv2.imwrite(str(root / "masks" / f"c{i}.png"), (m > 0).astype(np.uint8) * 255)
        elif kind == "palette":
            im = Image.frombytes("P", (W, H), m.tobytes())
            im.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (3 * 253))
            im.save(root / "masks" / f"c{i}.png")
        else:
            cv2.imwrite(str(root / "masks" / f"c{i}.png"), m)
    if kind != "binary":
        (root / "labels.txt").write_text("background\nlung\nheart\n")
    return root


def _write_back(ds: Any, ws: Workspace, **kw: Any) -> tuple[Any, list[Any]]:
    plan = plan_writeback(ds, ws, **kw)
    return plan, list(run_writeback(plan))


@pytest.mark.parametrize("kind", ["index", "palette", "binary"])
def test_paired_write_back_and_restore_round_trip(tmp_path: Path, kind: str) -> None:
    root = make_paired(tmp_path / "data", kind=kind)
    before = digest(root)
    ds = open_dataset(root)
    assert ds.format_name == "paired-folders"
    ids = sorted(s.id for s in ds)
    new = ds.load_gt(ids[1]).copy()
    new[0:2, :] = 1
    with Workspace.for_dataset(ds.root) as ws:
        ws.save_mask(ids[1], new, author="ann")
        ws.reviews.set(ids[1], ReviewStatus.CORRECTED, reviewer="ann")
        ws.save_mask(ids[2], ds.load_gt(ids[2]))  # saved but equal to the GT: nothing to write
        plan, events = _write_back(ds, ws)
        assert plan.paths == [root / "masks" / "c1.png"] and plan.skipped == ()
        assert isinstance(events[-1], WritebackFinished) and events[-1].files == 1
        assert [e.done for e in events if isinstance(e, WritebackProgress)] == [1]
        after = digest(root)
        assert {k for k in before if before[k] != after[k]} == {"masks/c1.png"}  # the rest byte-identical
        reopened = open_dataset(root)
        np.testing.assert_array_equal(reopened.load_gt(ids[1]), new)
        raw = Image.open(root / "masks" / "c1.png")
        assert raw.mode == Image.open(tmp_path / "data" / "masks" / "c0.png").mode  # written the way it was
        if kind == "binary":
            assert set(np.unique(np.asarray(raw))) <= {0, 255}
        backup = events[-1].backup
        assert backup.parent == ws.folder / "backups"
        man = json.loads((backup / "backup.json").read_text())
        assert man["state"] == "applied" and man["files"][0]["sample_id"] == ids[1]
        assert hashlib.sha256((backup / man["files"][0]["backup"]).read_bytes()).hexdigest() == before["masks/c1.png"]
        assert [b.path for b in list_backups(ws.folder)] == [backup]
        res = restore_backup(backup)
        assert res.restored == (root / "masks" / "c1.png",) and res.skipped == ()
        assert digest(root) == before
        assert list_backups(ws.folder)[0].state == "restored"


def test_class_folders_only_changed_class_file(tmp_path: Path) -> None:
    root = tmp_path / "cf"
    (root / "images").mkdir(parents=True)
    for cls in ("lung", "heart"):
        (root / cls).mkdir()
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"x{i}.png"), np.zeros((H, W), np.uint8))
        cv2.imwrite(str(root / "lung" / f"x{i}.png"), (_gt(i) == 1).astype(np.uint8) * 255)
        cv2.imwrite(str(root / "heart" / f"x{i}.png"), (_gt(i) == 2).astype(np.uint8) * 255)
    before = digest(root)
    ds = open_dataset(root, format="class-folders")
    sid = "images/x0.png"
    new = ds.load_gt(sid).copy()
    lung = ds.schema.names.index("lung")
    new[0, :] = lung
    with Workspace.for_dataset(ds.root) as ws:
        ws.save_mask(sid, new)
        plan, events = _write_back(ds, ws)
        assert plan.paths == [root / "lung" / "x0.png"]
        after = digest(root)
        assert {k for k in before if before[k] != after[k]} == {"lung/x0.png"}
        np.testing.assert_array_equal(open_dataset(root, format="class-folders").load_gt(sid), new)
        restore_backup(events[-1].backup)
        assert digest(root) == before


def test_ph2_copy_write_back(tmp_path: Path, ph2: Path) -> None:
    cases = ph2 / "PH2 Dataset images"
    dst = tmp_path / "ph2" / "PH2 Dataset images"
    for name in sorted(p.name for p in cases.iterdir())[:2]:
        shutil.copytree(cases / name, dst / name)
    root = tmp_path / "ph2"
    before = digest(root)
    ds = open_dataset(root)
    assert ds.format_name == "ph2" and len(ds) == 2
    sid = ds.samples[0].id
    gt = ds.load_gt(sid)
    new = gt.copy()
    new[: gt.shape[0] // 4, :] = 1
    with Workspace.for_dataset(ds.root) as ws:
        ws.save_mask(sid, new, source=MaskSource.ACCEPTED_PREDICTION)
        plan = plan_writeback(ds, ws, predictions="none")
        assert plan.files == ()  # accepted predictions only when asked (the default)
        plan, events = _write_back(ds, ws)
        assert len(plan.files) == 1 and plan.paths[0].suffix == ".bmp"
        np.testing.assert_array_equal(open_dataset(root).load_gt(sid), new)
        changed = {k for k, v in digest(root).items() if before[k] != v}
        assert len(changed) == 1 and changed.pop().endswith("_lesion.bmp")
        restore_backup(events[-1].backup)
        assert digest(root) == before


def test_refused_for_shared_annotation_formats(facade_coco: Path) -> None:
    ds = open_dataset(facade_coco)
    with Workspace.for_dataset(ds.root) as ws, pytest.raises(DatasetExportError, match="Export instead"):
        plan_writeback(ds, ws)


def _corrected(tmp_path: Path) -> tuple[Path, Any, Workspace, dict[str, str]]:
    root = make_paired(tmp_path / "data")
    before = digest(root)
    ds = open_dataset(root)
    ws = Workspace.for_dataset(ds.root)
    for s in ds:
        m = ds.load_gt(s).copy()
        m[0, :] = 2
        ws.save_mask(s.id, m)
    return root, ds, ws, before


def test_cancel_or_failure_mid_way_puts_everything_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, ds, ws, before = _corrected(tmp_path)

    class Token:
        cancelled = False

    token = Token()
    plan = plan_writeback(ds, ws)
    assert len(plan.files) == 4
    events = []
    for ev in run_writeback(plan, cancel=token):
        events.append(ev)
        if isinstance(ev, WritebackProgress) and ev.done == 2:
            assert digest(root) != before
            token.cancelled = True
    assert isinstance(events[-1], WritebackCancelled) and events[-1].rolled_back == 2
    assert digest(root) == before
    assert json.loads((events[-1].backup / "backup.json").read_text())["state"] == "rolled_back"
    # a failing write part-way: the files already replaced go back
    import segstudio.workspace.writeback as wb

    real = wb.atomic_write_bytes
    calls = {"n": 0}

    def flaky(path: Any, data: Any) -> Any:
        if Path(path).parent == root / "masks":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(wb, "atomic_write_bytes", flaky)
    with pytest.raises(OSError):
        list(run_writeback(plan))
    monkeypatch.setattr(wb, "atomic_write_bytes", real)
    assert digest(root) == before
    ws.close()


def test_changed_since_plan_and_restore_of_a_changed_file(tmp_path: Path) -> None:
    root, ds, ws, before = _corrected(tmp_path)
    plan = plan_writeback(ds, ws)
    target = root / "masks" / "c0.png"
    original = target.read_bytes()
    target.write_bytes(original + b"")  # same bytes: fine
    cv2.imwrite(str(target), np.zeros((H, W), np.uint8))  # someone edits it after the plan
    with pytest.raises(DatasetExportError, match="changed since"):
        list(run_writeback(plan))
    target.write_bytes(original)
    events = list(run_writeback(plan))
    backup = events[-1].backup
    cv2.imwrite(str(target), np.ones((H, W), np.uint8))  # edited after the write-back
    res = restore_backup(backup)
    assert [p for p, _ in res.skipped] == [target.resolve()] and len(res.restored) == 3
    res = restore_backup(backup, force=True)
    assert res.restored == (target.resolve(),) and len(res.unchanged) == 3
    assert digest(root) == before
    ws.close()


def test_statuses_filter_and_image_without_gt(tmp_path: Path) -> None:
    root = make_paired(tmp_path / "data")
    (root / "masks" / "c3.png").unlink()
    ds = open_dataset(root)
    with Workspace.for_dataset(ds.root) as ws:
        for s in ds:
            ws.save_mask(s.id, np.full((H, W), 2, np.uint8))
        ws.reviews.set("images/c0.png", ReviewStatus.ACCEPTED)
        plan = plan_writeback(ds, ws, statuses=frozenset({"accepted"}))
        assert [f.sample_id for f in plan.files] == ["images/c0.png"]
        plan = plan_writeback(ds, ws)
        assert len(plan.files) == 3 and [sid for sid, _ in plan.skipped] == ["images/c3.png"]
        assert "export instead" in plan.skipped[0][1]
