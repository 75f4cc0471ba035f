"""Label quality in the window, on the real Montgomery set: three labels spoilt the way annotators spoil them
(left and right swapped, a lung left out, both lungs labelled as one class) and a stray blob are saved as
corrections; Review → Rank Labels by Suspicion puts the three on top of the sorted Suspicion column, the "Most
suspicious label" queue walks them, the Review panel says why (naming the class) with the part framed on the
canvas, and the top three rows are flagged in one step."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus
from segstudio.workspace.suspicion_store import SUSPICION_KEY, ranking_info

SCREENSHOT = Path("/tmp/quality_window.png")


def _spoil(win: MainWindow) -> tuple[list[str], str]:
    """Save spoilt labels as corrections; returns the three worst (dataset order) and the stray blob's sample."""
    ws, ds = win.review.workspace, win.session.dataset
    ids = {c.name: c.id for c in ds.schema}
    left, right = ids["left lung"], ids["right lung"]
    s = [x.id for x in ds.samples]
    swapped, missing, merged, blob = s[3], s[17], s[29], s[11]
    m = ds.load_gt(swapped)
    out = m.copy()
    out[m == left], out[m == right] = right, left
    ws.save_mask(swapped, out)
    m = ds.load_gt(missing).copy()
    m[m == right] = 0
    ws.save_mask(missing, m)
    m = ds.load_gt(merged).copy()
    m[m == right] = left
    ws.save_mask(merged, m)
    m = ds.load_gt(blob).copy()
    cv2.circle(m, (450, 490), 20, int(right), -1)  # a stray right-lung speck far from the right lung
    ws.save_mask(blob, m)
    return [swapped, missing, merged], blob


def _assert_framed(win: MainWindow, sample_id: str) -> None:
    """The canvas frames the box of the sample's strongest reason that has one."""
    entry = win.review.workspace.metrics.get(sample_id, key=SUSPICION_KEY)
    y0, y1, x0, x1 = next(r["box"] for r in entry.data["reasons"] if r["box"])
    rect = win.canvas.highlight()
    assert rect is not None
    assert rect.left() < x0 < x1 < rect.right() and rect.top() < y0 < y1 < rect.bottom()


def _rank(win: MainWindow, qtbot) -> None:  # noqa: ANN001
    win.actions_["quality_rank"].trigger()
    assert win.quality.running() or ranking_info(win.review.workspace) is not None
    qtbot.waitUntil(lambda: not win.quality.running() and ranking_info(win.review.workspace) is not None,
                    timeout=60_000)


@pytest.fixture
def quality_window(show_window, montgomery: Path):  # noqa: ANN001
    win = show_window(montgomery, size=(1400, 880))
    yield win
    win.quality.stop_and_wait(60)


def test_rank_walk_explain_and_flag_in_bulk(quality_window: MainWindow, qtbot) -> None:  # noqa: ANN001
    win = quality_window
    worst, blob = _spoil(win)
    assert win.browser.view.isColumnHidden(6)  # no Suspicion column before a ranking
    assert "not ranked yet" in win.review_panel.suspicion.text()

    _rank(win, qtbot)
    ws = win.review.workspace
    assert len(ws.metrics.entries(key=SUSPICION_KEY)) == 40
    # the column: shown, sorted most suspicious first, the three spoilt labels on top
    assert not win.browser.view.isColumnHidden(6)
    assert win.browser.sort_state() == ("suspicion", False)
    top = win.browser.visible_ids()[:3]
    assert set(top) == set(worst)
    assert blob in win.browser.visible_ids()[:5]
    assert win.browser.model_.suspicion(worst[0]) > 0.9
    assert "Ranked 40 labels" in win.statusBar().currentMessage()

    # the queue: "Most suspicious label", walked with Q (ties in dataset order)
    assert win.review_panel.strategy() == "suspicion"
    assert win.review_panel.queue_info.text().startswith("40 in the queue")
    # Q: the most suspicious first (ties in dataset order); the sample on screen is skipped, so Q alternates
    # between the top two until one is decided (as under every strategy)
    box = win.review_panel.suspicion
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst[0], timeout=10_000)
    assert "suspicion 1.00" in win.statusBar().currentMessage() and "swapped" in win.statusBar().currentMessage()
    # the reasons beside the image name the classes; the frame sits on the part the strongest reason points at
    assert "Suspicion 1.00" in box.text() and "<b>left lung</b>" in box.text() and "<b>right lung</b>" in box.text()
    assert "swapped" in box.text()
    _assert_framed(win, worst[0])
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst[1], timeout=10_000)
    assert "<b>right lung</b>: right lung is missing" in box.text()
    _assert_framed(win, worst[1])
    win.navigation.go_to_sample(worst[2])
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst[2], timeout=10_000)
    assert "missing" in box.text() and "<b>left lung</b>" in box.text()
    _assert_framed(win, worst[2])

    # the stray blob: the frame points at the speck, not at the lung
    win.navigation.go_to_sample(blob)
    qtbot.waitUntil(lambda: win.session.current.sample.id == blob, timeout=10_000)
    assert "right lung" in win.review_panel.suspicion.text() and "separate parts" in win.review_panel.suspicion.text()
    rect = win.canvas.highlight()
    assert rect is not None and rect.left() >= 420 and rect.top() >= 460 and rect.width() < 60

    # bulk: select the top three rows and flag them in one step
    proxy = win.browser.proxy
    sel = QItemSelection(proxy.index(0, 0), proxy.index(2, proxy.columnCount() - 1))
    win.browser.view.selectionModel().select(
        sel, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
    assert set(win.browser.selected_ids()) == set(worst)
    assert win.actions_["bulk_flag"] in win.browser.view.actions()  # the right-click menu has it
    win.actions_["bulk_flag"].trigger()
    for sid in worst:
        st = win.review.review(sid)
        assert st.status is ReviewStatus.FLAGGED and st.comment.startswith("suspicious label:")
    assert win.statusBar().currentMessage() == "3 samples flagged"
    # decided: they left the queue; Q goes on to the next suspicious label
    assert win.review_panel.queue_info.text().startswith("37 in the queue")
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id not in worst, timeout=10_000)
    assert win.browser.model_.review(worst[0]).status is ReviewStatus.FLAGGED


def test_a_correction_after_the_ranking_is_noted_and_the_highlight_clears_without_a_ranking(
        quality_window: MainWindow, qtbot) -> None:  # noqa: ANN001
    win = quality_window
    assert win.canvas.highlight() is None
    worst, _blob = _spoil(win)
    _rank(win, qtbot)
    win.navigation.go_to_sample(worst[0])
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst[0], timeout=10_000)
    assert win.canvas.highlight() is not None
    ds, ws = win.session.dataset, win.review.workspace
    ws.save_mask(worst[0], ds.load_gt(worst[0]))  # corrected back
    win.quality.show_reasons(worst[0])
    assert "saved again after the ranking" in win.review_panel.suspicion.text()
    # bulk reject of the shown sample (no selection: the current one)
    qtbot.waitUntil(lambda: win.browser.current_id() == worst[0], timeout=5_000)  # the list follows a moment later
    win.browser.view.clearSelection()
    assert win.quality.reject_selected() == 1
    assert win.review.review(worst[0]).status is ReviewStatus.REJECTED
    assert win.statusBar().currentMessage() == "1 sample rejected"
    # a sample never ranked (the stored ranking removed): nothing framed, the box says so
    ws.metrics.invalidate(key=SUSPICION_KEY)
    win.quality.show_reasons(worst[0])
    assert win.canvas.highlight() is None
    assert "not ranked" in win.review_panel.suspicion.text()


def test_screenshot_of_the_reasons_beside_the_image(show_window, montgomery: Path, qtbot) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QApplication

    from segstudio.gui.app import get_app

    before = QApplication.instance().styleSheet()
    get_app()  # the app's stylesheet, as a user sees it (put back afterwards: later tests measure widths)
    win = show_window(montgomery, size=(1400, 880))
    try:
        worst, _blob = _spoil(win)
        _rank(win, qtbot)
        win.actions_["next_in_queue"].trigger()
        qtbot.waitUntil(lambda: win.session.current.sample.id == worst[0], timeout=10_000)
        qtbot.wait(300)
        assert win.grab().save(str(SCREENSHOT))
        img = cv2.imread(str(SCREENSHOT))
        assert img is not None and img.shape[1] >= 1300 and np.unique(img.reshape(-1, 3), axis=0).shape[0] > 100
    finally:
        win.quality.stop_and_wait(60)
        QApplication.instance().setStyleSheet(before)


def test_stop_ends_the_ranking_without_a_result_and_predictions_add_the_model_checks(montgomery: Path) -> None:
    from segstudio.datasets.registry import open_dataset
    from segstudio.gui.loop.quality import RankDone, RankProgress, rank_events
    from segstudio.metrics.label_rules import LabelRules

    class Token:
        cancelled = False

    ds = open_dataset(montgomery, format="class-folders")
    token = Token()
    events = []
    for ev in rank_events(token, ds, labels=ds.load_gt, predictions=None, rules=LabelRules()):
        events.append(ev)
        token.cancelled = True  # Stop after the first image
    assert events and all(isinstance(e, RankProgress) for e in events)

    ids = {c.name: c.id for c in ds.schema}
    victim = ds.samples[5].id

    def prediction(sid: str) -> np.ndarray:  # the model sees no right lung where the label has one
        m = ds.load_gt(sid).copy()
        if sid == victim:
            m[m == ids["right lung"]] = 0
        return m

    done = list(rank_events(Token(), ds, labels=ds.load_gt, predictions=prediction, rules=LabelRules()))
    assert isinstance(done[-1], RankDone) and isinstance(done[-2], RankProgress) and done[-2].done == 40
    first = done[-1].ranking[0]
    assert first.sample_id == victim and any(r.check == "disagreement" for r in first.reasons)


#: fold models small enough for a test: 2 folds of one epoch on 64² images
TINY_FOLDS = ("model.encoder=resnet18", "image_size=64", "batch_size=8", "num_workers=0")


def test_the_fold_dialog_says_what_it_will_train(qapp) -> None:  # noqa: ANN001
    from segstudio.gui.loop.quality_folds import DEFAULT_EPOCHS, DEFAULT_FOLDS, FoldRankDialog

    dialog = FoldRankDialog(recipes=["lesion", "lungs-lr"], recipe="lungs-lr", labels=40)
    assert dialog.folds.value() == DEFAULT_FOLDS and dialog.epochs.value() == DEFAULT_EPOCHS
    assert dialog.recipe.currentData() == "lungs-lr" and "40 labels" in dialog.intro.text()
    dialog.folds.setValue(5)
    dialog.epochs.setValue(12)
    dialog.recipe.setCurrentIndex(0)
    assert "5 models × 12 epochs = 60 epochs" in dialog.estimate.text()
    got = dialog.settings()
    assert (got.folds, got.recipe, got.epochs) == (5, None, 12)
    assert got.overrides == ["epochs=12", "early_stopping=0"]
    assert got.describe() == "5-fold out-of-fold models (default settings, 12 epochs each)"


def test_rank_with_out_of_fold_models_then_stop_keeps_the_ranking(quality_window: MainWindow, qtbot) -> None:  # noqa: ANN001
    """Review → Rank Labels with Out-of-Fold Models: the fold models train in the background on the labels as
    corrected (the fold and epoch in the status bar), then every label is ranked with their predictions and
    probabilities; the ranking says what judged it. A second run stopped during training stores nothing: the first
    ranking stays."""
    from segstudio.gui.loop.quality_folds import FoldSettings

    win = quality_window
    worst, _blob = _spoil(win)
    ws = win.review.workspace
    settings = FoldSettings(folds=2, recipe=None, epochs=1, extra=TINY_FOLDS)
    seen: list[str] = []
    win.quality.progress.valueChanged.connect(lambda _v: seen.append(win.quality.progress.format()))
    assert win.quality.rank_labels_out_of_fold(settings)
    assert not win.quality.rank_labels_out_of_fold(settings)  # one ranking at a time
    qtbot.waitUntil(lambda: not win.quality.running(), timeout=240_000)
    info = ranking_info(ws)
    assert info is not None and info["out_of_fold"] and info["with_model"]
    assert "2-fold out-of-fold models" in info["note"]
    assert "fold 2/2, epoch 1/1" in seen and any(f.startswith("ranking") for f in seen)
    assert len(ws.metrics.entries(key=SUSPICION_KEY)) == 40
    assert set(win.browser.visible_ids()[:3]) == set(worst)
    assert "Judged with 2-fold out-of-fold models" in win.statusBar().currentMessage()
    win.navigation.go_to_sample(worst[0])
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst[0], timeout=10_000)
    assert "2-fold out-of-fold models" in win.review_panel.suspicion.text()
    assert "lenient" not in win.review_panel.suspicion.text()
    first = {e.sample_id: e.suspicion for e in ws.metrics.entries(key=SUSPICION_KEY)}

    assert win.quality.rank_labels_out_of_fold(FoldSettings(folds=2, recipe=None, epochs=3, extra=TINY_FOLDS))
    qtbot.waitUntil(lambda: any(f.startswith("fold 1/2, epoch") for f in seen[-3:]), timeout=60_000)
    win.quality.stop()
    qtbot.waitUntil(lambda: not win.quality.running(), timeout=120_000)
    assert "Ranking stopped" in win.statusBar().currentMessage()
    assert {e.sample_id: e.suspicion for e in ws.metrics.entries(key=SUSPICION_KEY)} == first
    assert ranking_info(ws)["out_of_fold"]


def test_the_fold_action_asks_first_and_offers_the_training_panels_recipe(quality_window: MainWindow, qtbot) -> None:  # noqa: ANN001
    """Review → Rank Labels with Out-of-Fold Models… opens the dialog with the recipe chosen in the Training panel;
    Cancel starts nothing."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from segstudio.gui.loop.quality_folds import FoldRankDialog

    win = quality_window
    combo = win.training_panel.recipe
    combo.setCurrentIndex(combo.findData("lungs-lr"))
    seen: dict[str, object] = {}

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        seen["dialog"] = type(dialog).__name__
        if isinstance(dialog, FoldRankDialog):
            seen["recipe"] = dialog.recipe.currentData()
            dialog.reject()

    QTimer.singleShot(300, answer)
    win.actions_["quality_rank_folds"].trigger()
    qtbot.waitUntil(lambda: "dialog" in seen, timeout=10_000)
    assert seen == {"dialog": "FoldRankDialog", "recipe": "lungs-lr"}
    assert not win.quality.running() and ranking_info(win.review.workspace) is None


def test_an_outline_drawn_off_its_edges_is_explained_beside_the_image(quality_window: MainWindow, qtbot) -> None:  # noqa: ANN001
    """Without a model: a right lung drawn 12 px too small (an annotator's narrow brush) ranks first, and the Review
    panel says which way and how far its outline lies from the film's edges."""
    win = quality_window
    ds, ws = win.session.dataset, win.review.workspace
    right = next(c.id for c in ds.schema if c.name == "right lung")
    victim = ds.samples[8].id
    m = ds.load_gt(victim).copy()
    lung = (m == right).astype(np.uint8)
    m[(m == right) & ~cv2.erode(lung, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))).astype(bool)] = 0
    ws.save_mask(victim, m)
    _rank(win, qtbot)
    assert win.browser.visible_ids()[0] == victim
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == victim, timeout=10_000)
    text = win.review_panel.suspicion.text()
    assert "<b>right lung</b>" in text and "if it were grown by" in text
    # every line of the reasons is shown once the panel is laid out (the panel scrolls), none squeezed away
    for label in (win.review_panel.suspicion, win.review_panel.queue_info):
        assert label.heightForWidth(label.width()) > 2 * label.fontMetrics().height()
        qtbot.waitUntil(lambda label=label: label.height() >= label.heightForWidth(label.width()), timeout=3_000)
    win.grab().save(str(Path("/tmp/quality_edge_fit.png")))
