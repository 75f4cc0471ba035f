"""The preferences' fields of AppSettings: round trip, old files, damaged values, palettes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from segstudio.core.palettes import OKABE_ITO, recolour, uses_default_colours
from segstudio.core.settings import (
    AppSettings,
    ColourSettings,
    ComputeSettings,
    OverlaySettings,
    WorkspaceLocationSettings,
    dataset_key,
    load_settings,
    save_settings,
)
from segstudio.core.types import ClassSchema


def _full() -> AppSettings:
    return AppSettings(
        overlay=OverlaySettings(opacity=0.7, contour_only=True),
        reviewer="Dr Ada",
        autosave_s=45,
        colours=ColourSettings(palette="tol_bright", by_class={"lung": (1, 2, 3)},
                               by_dataset={dataset_key("/data/mc"): {"left": (250, 0, 10)}}),
        compute=ComputeSettings(device="cuda:1", threads=6),
        workspace=WorkspaceLocationSettings(location="folder", folder="/big/disk"),
        shortcuts={"save": ("Ctrl+Shift+S",), "next": ("N", "Space")},
        show_tour=False,
    ).with_recent("/data/mc")


def test_every_new_field_round_trips(tmp_path: Path) -> None:
    p = tmp_path / "settings.json"
    s = _full()
    save_settings(s, p)
    assert load_settings(p) == s
    raw = json.loads(p.read_text())
    assert raw["colours"]["by_class"] == {"lung": [1, 2, 3]} and raw["shortcuts"]["save"] == ["Ctrl+Shift+S"]


def test_a_version_1_file_from_before_the_preferences_loads_with_defaults(tmp_path: Path) -> None:
    p = tmp_path / "settings.json"
    p.write_text(json.dumps({"version": 1, "overlay": {"opacity": 0.3, "contour_only": False},
                             "recent_datasets": ["/a"], "last_dataset": "/a", "reviewer": "me", "max_recent": 10}))
    s = load_settings(p)
    assert (s.reviewer, s.overlay.opacity, s.recent_datasets) == ("me", 0.3, ("/a",))
    assert s.autosave_s == 10 and s.colours == ColourSettings() and s.compute == ComputeSettings()
    assert s.workspace.home() is None and s.shortcuts == {} and s.show_tour


def test_damaged_values_fall_back_one_by_one_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "settings.json"
    p.write_text(json.dumps({"version": 7, "reviewer": "kept", "autosave_s": "soon", "show_tour": "maybe",
                             "colours": {"palette": "tol_muted", "by_class": {"x": "red"}}, "compute": [1],
                             "workspace": {"location": "the moon"}, "shortcuts": 3}))
    with caplog.at_level(logging.WARNING):
        s = load_settings(p)
    assert s.reviewer == "kept" and s.autosave_s == 10 and s.show_tour
    assert s.colours.palette == "tol_muted" and s.colours.by_class == {}
    assert s.compute == ComputeSettings() and s.workspace == WorkspaceLocationSettings() and s.shortcuts == {}
    assert "newer" in caplog.text and p.exists()  # not set aside: it was readable JSON


def test_workspace_home_choices(tmp_path: Path) -> None:
    assert WorkspaceLocationSettings().home() is None
    assert WorkspaceLocationSettings(location="user_data").home().name == "workspaces"  # type: ignore[union-attr]
    assert WorkspaceLocationSettings(location="folder", folder=str(tmp_path)).home() == tmp_path


def test_overrides_for_a_dataset_win_over_class_names() -> None:
    c = ColourSettings(by_class={"a": (1, 1, 1), "b": (2, 2, 2)}, by_dataset={dataset_key("/d"): {"a": (9, 9, 9)}})
    assert c.overrides_for("/d") == {"a": (9, 9, 9), "b": (2, 2, 2)}
    assert c.overrides_for(None) == {"a": (1, 1, 1), "b": (2, 2, 2)}


def test_palette_replaces_default_colours_only() -> None:
    plain = ClassSchema.from_names(["background", "left", "right"])
    assert uses_default_colours(plain)
    out = recolour(plain, palette="okabe_ito")
    assert [c.colour for c in out] == [(0, 0, 0), OKABE_ITO[0], OKABE_ITO[1]]
    own = ClassSchema.from_names(["bg", "x"], colours=[(0, 0, 0), (10, 20, 30)])
    assert not uses_default_colours(own)
    assert recolour(own).by_id(1).colour == (10, 20, 30)
    assert recolour(own, overrides={"x": (5, 5, 5)}).by_id(1).colour == (5, 5, 5)
