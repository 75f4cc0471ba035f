"""The workspace's retraining round, owned by the engine: the split frozen in the registry, retrain.json and
comparison.json written, the run record followed, the gate's verdict recorded as a promotion or a refusal, a person
overriding it, and a rollback."""

from __future__ import annotations

import json

import pytest

from segstudio.core.errors import SegstudioError
from segstudio.engine.events import BatchEnd, Finished, RetrainCompared
from segstudio.engine.retrain import (
    COMPARISON_FILE,
    ROUND_FILE,
    Decision,
    plan_round,
    promote_round,
    read_comparison,
    run_round,
)
from segstudio.engine.train import train
from segstudio.workspace import RunStatus, Workspace
from segstudio.workspace.models import ModelAction

from .conftest import make_dataset, tiny_config


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    ds = make_dataset(n=10)
    run = tmp_path_factory.mktemp("base")
    fin = list(train(tiny_config("epochs=2"), ds, run_dir=run))[-1]
    assert isinstance(fin, Finished) and fin.last_checkpoint is not None
    return ds, fin.last_checkpoint


def _workspace(tmp_path, base, **settings):
    ws = Workspace(tmp_path / "ws")
    ws.models.adopt(base, run_id="", reason="the base model")
    if settings:
        ws.save_settings(ws.settings.replace(**settings))
    return ws


def test_a_round_without_a_current_model_says_what_to_do(tmp_path):
    with Workspace(tmp_path / "ws") as ws:
        with pytest.raises(SegstudioError, match="no current model") as info:
            plan_round(ws)
        assert "promote" in info.value.fix


def test_a_promoted_round(base_model, tmp_path):
    ds, base = base_model
    # a gate that lets any model through: min_gain -1, no class margin
    with _workspace(tmp_path, base, gate_min_gain=-1.0, gate_class_margin=1.0) as ws:
        plan = plan_round(ws, epochs=1, reviewed_weight=2.0)
        assert ws.settings.reviewed_weight == 2.0  # the weight asked for becomes the setting
        doc = json.loads((plan.run.folder / ROUND_FILE).read_text())
        assert doc["base_checkpoint"] == str(base) and doc["epochs"] == 1 and doc["gate"]["min_gain"] == -1.0
        assert ws.runs.get(plan.run.id).status is RunStatus.CREATED

        events = list(run_round(ws, ds, plan))
        comp = events[-1]
        assert any(isinstance(e, BatchEnd) for e in events)
        assert isinstance(comp, RetrainCompared) and comp.decision == Decision.PROMOTED and comp.gate.promote
        assert comp.run_id == plan.run.id
        split = ws.models.validation_split()
        assert split is not None and comp.val_ids == split.ids
        cur = ws.models.current()
        assert cur.checkpoint == comp.new_checkpoint and cur.run_id == plan.run.id
        ev = ws.models.history()[-1]
        assert ev.action is ModelAction.PROMOTE and ev.verdict == "promote"
        assert ev.figures["gate"]["ci_low"] == pytest.approx(comp.gate.ci_low, abs=1e-5)
        saved = read_comparison(plan.run.folder)
        assert saved["decision"] == "promoted" and saved["verdict"] == "promote"
        assert saved["validation_ids"] == list(split.ids)
        run = ws.runs.get(plan.run.id)
        assert run.status is RunStatus.FINISHED and "gate" in run.message

        # the next round reuses the frozen split; this one is refused (min_gain 1 cannot be proven)
        ws.save_settings(ws.settings.replace(gate_min_gain=1.0))
        plan2 = plan_round(ws, epochs=1)
        assert plan.run.name.endswith(" · round 1") and plan2.run.name.endswith(" · round 2")
        comp2 = list(run_round(ws, ds, plan2))[-1]
        assert comp2.val_ids == split.ids and comp2.decision == Decision.KEPT
        assert ws.models.current().checkpoint == comp.new_checkpoint  # unchanged
        assert ws.models.history()[-1].action is ModelAction.REFUSE

        # a person overrides the gate: recorded with the round's figures and whose call it was
        promote_round(ws, comp2.run_id, reason="the borders look right to me", author="dr. k")
        last = ws.models.history()[-1]
        assert last.action is ModelAction.PROMOTE and last.author == "dr. k"
        assert "over the gate's verdict" in last.reason and last.figures["by_hand"] is True
        assert ws.models.current().checkpoint == comp2.new_checkpoint
        # and rolls back: the model before it is current again
        assert ws.models.rollback().checkpoint == comp.new_checkpoint


def test_auto_promotion_off_waits_for_a_person(base_model, tmp_path):
    ds, base = base_model
    with _workspace(tmp_path, base, gate_min_gain=-1.0, gate_class_margin=1.0, auto_promote=False) as ws:
        comp = list(run_round(ws, ds, plan_round(ws, epochs=1)))[-1]
        assert comp.decision == Decision.AWAITING
        assert ws.models.current().checkpoint == base and len(ws.models.history()) == 1
        promote_round(ws, comp.run_id)
        assert ws.models.current().checkpoint == comp.new_checkpoint
        assert "over the gate" not in ws.models.history()[-1].reason


def test_promote_round_refuses_a_training_run(base_model, tmp_path):
    _, base = base_model
    with _workspace(tmp_path, base) as ws:
        run = ws.runs.create({}, name="plain training")
        with pytest.raises(SegstudioError, match="not a judged retraining round"):
            promote_round(ws, run.id)


def test_a_failing_round_marks_its_run_failed(base_model, tmp_path):
    ds, base = base_model
    with _workspace(tmp_path, base) as ws:
        plan = plan_round(ws, epochs=1)
        ws.models.freeze_validation(["no-such-image"], from_run="")
        with pytest.raises(SegstudioError, match="no labelled image"):
            list(run_round(ws, ds, plan))
        run = ws.runs.get(plan.run.id)
        assert run.status is RunStatus.FAILED and "no labelled image" in run.message
        assert not (plan.run.folder / COMPARISON_FILE).exists()
        assert [e.action for e in ws.models.history()] == [ModelAction.ADOPT]  # nothing judged, nothing recorded


def test_a_rejected_label_neither_trains_nor_judges(base_model, tmp_path):
    ds, base = base_model
    from segstudio.engine.events import RunStarted
    from segstudio.workspace import ReviewStatus

    with _workspace(tmp_path, base, gate_min_gain=-1.0, gate_class_margin=1.0) as ws:
        plan = plan_round(ws, epochs=1)
        first = [e for e in run_round(ws, ds, plan)]
        split = ws.models.validation_split().ids
        started = next(e for e in first if isinstance(e, RunStarted))
        rejected_val, rejected_train = split[0], next(s.id for s in ds.samples if s.id not in split)
        for sid in (rejected_val, rejected_train):
            ws.reviews.set(sid, ReviewStatus.REJECTED, comment="wrong border")
        second = list(run_round(ws, ds, plan_round(ws, epochs=1)))
        again = next(e for e in second if isinstance(e, RunStarted))
        assert again.train_samples == started.train_samples - 1
        assert again.val_samples == started.val_samples - 1
        comp = second[-1]
        assert rejected_val not in comp.val_ids and len(comp.val_ids) == len(split) - 1


def test_a_model_trained_on_every_image_still_gets_a_frozen_split_for_its_rounds():
    from segstudio.engine.retrain import validation_ids

    ds = make_dataset(n=10)
    held = validation_ids(ds, tiny_config("val_fraction=0.3"))
    assert len(held) == 3
    # the small-data recipes train on every image: their rounds hold out the default 20 % to judge the new model on
    assert tiny_config("val_fraction=0").data.val_fraction == 0
    assert len(validation_ids(ds, tiny_config("val_fraction=0"))) == 2
