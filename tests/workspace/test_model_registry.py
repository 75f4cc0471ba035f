"""The model registry: current model, append-only history of adoptions / promotions / refusals / rollbacks with their
figures, the frozen validation split, migration from the old state keys, damage and read-only handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segstudio.core.errors import ReadOnlyError, SegstudioError
from segstudio.workspace import Workspace
from segstudio.workspace.models import FILE_NAME, ModelAction
from segstudio.workspace.settings import load_workspace_settings


def _checkpoint(ws: Workspace, run: str, kind: str = "best") -> Path:
    path = ws.folder / "runs" / run / "checkpoints" / kind
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_adopt_promote_refuse_rollback(tmp_path: Path) -> None:
    seen = []
    with Workspace(tmp_path / "ws") as ws:
        ws.events.model_changed.connect(seen.append)
        assert ws.models.current() is None and ws.models.history() == []
        a, b, c = _checkpoint(ws, "ra"), _checkpoint(ws, "rb", "last"), _checkpoint(ws, "rc", "last")
        ws.models.adopt(a, run_id="ra", reason="first model of the workspace")
        gate = {"gate": {"verdict": "promote", "ci_low": 0.01, "ci_high": 0.03, "per_class": []}}
        ws.models.promote(b, run_id="rb", reason="gate: better", figures=gate)
        refused = ws.models.refuse(c, run_id="rc", reason="gate: class 'heart' got worse",
                                   figures={"gate": {"verdict": "refused", "ci_low": float("nan")}})
        assert ws.models.current().checkpoint == b and ws.models.current().run_id == "rb"
        assert refused.verdict == "refused" and not refused.changed_current
        assert ws.models.last_round() == refused

        back = ws.models.rollback(reason="the radiologist prefers the old borders")
        assert back.action is ModelAction.ROLLBACK and back.checkpoint == a and back.previous == b
        assert ws.models.current().checkpoint == a
        with pytest.raises(SegstudioError, match="first one"):
            ws.models.rollback()  # a is the workspace's first model

        hist = ws.models.history()
        assert [e.action for e in hist] == [ModelAction.ADOPT, ModelAction.PROMOTE, ModelAction.REFUSE,
                                            ModelAction.ROLLBACK]
        assert [e.seq for e in hist] == [1, 2, 3, 4]
        assert hist[1].figures["gate"]["ci_low"] == 0.01 and hist[1].previous == a
        assert seen == hist
        # strict JSON on disk, paths relative to the workspace; the settings mirror the current model
        doc = json.loads((ws.folder / FILE_NAME).read_text())
        assert doc["current"]["checkpoint"] == "runs/ra/checkpoints/best"
        assert doc["history"][2]["figures"]["gate"]["ci_low"] is None
        assert load_workspace_settings(ws.folder).current_checkpoint == "runs/ra/checkpoints/best"


def test_rolling_back_twice_goes_back_two_models(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        a, b, c = (_checkpoint(ws, r) for r in ("ra", "rb", "rc"))
        ws.models.adopt(a, run_id="ra")
        ws.models.promote(b, run_id="rb", reason="x")
        ws.models.promote(c, run_id="rc", reason="y")
        assert ws.models.rollback().checkpoint == b
        assert ws.models.rollback().checkpoint == a


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        with pytest.raises(SegstudioError, match="no model") as info:
            ws.models.adopt(tmp_path / "nothing", run_id="r")
        assert info.value.fix


def test_validation_split_is_frozen_and_reset(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        assert ws.models.validation_split() is None
        ws.models.freeze_validation(["a", "b", "c"], from_run="r1")
    with Workspace(tmp_path / "ws") as ws:  # survives a reopen
        split = ws.models.validation_split()
        assert split.ids == ("a", "b", "c") and split.from_run == "r1" and split.frozen_at > 0
        ws.models.reset_validation()
        assert ws.models.validation_split() is None


def test_the_old_state_keys_are_migrated(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        a = _checkpoint(ws, "old")
        ws.state.set("model", {"run": "old", "checkpoint": str(a)})
        ws.state.set("retrain_validation", {"ids": ["x", "y"], "from_run": "old"})
        assert ws.models.current().checkpoint == a
        assert ws.models.history()[0].action is ModelAction.ADOPT
        assert ws.models.validation_split().ids == ("x", "y")
        b = _checkpoint(ws, "new")
        ws.models.promote(b, run_id="new", reason="r")
        assert [e.checkpoint for e in ws.models.history()] == [a, b]


def test_a_damaged_registry_is_kept_aside_not_lost(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        (ws.folder / FILE_NAME).write_text('{"history": [1, 2')
        assert ws.models.current() is None
        kept = list(ws.folder.glob(FILE_NAME + ".damaged-*"))
        assert len(kept) == 1 and kept[0].read_text() == '{"history": [1, 2'
        ws.models.adopt(_checkpoint(ws, "r"), run_id="r")
        assert ws.models.current() is not None


def test_a_read_only_workspace_reads_but_never_writes(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        a = _checkpoint(ws, "ra")
        ws.models.adopt(a, run_id="ra")
    before = (tmp_path / "ws" / FILE_NAME).read_bytes()
    with Workspace(tmp_path / "ws", read_only=True) as ro:
        assert ro.models.current().checkpoint == a
        with pytest.raises(ReadOnlyError):
            ro.models.adopt(a, run_id="ra")
        with pytest.raises(ReadOnlyError):
            ro.models.freeze_validation(["x"], from_run="ra")
    assert (tmp_path / "ws" / FILE_NAME).read_bytes() == before


def test_settings_v1_drop_the_unused_validation_split(tmp_path: Path) -> None:
    (tmp_path / "workspace.json").write_text(json.dumps({"version": 1, "validation_split": "val",
                                                          "reviewed_weight": 2.0}))
    s = load_workspace_settings(tmp_path)
    assert s.version == 2 and s.reviewed_weight == 2.0 and "validation_split" not in s.to_dict()
    assert s.gate_thresholds() == {"confidence": 0.95, "min_gain": 0.0, "class_margin": 0.02, "resamples": 2000}
