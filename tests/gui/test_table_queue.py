"""The table and the queue (issue 21): the queue's strategies with an opened predictions folder, the sample
table's names elided in the middle and its columns remembered across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus


@pytest.fixture
def montgomery_window(qtbot, show_window, montgomery: Path, montgomery_predictions: tuple[Path, str]):
    """The main window on the real Montgomery data with a predictions folder and no model; scoring finished."""
    folder, _worst = montgomery_predictions
    win = show_window(montgomery, predictions=folder)
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
    assert "Model only" in combo.itemText(combo.findData("uncertainty"))
    panel.set_strategy("changed")
    assert "two models" in panel.queue_info.text()
    assert "Model only" in combo.itemText(combo.findData("changed"))
    assert "Model only" not in combo.itemText(combo.findData("disagreement"))
    first = win.session.current.sample.id
    win.actions_["next_in_queue"].trigger()
    assert win.session.current.sample.id == first
    assert "two models" in win.statusBar().currentMessage()


# the table ------------------------------------------------------------------------------------------------------
def _browser(qtbot, n: int = 30):
    """A browser over ``n`` in-memory samples ``s/img_<i>.png`` (no files)."""
    import numpy as np

    from segstudio.core.types import ClassInfo, ClassSchema
    from segstudio.datasets.base import Dataset, Sample
    from segstudio.gui.screen.browser import SampleBrowser

    schema = ClassSchema(classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "lesion", (255, 0, 0))))
    samples = [Sample(id=f"s/img_{i}.png", image=Path(f"/nowhere/s/img_{i}.png"), gt=f"s/img_{i}.png")
               for i in range(n)]
    ds = Dataset(root=Path("/nowhere"), format_name="test", schema=schema, samples=samples,
                 read_image=lambda _d, _s: np.zeros((8, 8), np.uint8),
                 read_gt=lambda _d, _s: np.zeros((8, 8), np.uint8))
    b = SampleBrowser()
    qtbot.addWidget(b)
    b.resize(700, 500)
    b.show()
    qtbot.waitExposed(b)
    b.set_dataset(ds)
    return b


def test_names_elide_in_the_middle_with_the_full_name_as_tooltip(qtbot) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QStyleOptionViewItem

    from segstudio.gui.screen.browser_model import NAME
    from segstudio.gui.screen.name_elide import NameDelegate

    b = _browser(qtbot)
    assert b.view.textElideMode() == Qt.TextElideMode.ElideMiddle
    opt = QStyleOptionViewItem()
    b.view.initViewItemOption(opt)  # what the name column's delegate paints with
    assert opt.textElideMode == Qt.TextElideMode.ElideMiddle
    # the name column's delegate first drops a prefix every name shares (test_browser), then leaves the view's
    # middle elision to names without one
    assert isinstance(b.view.itemDelegateForColumn(NAME), NameDelegate)
    idx = b.proxy.index(3, NAME)
    tip = str(idx.data(Qt.ItemDataRole.ToolTipRole))
    assert tip.splitlines()[0] == "s/img_3.png"
    # elided in the middle: the numbers at the end that tell samples apart stay
    fm = b.view.fontMetrics()
    elided = fm.elidedText("MCUCXR_0004_0.png", opt.textElideMode, fm.horizontalAdvance("MCUCX…0_0.png"))
    assert elided.startswith("MCUC") and elided.endswith("0.png") and "…" in elided


def test_column_widths_order_and_sort_survive_a_restart(qtbot) -> None:
    from segstudio.core.paths import config_dir
    from segstudio.gui.screen.browser import HEADER_STATE_KEY, view_settings
    from segstudio.gui.screen.browser_model import DICE, IOU, STATUS

    b = _browser(qtbot)
    b.set_score_columns_visible(True)
    hh = b.view.horizontalHeader()
    hh.resizeSection(STATUS, 151)
    hh.resizeSection(DICE, 77)
    hh.moveSection(hh.visualIndex(IOU), hh.visualIndex(STATUS))  # IoU before Review
    b.sort_by("dice", ascending=False)
    b.hide()  # the window closing: the pending save is written now
    assert view_settings().contains(HEADER_STATE_KEY)
    assert view_settings().fileName().startswith(str(config_dir()))  # the test's own config dir
    b.deleteLater()

    again = _browser(qtbot)
    again.set_score_columns_visible(True)
    hh2 = again.view.horizontalHeader()
    assert hh2.sectionSize(STATUS) == 151
    assert hh2.sectionSize(DICE) == 77
    assert hh2.visualIndex(IOU) < hh2.visualIndex(STATUS)
    assert again.sort_state() == ("dice", False)
    ids = again.visible_ids()
    assert ids and ids[0] == again.model_.sample_id(again.proxy.dataset_row(0))


def test_names_stay_readable_beside_the_scores_and_show_whole_where_there_is_room(
        show_window, montgomery: Path, montgomery_predictions: tuple[Path, str]) -> None:
    """At 1200 px the table keeps a readable floor (never a bare "…") without pushing the window wider than asked;
    in a window with room the dock widens so the Montgomery names show whole beside Dice and IoU."""
    from segstudio.gui.screen.browser_model import DICE, NAME

    folder, _worst = montgomery_predictions
    for width, whole in ((1200, False), (1600, True)):
        win = show_window(montgomery, predictions=folder, size=(width, 800))
        view = win.browser.view
        assert not view.isColumnHidden(DICE)
        fm = view.fontMetrics()
        floor = view.iconSize().width() + 8 * fm.averageCharWidth()
        need = view.iconSize().width() + fm.horizontalAdvance("MCUCXR_0004_0.png")
        assert view.horizontalHeader().sectionSize(NAME) >= (need if whole else floor)
        assert win.width() <= max(width, win.minimumSizeHint().width())
        win.close()
