"""``segstudio export`` and ``segstudio restore-backup`` end to end, with the real paired-folders and COCO writers:
what is exported reads back with the correction, the source stays byte-identical, user errors exit 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.cli import main
from segstudio.datasets.registry import open_dataset
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.writeback import plan_writeback, run_writeback

H = W = 24


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def corrected(tmp_path: Path) -> tuple[Path, str, np.ndarray]:
    """A three-class paired dataset with one correction (closed workspace, as after the app)."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        cv2.imwrite(str(root / "images" / f"c{i}.png"), np.full((H, W, 3), 60 + i, np.uint8))
        m = np.zeros((H, W), np.uint8)
        m[3:10, 3:10] = 1
        m[14:20, 12 + i : 18 + i] = 2
        cv2.imwrite(str(root / "masks" / f"c{i}.png"), m)
    (root / "labels.txt").write_text("background\nlung\nheart\n")
    ds = open_dataset(root)
    sid = "images/c1.png"
    fixed = ds.load_gt(sid).copy()
    fixed[0:3, :] = 1
    fixed[14:20, :] = 0
    with Workspace.for_dataset(ds.root) as ws:
        ws.save_mask(sid, fixed, author="ann")
        ws.reviews.set(sid, ReviewStatus.CORRECTED, reviewer="ann")
        ws.reviews.set("images/c2.png", ReviewStatus.ACCEPTED, reviewer="bob")
    return root, sid, fixed


@pytest.mark.parametrize(("fmt", "expect"), [("paired-folders", "paired-folders"), ("coco", "coco")])
def test_export_reads_back_with_the_correction(corrected: tuple[Path, str, np.ndarray], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], fmt: str, expect: str) -> None:  # fmt: skip
    root, sid, fixed = corrected
    before = digest(root)
    out = tmp_path / f"out-{fmt}"
    rc = main(["export", str(root), "--to", fmt, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "exported 4 images" in text and "correction 1" in text and "1 changed" in text
    back = open_dataset(out)
    assert back.format_name == expect and len(back) == 4
    assert back.schema.names == ("background", "lung", "heart")
    by_name = {Path(s.id).name: s for s in back}
    np.testing.assert_array_equal(back.load_gt(by_name["c1.png"]), fixed)
    src = open_dataset(root)
    np.testing.assert_array_equal(back.load_gt(by_name["c0.png"]), src.load_gt("images/c0.png"))
    man = json.loads((out / "export.json").read_text())
    assert {e["sample_id"]: e["used"] for e in man["images"]}[sid] == "correction v1"
    assert digest(root) == before  # the source GT files are byte-identical after the export


def test_export_filters_and_rename(corrected: tuple[Path, str, np.ndarray], tmp_path: Path) -> None:
    root, sid, fixed = corrected
    out = tmp_path / "o"
    rc = main(["export", str(root), "--to", "paired-folders", "--out", str(out), "--status", "accepted,corrected",
               "--rename", "lung=organ", "--rename", "heart=organ", "-o", "encoding=rle"])
    assert rc == 0
    back = open_dataset(out)
    assert len(back) == 2 and back.schema.names == ("background", "organ")
    s = next(s for s in back if s.id.endswith("c1.png"))
    np.testing.assert_array_equal(back.load_gt(s), (fixed > 0).astype(np.uint8))
    out2 = tmp_path / "orig"
    assert main(["export", str(root), "--to", "paired-folders", "--out", str(out2), "--version", "original"]) == 0
    s = next(s for s in open_dataset(out2) if s.id.endswith("c1.png"))
    np.testing.assert_array_equal(open_dataset(out2).load_gt(s), open_dataset(root).load_gt(sid))


def test_export_user_errors_exit_2(corrected: tuple[Path, str, np.ndarray], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root, _, _ = corrected
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert main(["export", str(root), "--to", "paired-folders", "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(root), "--to", "paired-folders", "--out", str(root / "exp")]) == 2
    assert "into the dataset" in capsys.readouterr().err
    assert main(["export", str(root), "--to", "nope", "--out", str(tmp_path / "n")]) == 2
    assert "paired-folders" in capsys.readouterr().err
    assert main(["export", str(root), "--to", "paired-folders", "--out", str(tmp_path / "n"), "--classes", "x"]) == 2
    assert main(["export", str(root), "--to", "paired-folders", "--out", str(tmp_path / "n"), "--rename", "x"]) == 2
    assert not (tmp_path / "n").exists() and not (root / "exp").exists()


def test_restore_backup_command(corrected: tuple[Path, str, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    root, _, _ = corrected
    before = digest(root)
    ds = open_dataset(root)
    with Workspace.for_dataset(ds.root) as ws:
        events = list(run_writeback(plan_writeback(ds, ws)))
        folder = ws.folder
    assert digest(root) != before
    assert main(["restore-backup", str(root), "--list"]) == 0
    assert events[-1].backup.name in capsys.readouterr().out
    assert main(["restore-backup", str(folder)]) == 0
    assert "restored 1 files" in capsys.readouterr().out
    assert digest(root) == before
    assert main(["restore-backup", str(root / "nowhere-near")]) == 2
