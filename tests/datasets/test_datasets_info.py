"""`segstudio info` (text, --json, --stats, options, errors) and the ring-1 scan generators behind it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.commands import info
from segstudio.datasets.registry import open_dataset
from segstudio.datasets.stats import ClassStats, ScanProgress, SizeSummary, scan_sizes, scan_stats


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    info.add_arguments(p)
    rc = info.run(p.parse_args(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_info_json_on_bundled_sample(sample_dataset_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run([str(sample_dataset_path), "--json", "--stats"], capsys)
    assert rc == 0
    r = json.loads(out)
    assert r["format"] == "class-folders" and r["multilabel"] is False and r["samples"] == 8
    assert [c["name"] for c in r["classes"]] == ["background", "left lung", "right lung"]
    assert r["splits"] == {"unassigned": 8} and r["image_size"] == {"min": [512, 512], "max": [512, 512], "distinct": 1}
    assert r["problems"] == []
    # Frequencies equal an independent count over the source masks.
    left = sum(int((np.asarray(Image.open(f)) > 127).sum()) for f in (sample_dataset_path / "leftMask").glob("*.png"))
    assert r["stats"]["class_pixels"]["1"] == left
    assert abs(sum(r["stats"]["frequencies"].values()) - 1.0) < 1e-4


def test_info_text_lists_problems_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for d in ("images", "a", "b"):
        (tmp_path / d).mkdir()
    for k in range(2):
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "images" / f"x{k}.png")
        Image.fromarray(np.full((5, 5), 255, np.uint8)).save(tmp_path / "a" / f"x{k}.png")
        Image.fromarray(np.full((5, 5), 255, np.uint8)).save(tmp_path / "b" / f"x{k}.png")
    (tmp_path / "images" / "x1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rc, out, _ = _run([str(tmp_path), "--stats"], capsys)
    assert rc == 0
    assert "Format:  class-folders" in out and "overlap: 'b' overlaps earlier classes on 25 px" in out
    assert "corrupt:" in out and "x1.png" in out  # the broken image is listed, the rest still scanned
    rc, out, _ = _run([str(tmp_path), "--json", "--stats", "-o", "multilabel=true"], capsys)
    r = json.loads(out)
    assert r["multilabel"] is True and r["options"]["multilabel"] is True
    assert not [p for p in r["problems"] if p["kind"] == "overlap"]


def test_info_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # user errors exit 2 (docs/cli.md)
    rc, _, err = _run([str(tmp_path / "nope")], capsys)
    assert rc == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    rc, out, _ = _run([str(tmp_path / "empty"), "--json"], capsys)
    assert rc == 2 and "No known dataset format" in json.loads(out)["error"]
    rc, _, err = _run([str(tmp_path), "--format", "yolo"], capsys)
    assert rc == 2 and "Valid formats" in err
    rc, _, err = _run([str(tmp_path), "-o", "novalue"], capsys)
    assert rc == 2 and "KEY=VALUE" in err


def test_parse_option_types() -> None:
    assert info.parse_option("multilabel=true") == ("multilabel", True)
    assert info.parse_option("max_pixels=100") == ("max_pixels", 100)
    assert info.parse_option("classes=bg,lesion") == ("classes", ["bg", "lesion"])
    assert info.parse_option("overlap=smallest") == ("overlap", "smallest")


def test_scans_yield_progress_then_result_and_honour_cancel(sample_dataset_path: Path) -> None:
    ds = open_dataset(sample_dataset_path)
    events = list(scan_sizes(ds))
    assert [e.done for e in events if isinstance(e, ScanProgress)] == list(range(1, 9))
    assert isinstance(events[-1], SizeSummary) and events[-1].distinct == 1
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    events = list(scan_stats(ds, cancel=cancel))
    assert sum(isinstance(e, ScanProgress) for e in events) == 3
    assert isinstance(events[-1], ClassStats) and events[-1].masks_read == 3


def test_progress_bar_renders(capsys: pytest.CaptureFixture[str]) -> None:
    from segstudio.commands.progress import Progress

    with Progress("masks", mode="bar") as bar:  # the adapter info uses (a tqdm bar)
        bar.update(1, 4)
        bar.update(4, 4)
    captured = capsys.readouterr()
    assert "masks" in captured.err and "4/4" in captured.err and captured.out == ""


def test_bomb_image_in_a_dataset_is_flagged_by_info_and_refused_on_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import struct
    import zlib

    from segstudio.datasets.io import ImageTooLargeError

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    def giant_png(path: Path) -> None:  # a tiny file whose header claims 100000 x 100000 pixels
        ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "ok.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "ok.png")
    giant_png(tmp_path / "images" / "bomb.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "bomb.png")
    rc, out, _ = _run([str(tmp_path), "--json"], capsys)
    r = json.loads(out)
    (p,) = [p for p in r["problems"] if p["kind"] == "too_large"]
    assert p["sample_id"] == "images/bomb.png" and "100000x100000" in p["message"]
    ds = open_dataset(tmp_path)
    with pytest.raises(ImageTooLargeError):
        ds.load_image("images/bomb.png")
    assert ds.load_image("images/ok.png").shape == (4, 4)
