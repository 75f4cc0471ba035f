"""The retraining round from the app: fine-tune the current model on GT ∪ corrections, the before/after table on
the frozen validation split, promotion when better or on the user's word, and going back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_training import _tiny

from segstudio.engine.events import BatchEnd
from segstudio.engine.retrain import Decision, read_comparison
from segstudio.gui.loop.retrain_dialog import RetrainDialog, comparison_rows
from segstudio.gui.main_window import MainWindow
from segstudio.workspace import MaskSource, RunStatus
from segstudio.workspace.models import ModelAction


def _train_first_model(window: MainWindow, qtbot) -> Path:
    _tiny(window.training_panel, epochs=1, steps=2)
    window.actions_["train_start"].trigger()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    run = window.review.workspace.runs.all()[0]
    assert run.status is RunStatus.FINISHED, run.message
    chosen = window.training.chosen_model()
    assert chosen is not None and chosen.is_relative_to(run.folder)  # the first model becomes the current one
    return chosen


def _correct_one(window: MainWindow) -> str:
    ws, ds = window.review.workspace, window.session.dataset
    sid = ds.samples[0].id
    mask = ds.load_gt(ds.samples[0]).copy()
    mask[:40, :40] = 1
    ws.save_mask(sid, mask, source=MaskSource.CORRECTION, author="test")
    return sid


def test_retrain_without_a_model_says_how_to_get_one(window: MainWindow, qtbot, monkeypatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr("segstudio.gui.loop.training_panel.show_error", lambda title, text, *a: shown.append(text))
    assert not window.training_panel.retrain_button.isEnabled()
    assert window.training_panel.start_retrain() is None
    assert shown and "no current model" in shown[0] and "Use this model" in shown[0]


def test_a_round_compares_on_the_frozen_split_and_waits_for_the_user_when_not_promoted(
        window: MainWindow, qtbot) -> None:
    base = _train_first_model(window, qtbot)
    panel = window.training_panel
    assert panel.retrain_button.isEnabled() and base.name in panel.model_label.text()
    corrected = _correct_one(window)
    window.training.auto_promote = False
    panel.retrain_epochs.setValue(1)
    panel.reviewed_weight.setValue(3.0)
    with qtbot.waitSignal(window.training.sig_retrain_compared, timeout=180_000) as blocker:
        window.actions_["train_retrain"].trigger()
        assert window.training.running and not panel.retrain_button.isEnabled()
    run, comp = blocker.args
    assert run.status is RunStatus.FINISHED and run.name.endswith(" · round 1")
    ws = window.review.workspace
    frozen = list(ws.models.validation_split().ids)
    assert list(comp.val_ids) == frozen and corrected not in frozen  # the corrected image trains
    assert comp.reviewed == 1 and ws.settings.reviewed_weight == 3.0
    assert comp.base_checkpoint == base and comp.new_checkpoint.is_relative_to(run.folder)
    # the verdict is kept with the run and in the log
    saved = read_comparison(run.folder)
    assert saved is not None and saved["verdict"] == comp.gate.verdict.value and saved["validation_ids"] == frozen
    assert comp.decision in (Decision.AWAITING, Decision.KEPT) and saved["decision"] == comp.decision
    assert "retrained" in panel.log_view.toPlainText() and "gate:" in panel.log_view.toPlainText()
    # the table: one row per class and the means, before and after
    dlg = panel.retrain_dialog
    assert isinstance(dlg, RetrainDialog) and dlg.isVisible() and not dlg.isModal()
    names = [dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())]
    assert names == ["background", "left lung", "right lung", "Mean (scored classes)"]
    mean_row = dlg.table.rowCount() - 1
    assert dlg.table.item(mean_row, 1).text() == f"{comp.before.dice:.4f}"
    assert dlg.table.item(mean_row, 2).text() == f"{comp.after.dice:.4f}"
    # the gate: its interval above the table, its verdict per class and on the mean row
    assert f"[{comp.gate.ci_low:+.4f}, {comp.gate.ci_high:+.4f}]" in dlg.gate_label.text()
    assert comp.gate.reason in dlg.reason_label.text()
    gate_col = dlg.table.columnCount() - 1
    assert dlg.table.horizontalHeaderItem(gate_col).text() == "Gate"
    assert dlg.table.item(mean_row, gate_col).text() == comp.gate.verdict.label
    assert dlg.table.item(0, gate_col).text() == ""  # background is not judged
    assert all(dlg.table.item(r, gate_col).text() for r in (1, 2))
    # not auto-promoted: the current model stays until the user promotes
    assert window.training.chosen_model() == base
    assert dlg.promote_button.isVisibleTo(dlg) and not dlg.keep_button.isVisibleTo(dlg)
    with qtbot.waitSignal(window.training.sig_model_chosen, timeout=5000):
        dlg.promote_button.click()
    assert window.training.chosen_model() == comp.new_checkpoint
    assert dlg.keep_button.isVisibleTo(dlg) and "now the current model" in dlg.headline.text()
    # and back
    dlg.keep_button.click()
    assert window.training.chosen_model() == base
    actions = [e.action for e in ws.models.history()]
    assert actions[-2:] == [ModelAction.PROMOTE, ModelAction.ROLLBACK]
    assert "by hand" in ws.models.history()[-2].reason
    # the model history in the panel shows it, newest first
    tree = panel.model_history.tree
    assert tree.topLevelItem(0).text(2) == "rolled back to" and tree.topLevelItem(1).text(2) == "promoted"


def test_a_better_model_is_promoted_by_itself(window: MainWindow, qtbot, monkeypatch) -> None:
    base = _train_first_model(window, qtbot)
    window.training_panel.retrain_epochs.setValue(1)
    # whatever the tiny fine-tune scores, the gate lets it through: the promotion path is what is under test
    import dataclasses

    import segstudio.engine.retrain as rt
    from segstudio.metrics.gate import Verdict

    real = rt.promotion_gate

    def proven(before, after, *, thresholds=None):
        return dataclasses.replace(real(before, after, thresholds=thresholds), verdict=Verdict.PROMOTE,
                                   reason="better (constructed for the test)")

    monkeypatch.setattr(rt, "promotion_gate", proven)
    with qtbot.waitSignal(window.training.sig_retrain_compared, timeout=180_000) as blocker:
        window.training_panel.start_retrain()
    comp = blocker.args[1]
    assert window.training.chosen_model() == comp.new_checkpoint != base
    dlg = window.training_panel.retrain_dialog
    assert dlg.promoted and dlg.headline.text().startswith("<b>Better, proven.</b>")
    promoted = window.review.workspace.models.history()[-1]
    assert promoted.action is ModelAction.PROMOTE and promoted.figures["gate"]["verdict"] == "promote"
    # a second round starts from the promoted model and keeps the same validation images
    first_val = list(comp.val_ids)
    with qtbot.waitSignal(window.training.sig_retrain_compared, timeout=180_000) as blocker:
        window.training_panel.start_retrain()
    second = blocker.args[1]
    assert second.base_checkpoint == comp.new_checkpoint and list(second.val_ids) == first_val


def test_comparison_rows_mark_background_as_unscored() -> None:
    from types import SimpleNamespace

    from segstudio.metrics.compare import ClassScore

    def summary(d1: float, d2: float):
        per = (ClassScore(0, "background", 1, 1, 1, 0, 0, 0.99, 0.98, 1, 1),
               ClassScore(1, "lesion", 1, 1, 1, 0, 0, d1, d2, 1, 1))
        return SimpleNamespace(per_class=per, scored_ids=(1,))

    comp = SimpleNamespace(before=SimpleNamespace(summary=summary(0.8, 0.7), dice=0.8, iou=0.7),
                           after=SimpleNamespace(summary=summary(0.9, 0.8), dice=0.9, iou=0.8))
    rows = comparison_rows(comp)
    assert [r[0] for r in rows] == ["background", "lesion", "Mean (scored classes)"]
    assert rows[0][5] is False and rows[1][5] is True
    assert rows[1][1:5] == (0.8, 0.9, 0.7, 0.8)
    assert json.dumps([list(r) for r in rows])  # plain values
    assert np.isclose(rows[-1][2] - rows[-1][1], 0.1)


def test_a_stopped_round_ends_cancelled_without_a_verdict_and_is_not_resumable(window: MainWindow, qtbot) -> None:
    base = _train_first_model(window, qtbot)
    window.training_panel.retrain_epochs.setValue(3)
    verdicts: list[object] = []
    window.training.sig_retrain_compared.connect(lambda run, comp: verdicts.append(comp))

    def stop_on_first_batch(ev: object) -> None:
        if isinstance(ev, BatchEnd):
            window.training_panel.stop_training()

    window.training.sig_event.connect(stop_on_first_batch)
    window.training_panel.start_retrain()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    run = window.training.run
    assert run.status is RunStatus.CANCELLED and verdicts == []
    assert json.loads((run.folder / "retrain.json").read_text())["base_checkpoint"] == str(base)
    assert not window.training.can_resume(run)
    assert window.training.chosen_model() == base  # nothing was promoted
    assert window.training_panel.retrain_button.isEnabled()  # and the next round can start


def test_the_gate_thresholds_are_workspace_settings(window: MainWindow) -> None:
    gate = window.training_panel.gate
    ws = window.review.workspace
    assert gate.isEnabled() and gate.class_margin.value() == ws.settings.gate_class_margin
    gate.class_margin.setValue(0.05)
    gate.min_gain.setValue(0.01)
    gate.confidence.setCurrentIndex(gate.confidence.findData(0.99))
    gate.auto_promote.setChecked(False)
    s = ws.settings
    assert (s.gate_class_margin, s.gate_min_gain, s.gate_confidence, s.auto_promote) == (0.05, 0.01, 0.99, False)
    assert window.training.auto_promote is False
    # what a round is judged by
    from segstudio.metrics.gate import GateThresholds

    th = GateThresholds(**s.gate_thresholds())
    assert th.class_margin == 0.05 and th.confidence == 0.99
