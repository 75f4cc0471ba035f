"""The "next to review" queue in the window: the strategy chosen in the Review panel orders the samples by the
model's figures, Q goes to the next one, decided samples leave the queue."""

from __future__ import annotations

from segstudio.gui.main_window import MainWindow
from segstudio.gui.screen.review_queue import STRATEGY_STATE_KEY
from segstudio.workspace import ReviewStatus
from segstudio.workspace.queue import MODEL_METRICS_KEY


def _figures(window: MainWindow) -> list[str]:
    """Model figures for every sample, as the app writes them when it predicts: sample k has uncertainty k/10,
    Dice 1 - k/20 for k < 4 (the rest are as if unscored) and change (k % 3) / 10."""
    ws, ds = window.review.workspace, window.session.dataset
    ids = [s.id for s in ds.samples]
    for k, sid in enumerate(ids):
        ws.metrics.put(sid, key=MODEL_METRICS_KEY, data={"uncertainty": k / 10, "change": (k % 3) / 10},
                       mean_dice=1 - k / 20 if k < 4 else None, suspicion=k / 10)
    return ids


def test_queue_is_empty_until_the_model_has_predicted(window: MainWindow) -> None:
    assert "predict the images" in window.review_panel.queue_info.text()
    first = window.session.current.sample.id
    window.actions_["next_in_queue"].trigger()
    assert window.session.current.sample.id == first
    assert "predict the images" in window.statusBar().currentMessage()


def test_q_walks_the_queue_of_the_chosen_strategy_and_decided_samples_leave_it(window: MainWindow, qtbot) -> None:
    ids = _figures(window)
    panel = window.review_panel
    panel.set_strategy("uncertainty")
    window.loop.update_queue_info()
    assert panel.queue_info.text().startswith(f"{len(ids)} in the queue")
    window.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: window.session.current.sample.id == ids[-1])  # the most uncertain
    assert "uncertainty 0.700" in window.statusBar().currentMessage()
    window.actions_["review_accept"].trigger()
    assert window.review.review(ids[-1]).status is ReviewStatus.ACCEPTED
    window.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: window.session.current.sample.id == ids[-2])
    # another strategy, remembered by the workspace
    panel.set_strategy("disagreement")
    assert window.review.workspace.state.get(STRATEGY_STATE_KEY) == "disagreement"
    window.actions_["next_in_queue"].trigger()
    qtbot.waitUntil(lambda: window.session.current.sample.id == ids[3])  # lowest Dice among the scored ones
    window.actions_["next_in_queue"].trigger()  # the sample on screen is skipped: the next worst
    qtbot.waitUntil(lambda: window.session.current.sample.id == ids[2])
    # the bundled sample is fully labelled: no pseudo-label candidates
    panel.set_strategy("pseudo-labels")
    assert "No unlabelled image" in panel.queue_info.text()
