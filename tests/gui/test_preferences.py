"""Edit → Preferences and the getting-started tour."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QWidget

from segstudio.core.settings import AppSettings, dataset_key, load_settings, save_settings
from segstudio.core.types import ClassSchema
from segstudio.gui.actions import ACTIONS, build_actions
from segstudio.gui.window.preferences import apply_shortcuts
from segstudio.gui.window.preferences_dialog import PreferencesDialog


def _idle_handlers() -> dict[str, object]:
    """A handler for every action of the table, doing nothing."""
    return {s.name: lambda *_a: None for s in ACTIONS}


def test_dialog_edits_land_in_result_settings(qtbot) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    actions = build_actions(host, _idle_handlers())
    schema = ClassSchema.from_names(["background", "left lung", "right lung"])
    dlg = PreferencesDialog(AppSettings(), schema=schema, dataset_root="/data/mc", actions=actions)
    qtbot.addWidget(dlg)
    applied: list[AppSettings] = []
    dlg.sig_applied.connect(applied.append)

    dlg.set_class_colour("left lung", (10, 20, 30))
    assert dlg.class_colours()["left lung"] == (10, 20, 30)
    assert dlg.class_colours()["right lung"] != (10, 20, 30)
    dlg.opacity.setValue(80)
    dlg.mask_style.setCurrentIndex(dlg.mask_style.findData("contour"))
    dlg.autosave.setValue(30)
    dlg.reviewer.setText("  Dr Ada ")
    dlg.threads.setValue(3)
    dlg.ws_radios["user_data"].setChecked(True)
    assert dlg.set_shortcut("save", "Ctrl+Shift+S")
    # "A" is Accept's: refused, with a message naming the holder, and nothing changed
    assert not dlg.set_shortcut("export", "A")
    assert "Accept" in dlg.shortcut_message.text()
    assert not dlg.set_shortcut("export", "3")  # class keys are taken too
    assert dlg.shortcut("export") == ("Ctrl+E",)

    s = dlg.result_settings()
    assert s.colours.by_dataset == {dataset_key("/data/mc"): {"left lung": (10, 20, 30)}}
    assert s.overlay.opacity == 0.8 and s.overlay.contour_only
    assert (s.autosave_s, s.reviewer, s.compute.threads, s.workspace.location) == (30, "Dr Ada", 3, "user_data")
    assert s.shortcuts == {"save": ("Ctrl+Shift+S",)}

    dlg.apply()
    assert applied == [s]
    apply_shortcuts(actions, s.shortcuts)
    assert actions["save"].shortcut().toString() == "Ctrl+Shift+S"
    dlg.reset_all_shortcuts()
    assert dlg.result_settings().shortcuts == {}
    apply_shortcuts(actions, {})
    assert actions["save"].shortcut().toString() == "Ctrl+S"


def test_class_wide_colour_and_reset(qtbot) -> None:
    schema = ClassSchema.from_names(["bg", "lesion"])
    start = AppSettings().colours
    dlg = PreferencesDialog(AppSettings(), schema=schema)  # no dataset root: the pick is for the class name
    qtbot.addWidget(dlg)
    dlg.set_class_colour("lesion", (1, 2, 3))
    assert dlg.result_settings().colours.by_class == {"lesion": (1, 2, 3)}
    dlg.reset_colours.click()
    assert dlg.result_settings().colours == start


def test_dialog_without_schema_or_actions_still_works(qtbot, tmp_path: Path) -> None:
    s = AppSettings(reviewer="x", shortcuts={"next": ("J",)})
    dlg = PreferencesDialog(s, schema=None, actions=None)
    qtbot.addWidget(dlg)
    assert dlg.findChild(QLabel, "prefsNoSchema") is not None
    assert dlg.shortcut("next") == ("J",)
    out = dlg.result_settings()
    assert out == s
    save_settings(out, tmp_path / "s.json")
    assert load_settings(tmp_path / "s.json") == s


def test_tour_walks_five_steps_on_the_window_and_does_not_block_it(window, qtbot) -> None:
    from segstudio.gui.window.tour import Tour

    tour = Tour(window)
    done: list[bool] = []
    tour.sig_finished.connect(done.append)
    tour.start()
    b = tour.bubble
    assert b.isVisible() and b.parent() is window and not b.isWindow()  # a child: the rest takes input
    assert tour.anchor_widget("open") is not None and tour.highlight.isVisible()
    assert window.geometry().contains(b.geometry().translated(window.pos())) or b.x() >= 0
    titles = []
    for i in range(5):
        assert tour.index == i and "of 5" in b.counter.text()
        titles.append(b.title.text())
        b.next.click()
    assert [t.split(" ", 1)[1] for t in titles] == ["Open a dataset", "Compare", "Correct", "Retrain", "Export"]
    assert done == [True] and not b.isVisible() and not tour.active
    assert window.settings.show_tour  # nothing ticked: still shown at start


def test_tour_back_skip_and_dont_show_again_persists(window, qtbot) -> None:
    from segstudio.gui.window.tour import Tour

    tour = Tour(window)
    done: list[bool] = []
    tour.sig_finished.connect(done.append)
    tour.start()
    assert not tour.bubble.back.isEnabled()
    tour.bubble.next.click()
    tour.bubble.back.click()
    assert tour.index == 0
    tour.bubble.dont_show.setChecked(True)
    tour.bubble.skip.click()
    assert done == [False] and not tour.bubble.isVisible()
    assert window.settings.show_tour is False
    assert load_settings().show_tour is False
    again = Tour(window)  # Help → Getting Started Tour still works, and shows the box ticked
    again.start()
    assert again.bubble.isVisible() and again.bubble.dont_show.isChecked()
    again.skip()


def test_tour_anchors_by_mapping_and_missing_ones_centre(window, qtbot) -> None:
    from segstudio.gui.window.tour import Tour

    tour = Tour(window, anchors={"open": window.browser, "compare": "noSuchWidget"})
    tour.start()
    assert tour.anchor_widget("open") is window.browser
    tour.next()
    assert tour.anchor_widget("compare") is None and not tour.highlight.isVisible()
    assert tour.bubble.arrow_side == ""
    tour.skip()


def test_every_action_needs_a_handler_and_every_handler_an_action(qtbot) -> None:
    import pytest

    host = QWidget()
    qtbot.addWidget(host)
    handlers = _idle_handlers()
    del handlers["save"]
    with pytest.raises(ValueError, match="save"):
        build_actions(host, handlers)
    with pytest.raises(ValueError, match="no_such_action"):
        build_actions(host, {**_idle_handlers(), "no_such_action": lambda: None})
