"""Click to Segment (SAM) through the real window and canvas, on a real PH2 image, with a tiny randomly initialised
SAM of the real architecture saved as a .pth: the embedding is computed in the background once and then served
from the cache; a click proposes, a second click refines the same proposal (the logits go back in), Enter
accepts as one undo step, Esc rejects, locks and "paint only inside" hold; without a model the tool says how to
choose one. The random model's masks mean nothing: only the mechanics are tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from canvas_driver import drag, view_pos
from PySide6.QtCore import Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segstudio.gui.main_window import MainWindow
from segstudio.gui.screen.proposals import PROPOSAL_LAYER

pytest.importorskip("segment_anything")


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segstudio.engine.promptable_export import build_random_sam, save_checkpoint

    sam = build_random_sam("vit_b", encoder_depth=2, embed_dim=64, num_heads=2, seed=3)
    return save_checkpoint(sam, tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the tool's modal boxes would have said (they never open in a test)."""
    seen: list[str] = []
    monkeypatch.setattr("segstudio.gui.screen.sam_tool.show_info", lambda _title, text: seen.append(text))
    monkeypatch.setattr("segstudio.gui.screen.sam_tool.show_error",
                        lambda _title, text, details="": seen.append(text))
    return seen


@pytest.fixture
def sam_window(show_window, ph2: Path, tiny_sam: Path, notes: list[str], qtbot):  # noqa: ANN001, ANN201
    """The window on PH2 with the lesion class selected, an empty label, the tiny model chosen and the tool on
    (its embedding computed)."""
    win: MainWindow = show_window(ph2, size=(1300, 860))
    ed = win.editor
    lesion = next(c.id for c in ed.target.schema if c.name != "background" and not c.ignore)
    win.class_panel.select_class(lesion)
    gt = ed.mask.plane(lesion).copy()
    ed.replace_mask(np.zeros_like(ed.mask.array))
    win.sam.set_model_path(str(tiny_sam))
    assert win.tool_options.sam_model.text() == "tiny_sam.pth"
    win.actions_["tool_sam"].trigger()
    assert ed.tool_name == "sam"
    assert "Computing image embedding…" in win.statusBar().currentMessage()
    _wait_ready(win, qtbot)
    yield win, lesion, gt
    win.sam.stop_and_wait(60)


def _wait_ready(win: MainWindow, qtbot: Any) -> None:
    qtbot.waitUntil(lambda: win.sam.current_embedding() is not None and win.sam.model is not None
                    and not (win.sam._worker is not None and win.sam._worker.running), timeout=120_000)


def click(win: MainWindow, x: float, y: float, *, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
          modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A click at image point (x, y) with a button and modifier keys."""
    vp = win.canvas.viewport()
    pos = view_pos(win.canvas, x + 0.5, y + 0.5)
    for kind, buttons in ((QMouseEvent.Type.MouseButtonPress, button),
                          (QMouseEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        ev = QMouseEvent(kind, pos, pos, button, buttons, modifiers)
        QApplication.sendEvent(vp, ev)


def _centre(gt: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(gt)
    return int(np.median(xs)), int(np.median(ys))


def test_the_embedding_is_computed_once_then_served_from_the_cache(sam_window, qtbot) -> None:  # noqa: ANN001
    win, _lesion, _gt = sam_window
    sam = win.sam
    assert sam.embeddings_computed == 1 and len(sam.cache) == 1
    assert "ready" in win.statusBar().currentMessage()
    win.actions_["tool_brush"].trigger()
    win.actions_["tool_sam"].trigger()  # the same image again: no worker, no new embedding
    assert sam._worker is None and sam.embeddings_computed == 1
    assert sam.current_embedding() is not None and sam.cache.stats.hits >= 1
    # another display of the image (inverted) is other pixels: embedded again, and both are kept
    win.actions_["invert"].trigger()
    win.actions_["tool_brush"].trigger()
    win.actions_["tool_sam"].trigger()
    _wait_ready(win, qtbot)
    assert sam.embeddings_computed == 2 and len(sam.cache) == 2
    win.actions_["invert"].trigger()
    assert sam.current_embedding() is not None and sam.embeddings_computed == 2


def test_click_proposes_a_second_click_refines_and_enter_accepts_as_one_undo_step(sam_window, qtbot,
                                                                                 monkeypatch) -> None:  # noqa: ANN001
    win, lesion, gt = sam_window
    ed, sam = win.editor, win.sam
    calls: list[dict] = []
    decode = sam.model.decode

    def spy(emb: Any, **kw: Any) -> Any:
        calls.append(kw)
        return decode(emb, **kw)

    monkeypatch.setattr(sam.model, "decode", spy)
    before = ed.mask.array.copy()
    x, y = _centre(gt)
    click(win, x, y)
    first = ed.proposal
    assert first is not None and first.class_id == lesion and first.tool == "Click to Segment (SAM)"
    assert first.plane.shape == gt.shape and first.plane.any()
    shown = win.canvas.layer(PROPOSAL_LAYER).array
    assert shown is not None and (shown[..., 3] > 0).sum() >= first.plane.sum()  # the hatched overlay
    assert np.array_equal(ed.mask.array, before)  # nothing changes until it is accepted
    assert "Enter accepts" in win.statusBar().currentMessage()
    assert calls[-1]["points"] == [(float(x), float(y), True)] and calls[-1]["previous_low_res_logits"] is None
    # a second click (Shift: not the object) refines the same proposal: both points, the last logits fed back
    click(win, 20, 20, modifiers=Qt.KeyboardModifier.ShiftModifier)
    points, box, low = sam.prompts
    assert points == [(float(x), float(y), True), (20.0, 20.0, False)] and box is None
    assert calls[-1]["previous_low_res_logits"] is not None
    second = ed.proposal
    assert second is not None and not np.array_equal(second.plane, first.plane)
    # a right click is a negative point too
    click(win, 30, 30, button=Qt.MouseButton.RightButton)
    assert sam.prompts[0][-1] == (30.0, 30.0, False)
    third = ed.proposal
    assert third is not None
    win.actions_["finish_shape"].trigger()  # Enter
    assert ed.proposal is None and win.canvas.layer(PROPOSAL_LAYER).array is None
    assert np.array_equal(ed.mask.plane(lesion), third.plane)  # no box: the proposal adds the class's pixels
    assert sam.prompts == ([], None, None)  # the next click starts a new object
    win.actions_["undo"].trigger()
    assert np.array_equal(ed.mask.array, before)  # one step
    win.actions_["redo"].trigger()
    assert np.array_equal(ed.mask.plane(lesion), third.plane)


def test_esc_rejects_a_box_proposal_and_locks_hold(sam_window, qtbot) -> None:  # noqa: ANN001
    win, lesion, gt = sam_window
    ed, sam = win.editor, win.sam
    before = ed.mask.array.copy()
    ys, xs = np.nonzero(gt)
    box = (int(xs.min()) - 10, int(ys.min()) - 10, int(xs.max()) + 10, int(ys.max()) + 10)
    drag(win.canvas, [(box[0], box[1]), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), (box[2], box[3])])
    prop = ed.proposal
    assert prop is not None and sam.prompts[1] is not None
    assert prop.region[box[1] + 1:box[3] - 1, box[0] + 1:box[2] - 1].all()  # inside the box the class is decided
    win.actions_["cancel_shape"].trigger()  # Esc
    assert ed.proposal is None and np.array_equal(ed.mask.array, before) and sam.prompts == ([], None, None)
    # the lesion class locked: accepting changes nothing
    ed.set_context(ed.context.with_(locked=frozenset({lesion})))
    click(win, *_centre(gt))
    assert ed.proposal is not None and ed.proposal.plane.any()
    win.actions_["finish_shape"].trigger()
    assert np.array_equal(ed.mask.array, before)


def test_paint_only_inside_holds(sam_window, qtbot) -> None:  # noqa: ANN001
    """With "paint only inside" the lesion, a proposal of the background only changes lesion pixels."""
    win, lesion, gt = sam_window
    ed = win.editor
    ed.replace_mask(np.where(gt, lesion, 0).astype(ed.mask.dtype))
    before = ed.mask.array.copy()
    bg = next(c.id for c in ed.target.schema if c.name == "background")
    win.class_panel.select_class(bg)
    opts = win.tool_options
    opts.inside.setCurrentIndex(opts.inside.findData(lesion))
    assert ed.context.paint_inside == lesion and ed.context.class_id == bg
    click(win, *_centre(gt))
    assert ed.proposal is not None and ed.proposal.plane.any()
    win.actions_["finish_shape"].trigger()
    changed = ed.mask.array != before
    assert np.all(before[changed] == lesion)


def test_without_a_model_the_tool_says_how_to_choose_one(show_window, ph2: Path, notes: list[str],
                                                          qtbot) -> None:  # noqa: ANN001
    win: MainWindow = show_window(ph2, size=(1300, 860))
    assert win.sam.model_path == "" and win.tool_options.sam_model.text() == "(none chosen)"
    win.actions_["tool_sam"].trigger()
    assert notes and "Load Promptable Model" in notes[-1] and "downloads nothing" in notes[-1]
    click(win, 100, 100)
    assert len(notes) == 2 and win.editor.proposal is None and win.sam._worker is None


def test_a_bad_model_file_is_reported_and_the_choice_is_remembered(show_window, ph2: Path, notes: list[str],
                                                                    tmp_path: Path, qtbot) -> None:  # noqa: ANN001
    from segstudio.core.settings import load_settings

    bad = tmp_path / "not_sam.pth"
    bad.write_bytes(b"garbage" * 100)
    win: MainWindow = show_window(ph2, size=(1300, 860))
    win.sam.set_model_path(str(bad))
    assert load_settings().assist.promptable_model == str(bad)  # remembered at once
    win.actions_["tool_sam"].trigger()
    qtbot.waitUntil(lambda: bool(notes), timeout=60_000)
    assert "cannot be read as a PyTorch checkpoint" in notes[-1] and "not_sam.pth" in notes[-1]
    assert win.editor.proposal is None
