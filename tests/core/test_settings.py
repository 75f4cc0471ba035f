from __future__ import annotations

import json
from pathlib import Path

import pytest

from segstudio.core.atomic import atomic_write_text
from segstudio.core.settings import (
    AppSettings,
    OverlaySettings,
    load_settings,
    save_settings,
)


def test_round_trip_and_recent_list(tmp_path: Path) -> None:
    p = tmp_path / "settings.json"
    s = AppSettings(overlay=OverlaySettings(opacity=0.3, contour_only=True), reviewer="dr x")
    for i in range(12):
        s = s.with_recent(f"/data/{i}")
    save_settings(s, p)
    back = load_settings(p)
    assert back == s
    assert back.recent_datasets[0] == "/data/11" and len(back.recent_datasets) == 10
    assert json.loads(p.read_text())["version"] == 1


def test_unknown_keys_from_newer_versions_survive_a_save(tmp_path: Path) -> None:
    p = tmp_path / "settings.json"
    p.write_text(json.dumps({"version": 1, "future_thing": {"a": 1}, "reviewer": "me"}))
    s = load_settings(p)
    assert s.reviewer == "me"
    save_settings(s, p)
    assert json.loads(p.read_text())["future_thing"] == {"a": 1}


def test_corrupt_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    p = tmp_path / "settings.json"
    p.write_text("{not json")
    assert load_settings(p) == AppSettings()
    assert (tmp_path / "settings.corrupt.json").read_text() == "{not json"


def test_opacity_is_clamped(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"overlay": {"opacity": 7}}))
    assert load_settings(p).overlay.opacity == 1.0


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f.json"
    p.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.json"]
