"""The table and the queue (issue 21): the queue's strategies with an opened predictions folder, the sample
table's names elided in the middle and its columns remembered across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus


@pytest.fixture
def montgomery_window(qtbot, montgomery: Path, montgomery_predictions: tuple[Path, str]):
    """The main window on the real Montgomery data with a predictions folder and no model; scoring finished."""
    folder, _worst = montgomery_predictions
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_dataset(montgomery, predictions=folder) is not None
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    assert win.review.wait_for_scoring(60_000)
    n = len(win.session.dataset.samples)
    qtbot.waitUntil(lambda: len(win.review.cached_scores()) == n, timeout=10_000)
    yield win
    win.training.stop_and_wait(60)
    win.predictions_view.inference.stop_and_wait(60)


def test_queue_walks_montgomery_by_disagreement_with_a_predictions_folder(
        montgomery_window: MainWindow, montgomery_predictions: tuple[Path, str], qtbot) -> None:
    win, (_folder, worst) = montgomery_window, montgomery_predictions
    panel = win.review_panel
    # a predictions folder and no model: the queue starts on the strategy that works with it
    assert win.loop.queue.strategy == "disagreement"
    assert panel.strategy() == "disagreement"
    qtbot.waitUntil(lambda: "in the queue" in panel.queue_info.text())
    assert "No model predictions" not in panel.queue_info.text()
    first = win.session.current.sample.id
    assert worst != first
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == worst)  # the swapped lungs come first
    assert "Dice with GT 0.000" in win.statusBar().currentMessage()
    # the worst decided, the next is the next worst by the folder's Dice
    win.actions_["review_reject"].trigger()
    assert win.review.review(worst).status is ReviewStatus.REJECTED
    scores = win.review.cached_scores()
    expected = min((sid for sid in scores if sid != worst), key=lambda sid: (scores[sid][0], sid))
    win.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: win.session.current.sample.id == expected)


def test_model_only_strategies_say_why_with_a_predictions_folder(montgomery_window: MainWindow) -> None:
    win = montgomery_window
    panel = win.review_panel
    combo = panel.queue_strategy
    panel.set_strategy("uncertainty")
    assert "uncertainty" in panel.queue_info.text() and "predictions folder" in panel.queue_info.text()
    assert "(model only)" in combo.itemText(combo.findData("uncertainty"))
    panel.set_strategy("changed")
    assert "two models" in panel.queue_info.text()
    assert "(model only)" in combo.itemText(combo.findData("changed"))
    assert "(model only)" not in combo.itemText(combo.findData("disagreement"))
    first = win.session.current.sample.id
    win.actions_["next_in_queue"].trigger()
    assert win.session.current.sample.id == first
    assert "two models" in win.statusBar().currentMessage()
