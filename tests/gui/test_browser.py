"""The sample browser: virtual table model, sort (unknown last), filters, visible-order navigation, thumbnails."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPixmap

from segstudio.core.errors import DatasetError, UnknownKeyError
from segstudio.core.paths import cache_dir
from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Problem, ProblemKind, Sample
from segstudio.datasets.registry import open_dataset
from segstudio.gui.common.qimage import qimage_to_array
from segstudio.gui.screen.browser import SampleBrowser
from segstudio.gui.screen.browser_model import (
    DICE,
    IOU,
    NAME,
    STATUS,
    SampleIdRole,
    SampleTableModel,
    SortRole,
)
from segstudio.gui.screen.thumbnails import THUMBNAIL_PX
from segstudio.workspace.records import ReviewState, ReviewStatus

SCHEMA = ClassSchema(classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "lesion", (255, 0, 0))))


class CountingReader:
    """``read_image`` that counts its calls (from any thread)."""

    def __init__(self, make: Callable[[Sample], np.ndarray]) -> None:
        self.make = make
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, _ds: Dataset, sample: Sample) -> np.ndarray:
        with self._lock:
            self.calls += 1
        return self.make(sample)


def synthetic(n: int, reader: CountingReader | None = None, *, problems_every: int = 0, root: Path = Path("/nowhere")) -> Dataset:
    """``n`` samples built in memory (no files): ids ``s/img_<i>.png``, splits alternating train/val."""
    samples = []
    for i in range(n):
        sid = f"s/img_{i}.png"
        probs = (Problem(ProblemKind.SIZE_MISMATCH, f"mask of {i} is smaller", sample_id=sid),) if (
            problems_every and i % problems_every == 0) else ()
        samples.append(Sample(id=sid, image=root / sid, split="train" if i % 2 == 0 else "val", gt=sid, problems=probs))
    read = reader or CountingReader(lambda s: np.zeros((8, 8), np.uint8))
    return Dataset(root=root, format_name="test", schema=SCHEMA, samples=samples, read_image=read,
                   read_gt=lambda _d, _s: np.zeros((8, 8), np.uint8))


@pytest.fixture
def browser(qtbot) -> SampleBrowser:
    b = SampleBrowser()
    qtbot.addWidget(b)
    b.resize(700, 500)
    return b


def _review(sid: str, status: ReviewStatus) -> ReviewState:
    return ReviewState(sample_id=sid, status=status, reviewer="ann", time=1.7e9)


# the model ------------------------------------------------------------------------------------------------------
def test_model_is_virtual_over_10000_in_memory_samples(qtbot) -> None:
    reader = CountingReader(lambda s: np.zeros((8, 8), np.uint8))
    ds = synthetic(10_000, reader, problems_every=1000)
    model = SampleTableModel()
    model.set_dataset(ds)
    assert model.rowCount() == 10_000 and model.columnCount() == 7
    last = model.index(9_999, NAME)
    assert last.data() == "img_9999.png" and last.data(SampleIdRole) == "s/img_9999.png"
    assert model.index(9_999, DICE).data() == "—"
    assert model.index(1_000, 5).data() == "1" and "smaller" in model.index(1_000, 5).data(Qt.ItemDataRole.ToolTipRole)
    assert model.row_of("s/img_1234.png") == 1234 and model.sample_id(1234) == "s/img_1234.png"
    assert model.row_of("not/there.png") == -1
    assert reader.calls == 0  # listing and text cells never decode an image


def test_showing_10000_rows_decodes_only_painted_rows(browser: SampleBrowser, qtbot) -> None:
    reader = CountingReader(lambda s: np.zeros((8, 8), np.uint8))
    browser.set_dataset(synthetic(10_000, reader))
    browser.show()
    qtbot.waitExposed(browser)
    qtbot.waitUntil(lambda: browser.model_.thumbnails.pending() == 0 and reader.calls > 0)
    rows_on_screen = browser.view.viewport().height() // browser.view.verticalHeader().defaultSectionSize() + 2
    assert 0 < reader.calls <= rows_on_screen
    assert browser.model_.thumbnails.get("s/img_0.png") is not None
    assert browser.model_.thumbnails.get("s/img_9999.png") is None


def test_setters_emit_data_changed_for_just_the_affected_cells(qtbot) -> None:
    model = SampleTableModel()
    model.set_dataset(synthetic(50))
    seen: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, _roles=(): seen.append((tl.row(), tl.column(), br.row(), br.column())))
    model.set_review("s/img_7.png", _review("s/img_7.png", ReviewStatus.FLAGGED))
    model.set_scores("s/img_9.png", 0.5, 0.33)
    model.set_scores_many({"s/img_3.png": (0.9, 0.8), "s/img_5.png": (None, None)})
    model.set_reviews({"s/img_2.png": _review("s/img_2.png", ReviewStatus.ACCEPTED), "gone.png": _review("gone.png", ReviewStatus.ACCEPTED)})
    assert seen == [(7, STATUS, 7, STATUS), (9, DICE, 9, IOU), (3, DICE, 5, IOU), (2, STATUS, 2, STATUS)]
    assert model.index(7, STATUS).data() == "flagged"
    assert model.index(9, DICE).data() == "0.500" and model.index(9, IOU).data() == "0.330"
    assert model.index(5, DICE).data() == "—" and model.index(5, DICE).data(SortRole) is None
    assert "ann" in model.index(2, STATUS).data(Qt.ItemDataRole.ToolTipRole)


# sorting --------------------------------------------------------------------------------------------------------
def _scored_browser(browser: SampleBrowser) -> dict[str, float | None]:
    browser.set_dataset(synthetic(12))
    dice = {f"s/img_{i}.png": d for i, d in enumerate([0.9, None, 0.2, 0.5, None, 0.2, 0.99, 0.1, None, 0.7, 0.0, 0.5])}
    browser.model_.set_scores_many({k: (v, None if v is None else v / (2 - v)) for k, v in dice.items()})
    return dice


def test_sort_worst_dice_first_puts_unknown_last_in_both_directions(browser: SampleBrowser) -> None:
    dice = _scored_browser(browser)
    known = {k: v for k, v in dice.items() if v is not None}
    unknown = [k for k, v in dice.items() if v is None]  # dataset order
    browser.sort_by("dice", ascending=True)
    ids = browser.visible_ids()
    assert ids == sorted(known, key=lambda k: known[k]) + unknown  # stable: ties keep dataset order
    assert ids[:4] == ["s/img_10.png", "s/img_7.png", "s/img_2.png", "s/img_5.png"]
    assert [dice[i] for i in ids[:3]] == [0.0, 0.1, 0.2]
    browser.sort_by("dice", ascending=False)
    ids = browser.visible_ids()
    assert [dice[i] for i in ids[: len(known)]] == sorted(known.values(), reverse=True)
    assert ids[len(known):] == unknown
    assert browser.sort_state() == ("dice", False)
    browser.sort_by("dataset")
    assert browser.visible_ids() == [f"s/img_{i}.png" for i in range(12)]


def test_header_click_sorts_and_name_sort_is_natural(browser: SampleBrowser, qtbot) -> None:
    dice = _scored_browser(browser)
    browser.show()
    qtbot.waitExposed(browser)
    header = browser.view.horizontalHeader()
    x = header.sectionViewportPosition(IOU) + header.sectionSize(IOU) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    ids = browser.visible_ids()
    scored = [i for i in ids if dice[i] is not None]
    assert browser.sort_state()[0] == "iou"
    assert ids[: len(scored)] == scored and [dice[i] for i in scored] == sorted(dice[i] for i in scored)  # type: ignore[type-var]
    browser.sort_by("name", ascending=True)
    assert browser.visible_ids()[:3] == ["s/img_0.png", "s/img_1.png", "s/img_2.png"]  # not img_0, img_1, img_10
    browser.sort_by("name", ascending=False)
    assert browser.visible_ids()[0] == "s/img_11.png"
    with pytest.raises(UnknownKeyError, match="dice"):
        browser.sort_by("accuracy")


def test_sort_keeps_the_current_sample_selected(browser: SampleBrowser) -> None:
    _scored_browser(browser)
    browser.select_sample("s/img_6.png")
    browser.sort_by("dice", ascending=True)
    cur = browser.view.currentIndex()
    assert cur.data(SampleIdRole) == "s/img_6.png" and browser.current_id() == "s/img_6.png"


# filters --------------------------------------------------------------------------------------------------------
def test_filters_by_status_problems_prediction_and_name(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(30, problems_every=10))
    m = browser.model_
    m.set_reviews({
        "s/img_1.png": _review("s/img_1.png", ReviewStatus.ACCEPTED),
        "s/img_2.png": _review("s/img_2.png", ReviewStatus.CORRECTED),
        "s/img_3.png": _review("s/img_3.png", ReviewStatus.REJECTED),
        "s/img_4.png": _review("s/img_4.png", ReviewStatus.FLAGGED),
        "s/img_5.png": _review("s/img_5.png", ReviewStatus.FLAGGED),
    })
    m.set_scores("s/img_12.png", 0.4, 0.25)
    m.set_predictions(["s/img_13.png", "s/img_14.png"])
    expected = {
        "all": 30, "unreviewed": 25, "accepted": 1, "corrected": 1, "rejected": 1, "flagged": 2,
        "has_problems": 3, "has_prediction": 3,
    }
    for key, count in expected.items():
        browser.set_filter(key)
        assert browser.proxy.rowCount() == count, key
    browser.set_filter("flagged")
    assert browser.visible_ids() == ["s/img_4.png", "s/img_5.png"]
    browser.set_filter("all")
    browser.set_name_filter("IMG_2")  # case-insensitive substring of the id
    assert browser.visible_ids() == ["s/img_2.png"] + [f"s/img_{i}.png" for i in range(20, 30)]
    browser.set_filter("unreviewed")
    assert browser.visible_ids() == [f"s/img_{i}.png" for i in range(20, 30)]
    qtbot.waitUntil(lambda: "showing 10" in browser.summary.text())
    with pytest.raises(UnknownKeyError, match="unreviewed"):
        browser.set_filter("nope")


def test_typing_in_the_name_box_filters_after_a_pause(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(30))
    qtbot.keyClicks(browser.name_filter, "img_1")
    qtbot.waitUntil(lambda: browser.proxy.rowCount() == 11)  # img_1, img_10..img_19


def test_summary_counts_the_whole_dataset(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(40, problems_every=20))
    m = browser.model_
    m.set_reviews({f"s/img_{i}.png": _review(f"s/img_{i}.png", ReviewStatus.ACCEPTED) for i in range(9)})
    m.set_reviews({f"s/img_{i}.png": _review(f"s/img_{i}.png", ReviewStatus.FLAGGED) for i in (10, 11, 12)})
    m.set_scores_many({"s/img_0.png": (0.5, 0.4), "s/img_1.png": (1.0, 1.0)})
    qtbot.waitUntil(lambda: browser.summary.text().startswith("12/40 reviewed"))
    text = browser.summary.text()
    assert "9 accepted" in text and "3 flagged" in text and "mean Dice 0.750 (2 scored)" in text
    assert "2 with problems" in text and "rejected" not in text
    s = m.summary()
    assert s.reviewed == 12 and s.by_status[ReviewStatus.UNREVIEWED] == 28


# navigation -----------------------------------------------------------------------------------------------------
def test_next_and_previous_follow_the_visible_order(browser: SampleBrowser) -> None:
    dice = _scored_browser(browser)
    browser.sort_by("dice", ascending=True)
    browser.set_name_filter("img_1")  # img_1, img_10, img_11
    visible = browser.visible_ids()
    assert visible == ["s/img_10.png", "s/img_11.png", "s/img_1.png"]  # 0.0, 0.5, unknown
    assert [browser.next_id(v) for v in visible] == visible[1:] + [None]
    assert [browser.previous_id(v) for v in visible] == [None] + visible[:-1]
    assert browser.next_id(None) == visible[0] and browser.previous_id(None) == visible[-1]
    # a sample the filter hides continues from its place in the sort order
    assert dice["s/img_3.png"] == 0.5 and browser.next_id("s/img_3.png") == "s/img_11.png"


def test_current_sample_stays_visible_when_it_stops_matching_the_filter(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(6))
    browser.set_filter("unreviewed")
    browser.select_sample("s/img_2.png")
    browser.model_.set_review("s/img_2.png", _review("s/img_2.png", ReviewStatus.ACCEPTED))
    assert "s/img_2.png" in browser.visible_ids()  # pinned while it is current: no jump under the user
    assert browser.next_id("s/img_2.png") == "s/img_3.png"
    browser.select_sample("s/img_3.png")
    qtbot.waitUntil(lambda: "s/img_2.png" not in browser.visible_ids())
    assert browser.previous_id("s/img_3.png") == "s/img_1.png"
    # selecting a hidden sample shows it
    assert browser.select_sample("s/img_2.png") and browser.view.currentIndex().data(SampleIdRole) == "s/img_2.png"
    assert not browser.select_sample("missing.png")


def test_click_and_keys_emit_activation_but_select_sample_does_not(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(20))
    browser.sort_by("name", ascending=False)
    browser.show()
    qtbot.waitExposed(browser)
    seen: list[str] = []
    browser.sig_sample_activated.connect(seen.append)
    browser.select_sample("s/img_5.png")
    assert seen == [] and browser.current_id() == "s/img_5.png"
    rect = browser.view.visualRect(browser.proxy.index(1, NAME))
    qtbot.mouseClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert seen == ["s/img_18.png"]  # second row of the descending name order
    qtbot.keyClick(browser.view, Qt.Key.Key_Down)
    assert seen == ["s/img_18.png", "s/img_17.png"]
    browser.select_row(3)  # a dataset row, as a click would
    assert seen[-1] == "s/img_3.png"


def test_new_dataset_resets_rows_and_keeps_the_sort(browser: SampleBrowser) -> None:
    _scored_browser(browser)
    browser.select_sample("s/img_3.png")
    browser.sort_by("name", ascending=False)
    browser.set_dataset(synthetic(5))
    assert browser.current_id() is None and not browser.view.isColumnHidden(1)  # train/val splits shown
    assert browser.visible_ids() == [f"s/img_{i}.png" for i in (4, 3, 2, 1, 0)]
    browser.set_dataset(None)
    assert browser.model_.rowCount() == 0 and browser.visible_ids() == [] and browser.next_id(None) is None


# thumbnails -----------------------------------------------------------------------------------------------------
def _files_dataset(tmp_path: Path, reader: CountingReader, n: int = 4) -> Dataset:
    root = tmp_path / "data"
    (root / "s").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        img = (rng.random((300, 200)) * 4000 + 1000).astype(np.uint16)  # 12-bit content in 16-bit PNGs
        cv2.imwrite(str(root / "s" / f"img_{i}.png"), img)
    return synthetic(n, reader, root=root)


def _read_png(s: Sample) -> np.ndarray:
    a = cv2.imread(str(s.image), cv2.IMREAD_UNCHANGED)
    assert a is not None
    return a


def _wait_thumbnails(qtbot, model: SampleTableModel, n: int) -> None:
    for r in range(n):
        model.index(r, NAME).data(Qt.ItemDataRole.DecorationRole)  # what painting a row does
    qtbot.waitUntil(lambda: all(model.thumbnails.get(model.sample_id(r)) is not None for r in range(n)))


def test_thumbnails_arrive_async_and_are_cached_on_disk(qtbot, tmp_path: Path) -> None:
    reader = CountingReader(_read_png)
    ds = _files_dataset(tmp_path, reader)
    model = SampleTableModel()
    model.set_dataset(ds)
    first = model.index(0, NAME).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(first, QPixmap)
    with qtbot.waitSignal(model.dataChanged, timeout=10_000) as blocker:
        pass  # the decoded thumbnail announces itself on the GUI thread
    assert blocker.args[0].row() == 0 and blocker.args[0].column() == NAME
    assert Qt.ItemDataRole.DecorationRole in blocker.args[2]
    _wait_thumbnails(qtbot, model, 4)
    pm = model.thumbnails.get("s/img_0.png")
    # the test images are 2:3 (portrait): the long side is the thumbnail size, the short side scaled with it
    assert pm is not None and (pm.width(), pm.height()) == (round(THUMBNAIL_PX * 2 / 3), THUMBNAIL_PX)
    pixels = qimage_to_array(pm.toImage())[..., 0]
    assert pixels.max() - pixels.min() > 100  # 16-bit content stretched, not a black tile
    assert model.index(0, NAME).data(Qt.ItemDataRole.DecorationRole).cacheKey() == pm.cacheKey()
    files = sorted((cache_dir() / "thumbnails").glob("*.png"))
    assert len(files) == 4 and reader.calls == 4
    # the conftest isolates the user's cache: it lies under this session's pytest temp folder
    assert cache_dir().resolve().is_relative_to(tmp_path.resolve().parent)

    # a second model (a new session) reads the PNGs and never decodes the images
    again = SampleTableModel()
    again.set_dataset(ds)
    _wait_thumbnails(qtbot, again, 4)
    assert reader.calls == 4

    # an edited image gets a new thumbnail
    img = np.zeros((64, 64), np.uint8)
    cv2.imwrite(str(ds.samples[1].image), img)
    third = SampleTableModel()
    third.set_dataset(ds)
    _wait_thumbnails(qtbot, third, 4)
    assert reader.calls == 5
    for m in (model, again, third):
        m.thumbnails.shutdown()


def test_broken_image_gets_a_placeholder_and_a_log_line(qtbot, tmp_path: Path, caplog) -> None:
    def make(s: Sample) -> np.ndarray:
        if s.id.endswith("_1.png"):
            raise DatasetError("Image cannot be decoded", path=s.image, fix="re-export it")
        return _read_png(s)

    reader = CountingReader(make)
    model = SampleTableModel()
    model.set_dataset(_files_dataset(tmp_path, reader, n=2))
    caplog.set_level(logging.WARNING, logger="segstudio.gui.screen.thumbnails")
    placeholder = model.index(1, NAME).data(Qt.ItemDataRole.DecorationRole)
    model.index(0, NAME).data(Qt.ItemDataRole.DecorationRole)
    with qtbot.waitSignal(model.thumbnails.sig_thumbnail_failed, timeout=10_000) as blocker:
        pass
    assert blocker.args[0] == "s/img_1.png" and "cannot be decoded" in blocker.args[1]
    broken = model.index(1, NAME).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(broken, QPixmap) and broken.cacheKey() != placeholder.cacheKey()
    assert "cannot be decoded" in model.index(1, NAME).data(Qt.ItemDataRole.ToolTipRole)
    assert any("s/img_1.png" in r.getMessage() for r in caplog.records)
    qtbot.waitUntil(lambda: model.thumbnails.get("s/img_0.png") is not None)  # the rest still works
    calls = reader.calls
    model.index(1, NAME).data(Qt.ItemDataRole.DecorationRole)  # repainting does not retry forever
    qtbot.wait(50)
    assert reader.calls == calls
    model.thumbnails.shutdown()


def test_bundled_sample_in_the_browser(browser: SampleBrowser, qtbot, sample_dataset_path: Path) -> None:
    ds = open_dataset(sample_dataset_path)
    browser.set_dataset(ds)
    browser.show()
    qtbot.waitExposed(browser)
    assert browser.model_.rowCount() == len(ds) == 8
    assert browser.visible_ids() == [s.id for s in ds.samples]
    qtbot.waitUntil(lambda: browser.model_.thumbnails.get(ds.samples[0].id) is not None, timeout=10_000)
    pm = browser.model_.thumbnails.get(ds.samples[0].id)
    assert pm is not None and (pm.width(), pm.height()) == (THUMBNAIL_PX, THUMBNAIL_PX)  # 512² X-rays
    gray = qimage_to_array(pm.toImage())[..., :3].astype(int)
    assert gray.std() > 10  # a real chest X-ray, not a blank tile
    assert browser.model_.index(0, 1).data() == (ds.samples[0].split or "—")
    assert browser.view.isColumnHidden(1) == (not any(s.split for s in ds.samples))  # no column of dashes
    qtbot.waitUntil(lambda: browser.summary.text().startswith("0/8 reviewed"))


def _proxy_rows(browser: SampleBrowser) -> list[str]:
    """What the view actually shows, row by row (the slow way)."""
    return [browser.proxy.index(r, NAME).data(SampleIdRole) for r in range(browser.proxy.rowCount())]


def test_visible_ids_is_what_the_view_shows(browser: SampleBrowser, qtbot) -> None:
    browser.set_dataset(synthetic(300, problems_every=7))
    rng = np.random.default_rng(3)
    m = browser.model_
    m.set_scores_many({f"s/img_{i}.png": (float(rng.random()), 0.5) for i in range(0, 300, 3)})
    m.set_reviews({f"s/img_{i}.png": _review(f"s/img_{i}.png", ReviewStatus.ACCEPTED) for i in range(0, 300, 5)})
    for key, text, column, asc in (("all", "", "dice", True), ("unreviewed", "1", "dice", False),
                                   ("has_problems", "", "name", False), ("accepted", "2", "status", True)):
        browser.set_filter(key)
        browser.set_name_filter(text)
        browser.sort_by(column, ascending=asc)
        assert browser.visible_ids() == _proxy_rows(browser), (key, text, column)
    browser.set_filter("unreviewed")
    browser.select_sample("s/img_5.png")  # accepted, shown because it is current
    browser.select_sample("s/img_10.png")  # also accepted; img_5 leaves on the next event-loop turn
    assert browser.visible_ids() == _proxy_rows(browser)
    qtbot.waitUntil(lambda: "s/img_5.png" not in _proxy_rows(browser))
    assert browser.visible_ids() == _proxy_rows(browser) and "s/img_10.png" in browser.visible_ids()


def test_names_that_repeat_across_folders_show_the_full_id() -> None:
    def ds(ids: list[str]) -> Dataset:
        return Dataset(root=Path("/nowhere"), format_name="test", schema=SCHEMA,
                       samples=[Sample(id=i, image=Path("/nowhere") / i) for i in ids],
                       read_image=lambda _d, _s: np.zeros((2, 2), np.uint8), read_gt=lambda _d, _s: None)

    model = SampleTableModel()
    model.set_dataset(ds(["train/a.png", "val/a.png"]))
    assert [model.index(r, NAME).data() for r in range(2)] == ["train/a.png", "val/a.png"]
    model.set_dataset(ds(["train/a.png", "val/b.png"]))
    assert [model.index(r, NAME).data() for r in range(2)] == ["a.png", "b.png"]


def test_a_narrow_name_column_drops_the_prefix_every_name_shares_before_the_part_that_differs(
        browser: SampleBrowser, qtbot) -> None:
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QStyleOptionViewItem

    from segstudio.gui.screen.name_elide import shared_prefix

    assert shared_prefix(["MCUCXR_0004_0.png", "MCUCXR_0016_0.png", "MCUCXR_0301_1.png"]) == "MCUCXR_"
    assert shared_prefix(["IMD002.bmp", "IMD003.bmp"]) == ""  # no separator in what they share
    assert shared_prefix(["train/a_1.jpg", "valid/a_1.jpg"]) == ""
    assert shared_prefix(["img_", "img_2.png"]) == ""  # would leave a name empty
    assert shared_prefix(["only_one.png"]) == ""
    ids = [f"MCUCXR_{i:04d}_0.png" for i in (4, 16, 301)]
    browser.set_dataset(Dataset(root=Path("/nowhere"), format_name="test", schema=SCHEMA,
                                samples=[Sample(id=i, image=Path("/nowhere") / i) for i in ids],
                                read_image=lambda _d, _s: np.zeros((8, 8), np.uint8), read_gt=lambda _d, _s: None))
    view = browser.view
    delegate = view.itemDelegateForColumn(NAME)
    index = browser.proxy.index(1, NAME)
    fm = view.fontMetrics()

    def shown(text_room: int) -> str:
        opt = QStyleOptionViewItem()
        opt.initFrom(view)
        opt.rect = QRect(0, 0, view.iconSize().width() + 16 + text_room, 40)
        delegate.initStyleOption(opt, index)
        return opt.text

    assert shown(fm.horizontalAdvance("MCUCXR_0016_0.png") + 20) == "MCUCXR_0016_0.png"  # fits: whole
    assert shown(fm.horizontalAdvance("…0016_0.png") + 12) == "…0016_0.png"
    narrow = shown(fm.horizontalAdvance("…0016…") + 6)
    assert narrow.startswith("…0016") and "MCUCXR" not in narrow


def test_thumbnail_cache_is_pruned_least_recently_used_first(qtbot, tmp_path: Path) -> None:
    from segstudio.gui.screen.thumbnails import prune_thumbnail_cache, thumbnail_dir

    reader = CountingReader(_read_png)
    ds = _files_dataset(tmp_path, reader, n=3)
    model = SampleTableModel()
    model.set_dataset(ds)
    _wait_thumbnails(qtbot, model, 3)
    files = sorted(thumbnail_dir().glob("*.png"))
    assert len(files) == 3
    for age, f in enumerate(files):  # files[0] used most recently, files[2] longest ago
        os.utime(f, (1e9 - age * 1000, 1e9 - age * 1000))
    # reading a thumbnail again counts as a use
    again = SampleTableModel()
    again.set_dataset(ds)
    again.index(0, NAME).data(Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: again.thumbnails.get("s/img_0.png") is not None)
    used = next(f for f in files if f.stat().st_mtime > 1.5e9)
    sizes = {f: f.stat().st_size for f in files}
    keep = sizes[used] + sizes[files[0]] if used != files[0] else sizes[used] + sizes[files[1]]
    assert prune_thumbnail_cache(max_bytes=keep) == 1
    left = set(thumbnail_dir().glob("*.png"))
    assert used in left and len(left) == 2
    assert prune_thumbnail_cache(max_bytes=10**9) == 0
    for m in (model, again):
        m.thumbnails.shutdown()
