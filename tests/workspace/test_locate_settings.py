"""Where a workspace lives, and its workspace.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from segstudio.workspace import Workspace, WorkspaceSettings, is_writable_dir, workspace_dir_for
from segstudio.workspace.settings import load_workspace_settings, save_workspace_settings


def test_writable_dataset_gets_a_sibling_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME", raising=False)
    ds = tmp_path / "data"
    ds.mkdir()
    assert workspace_dir_for(ds, data_dir=tmp_path / "user") == (tmp_path / "data.segstudio").resolve()


def test_read_only_dataset_folder_puts_workspace_in_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME", raising=False)
    parent = tmp_path / "share"
    ds = parent / "data"
    ds.mkdir(parents=True)
    user = tmp_path / "user"
    parent.chmod(0o555)
    try:
        assert not is_writable_dir(parent)
        with Workspace.for_dataset(ds, data_dir=user) as ws:
            assert ws.folder.is_relative_to(user.resolve())
            ws.reviews.set("x.png", "accepted")
        assert sorted(p.name for p in parent.iterdir()) == ["data"]  # nothing written beside the dataset
        assert not any(ds.iterdir())
        other = tmp_path / "elsewhere" / "data"
        other.mkdir(parents=True)
        (tmp_path / "elsewhere").chmod(0o555)
        # same folder name, different dataset: a different workspace
        assert workspace_dir_for(other, data_dir=user) != workspace_dir_for(ds, data_dir=user)
        with Workspace.for_dataset(ds, data_dir=user) as again:
            assert again.reviews.get("x.png").status == "accepted"
    finally:
        parent.chmod(0o755)
        if (tmp_path / "elsewhere").exists():
            (tmp_path / "elsewhere").chmod(0o755)


def test_workspace_home_overrides_the_sibling_and_user_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SEGSTUDIO_WORKSPACE_HOME", str(home))
    a, b = tmp_path / "one" / "data", tmp_path / "two" / "data"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    wa, wb = workspace_dir_for(a, data_dir=tmp_path / "user"), workspace_dir_for(b, data_dir=tmp_path / "user")
    assert wa.parent == wb.parent == home.resolve() and wa != wb  # same folder name, different datasets
    with Workspace.for_dataset(a) as ws:
        ws.reviews.set("x.png", "accepted")
    assert sorted(p.name for p in a.parent.iterdir()) == ["data"]  # nothing beside the dataset


def test_shared_real_dataset_workspace_goes_to_user_dir(montgomery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME", raising=False)
    if is_writable_dir(montgomery.parent):
        pytest.skip("the shared datasets are writable here")
    assert workspace_dir_for(montgomery, data_dir=tmp_path).is_relative_to(tmp_path)


def test_settings_round_trip_and_dataset_recorded(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    with Workspace.for_dataset(ds) as ws:
        s = ws.settings
        assert s.dataset_root == str(ds.resolve())
        s2 = s.replace(current_checkpoint="runs/r1/best", reviewed_weight=2.0, format_options={"mask_dir": "m"})
        ws.save_settings(s2)
        assert ws.settings == s2
        text = (ws.folder / "workspace.json").read_text()
        assert json.loads(text)["reviewed_weight"] == 2.0 and "\n  " in text  # human-readable


def test_bad_values_fall_back_and_unknown_keys_survive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "workspace.json").write_text(
        json.dumps({"version": 2, "reviewed_weight": "heavy", "gate_class_margin": 7, "from_the_future": [1, 2]})
    )
    with caplog.at_level(logging.WARNING):
        s = load_workspace_settings(tmp_path)
    assert s.reviewed_weight == WorkspaceSettings().reviewed_weight
    assert s.gate_class_margin == WorkspaceSettings().gate_class_margin
    assert "reviewed_weight" in caplog.text
    save_workspace_settings(tmp_path, s)
    assert json.loads((tmp_path / "workspace.json").read_text())["from_the_future"] == [1, 2]


def test_damaged_settings_are_set_aside(tmp_path: Path) -> None:
    (tmp_path / "workspace.json").write_text("{oops")
    assert load_workspace_settings(tmp_path) == WorkspaceSettings()
    assert (tmp_path / "workspace.json.bad").read_text() == "{oops"


def test_an_unwritable_sibling_workspace_is_still_the_one_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's corrections are in the sibling: a new empty workspace elsewhere would hide them."""
    monkeypatch.delenv("SEGSTUDIO_WORKSPACE_HOME", raising=False)
    ds = tmp_path / "data"
    ds.mkdir()
    with Workspace.for_dataset(ds) as ws:
        ws.reviews.set("x.png", "accepted")
        folder = ws.folder
    folder.chmod(0o555)
    try:
        assert workspace_dir_for(ds, data_dir=tmp_path / "user") == folder
        with Workspace.for_dataset(ds, data_dir=tmp_path / "user") as again:
            assert again.read_only
            assert again.reviews.get("x.png").status == "accepted"
    finally:
        folder.chmod(0o755)
