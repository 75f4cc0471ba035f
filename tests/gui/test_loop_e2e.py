"""The human-in-the-loop loop end to end on the real Montgomery data, through the window as a person drives it:
train a tiny model from the Training panel, predict every image, correct one, retrain, read the before/after
table, promote — and the dataset's GT files stay byte-identical throughout, the correction survives the
prediction passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from canvas_driver import drag
from test_training import _tiny

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import MaskSource, RunStatus


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _wait_predicted(window: MainWindow, qtbot) -> None:
    qtbot.waitUntil(lambda: not window.predictions_view.inference.running(), timeout=300_000)


@pytest.mark.slow
def test_train_predict_correct_retrain_promote_on_montgomery(qtbot, montgomery: Path) -> None:
    before = _digest(montgomery)
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    ds = win.open_dataset(montgomery, format_name="class-folders")
    assert ds is not None and len(ds) == 40
    ws = win.review.workspace

    # 1. train a tiny model from the panel; it becomes the workspace's model
    _tiny(win.training_panel, epochs=1, steps=2, batch=4)
    win.actions_["train_start"].trigger()
    qtbot.waitUntil(lambda: not win.training.running, timeout=300_000)
    first = ws.runs.all()[0]
    assert first.status is RunStatus.FINISHED, first.message
    model = win.training.chosen_model()
    assert model is not None and model.is_relative_to(first.folder)

    # 2. predict every image in the background: the Dice/IoU columns fill, the prediction layer shows
    win.actions_["predict_all"].trigger()
    assert win.predictions_view.inference.running()
    _wait_predicted(win, qtbot)
    scores = win.review.cached_scores()
    assert len(scores) == 40 and all(d is not None for d, _ in scores.values())
    assert win.status.dataset.text().endswith("· 40 predictions")
    qtbot.waitUntil(lambda: win.editor.target is not None and win.editor.target.prediction is not None)

    # 3. correct one image with the brush, through the canvas, and save it
    sid = win.session.current.sample.id
    win.tools.set_tool("brush")
    win.class_panel.select_class(2)
    win.brush_size.setValue(24)
    base = np.array(win.editor.mask.array)
    drag(win.canvas, [(80.0, 80.0), (140.0, 110.0), (200.0, 140.0)])
    assert (np.array(win.editor.mask.array) != base).sum() > 500
    win.actions_["save"].trigger()
    corrected = ws.versions.latest(sid)
    assert corrected is not None and corrected.source is MaskSource.CORRECTION
    corrected_mask = ws.versions.load(corrected)

    # 4. a second prediction pass never overwrites the correction
    win.actions_["predict_all"].trigger()
    _wait_predicted(win, qtbot)
    assert ws.versions.latest(sid).version == corrected.version
    assert np.array_equal(ws.versions.load(ws.versions.latest(sid)), corrected_mask)
    assert np.array_equal(win.editor.mask.array, corrected_mask)  # on screen
    win.go_next()
    win.navigation.go_to_sample(sid)  # and read back afresh: the correction is the mask, the prediction stays beside it
    assert np.array_equal(win.editor.target.base, corrected_mask) and win.editor.target.prediction is not None

    # 5. retrain: one click, the before/after table, promote (by itself when better, else by the user)
    win.training_panel.retrain_epochs.setValue(1)
    with qtbot.waitSignal(win.training.sig_retrain_compared, timeout=300_000) as blocker:
        win.actions_["train_retrain"].trigger()
    run, comp = blocker.args
    assert run.status is RunStatus.FINISHED and comp.reviewed == 1 and sid not in comp.val_ids
    dlg = win.training_panel.retrain_dialog
    assert dlg is not None and dlg.isVisible()
    rows = [dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())]
    assert rows == ["background", "left lung", "right lung", "Mean (scored classes)"]
    if not dlg.promoted:
        dlg.promote_button.click()
    assert win.training.chosen_model() == comp.new_checkpoint
    # 6. the predictions are refreshed with the promoted model; the correction is still there
    qtbot.waitUntil(lambda: win.predictions_view.inference.running() or not win.predictions_view.source.stale_ids(),
                    timeout=10_000)
    _wait_predicted(win, qtbot)
    assert win.predictions_view.source.stale_ids() == []
    assert np.array_equal(ws.versions.load(ws.versions.latest(sid)), corrected_mask)

    dlg.close()
    win.close()
    assert _digest(montgomery) == before
