"""core.atomic: create-only writes, the stale-temp sweep and deferred durability for staged batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segstudio.core import atomic
from segstudio.core.atomic import (
    FileExistsSegstudioError,
    atomic_create_bytes,
    atomic_write_bytes,
    deferred_durability,
    sweep_stale_temps,
    sync_tree,
)


def test_create_only_never_replaces(tmp_path: Path) -> None:
    atomic_create_bytes(tmp_path / "v0001.png", b"first")
    with pytest.raises(FileExistsSegstudioError):
        atomic_create_bytes(tmp_path / "v0001.png", b"second")
    assert (tmp_path / "v0001.png").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["v0001.png"]  # no temp file left


def test_sweep_removes_temps_of_dead_writers_only(tmp_path: Path) -> None:
    dead = tmp_path / ".x.png.999999999.deadbeef.tmp"
    live = tmp_path / f".y.png.{os.getpid()}.cafebabe.tmp"
    dead.write_bytes(b"torn")
    live.write_bytes(b"being written")
    assert sweep_stale_temps(tmp_path) == 1
    assert not dead.exists() and live.exists()


def test_deferred_durability_skips_per_file_fsyncs_but_stays_atomic(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: calls.append(fd) or real(fd))
    atomic_write_bytes(tmp_path / "a", b"1")
    per_file = len(calls)
    assert per_file >= 2  # the file and its folder
    calls.clear()
    with deferred_durability():
        for i in range(5):
            atomic_write_bytes(tmp_path / f"b{i}", bytes([i]) * 10)
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b0", "b1", "b2", "b3", "b4"]  # whole, no temps
    atomic_write_bytes(tmp_path / "c", b"3")  # outside the block: durable again
    assert len(calls) == per_file
    sync_tree(tmp_path)


def test_atomic_write_json_is_strict_json(tmp_path: Path) -> None:
    import json
    import math

    from segstudio.core.atomic import atomic_write_json

    doc = {"nan": math.nan, "inf": [1.0, math.inf], "path": tmp_path, 3: ("a", -math.inf), "ok": 0.5}
    out = atomic_write_json(tmp_path / "doc.json", doc)
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": [1.0, None], "path": str(tmp_path), "3": ["a", None], "ok": 0.5}
