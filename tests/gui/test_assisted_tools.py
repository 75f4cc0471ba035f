"""Assisted tools through the real canvas on real PH2 dermoscopy images: GrabCut from a dragged box proposes the
lesion without touching the label; Enter accepts it as one undo step, Esc rejects; locked classes hold; refine
edge proposes an eroded lung outline moved back onto the X-ray's edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from canvas_driver import drag

from segstudio.gui.main_window import MainWindow
from segstudio.gui.screen.proposals import PROPOSAL_LAYER


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b)) / max(1, int(np.count_nonzero(a | b)))


@pytest.fixture
def lesion_window(show_window, ph2: Path):  # noqa: ANN001, ANN201
    win: MainWindow = show_window(ph2, size=(1300, 860))
    ed = win.editor
    lesion = next(c.id for c in ed.target.schema if c.name != "background" and not c.ignore)
    win.class_panel.select_class(lesion)
    gt = ed.mask.plane(lesion).copy()
    assert gt.any()
    return win, lesion, gt


def _box_drag(win: MainWindow, gt: np.ndarray, pad: int = 12) -> None:
    ys, xs = np.nonzero(gt)
    h, w = gt.shape
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1, y1 = min(w - 1, int(xs.max()) + pad), min(h - 1, int(ys.max()) + pad)
    drag(win.canvas, [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1)])


def test_grabcut_proposes_then_enter_accepts_as_one_undo_step(lesion_window, qtbot) -> None:  # noqa: ANN001
    win, lesion, gt = lesion_window
    ed = win.editor
    ed.replace_mask(np.zeros_like(ed.mask.array))  # the label lost its lesion
    before = ed.mask.array.copy()
    win.actions_["tool_grabcut"].trigger()
    assert ed.tool_name == "grabcut"
    _box_drag(win, gt)
    prop = ed.proposal
    assert prop is not None and prop.class_id == lesion and prop.tool == "GrabCut"
    assert _iou(prop.plane, gt) > 0.7
    assert np.array_equal(ed.mask.array, before)  # nothing changes until it is accepted
    assert win.canvas.layer(PROPOSAL_LAYER).isVisible()
    assert "Enter accepts" in win.statusBar().currentMessage()
    win.actions_["finish_shape"].trigger()  # Enter
    assert ed.proposal is None and win.statusBar().currentMessage() == ""
    assert np.array_equal(ed.mask.plane(lesion), prop.plane & prop.region)
    win.actions_["undo"].trigger()
    assert np.array_equal(ed.mask.array, before)  # one step
    win.actions_["redo"].trigger()
    assert np.array_equal(ed.mask.plane(lesion), prop.plane & prop.region)


def test_esc_rejects_and_locks_hold(lesion_window, qtbot) -> None:  # noqa: ANN001
    win, lesion, gt = lesion_window
    ed = win.editor
    ed.replace_mask(np.zeros_like(ed.mask.array))
    before = ed.mask.array.copy()
    win.actions_["tool_grabcut"].trigger()
    _box_drag(win, gt)
    assert ed.proposal is not None
    win.actions_["cancel_shape"].trigger()  # Esc
    assert ed.proposal is None and np.array_equal(ed.mask.array, before)
    # with the lesion class locked, accepting changes nothing
    ed.set_context(ed.context.with_(locked=frozenset({lesion})))
    _box_drag(win, gt)
    assert ed.proposal is not None
    win.actions_["finish_shape"].trigger()
    assert np.array_equal(ed.mask.array, before)


def test_refine_edge_proposes_the_outline_back_on_the_edge(show_window, montgomery: Path, qtbot,
                                                           monkeypatch) -> None:  # noqa: ANN001
    """On a real chest X-ray: the left lung's label eroded by 10 px, refine edge (radius 12) proposes an outline
    much closer to the lung's; accepting it puts it in the label."""
    import cv2
    from PySide6.QtWidgets import QInputDialog

    win: MainWindow = show_window(montgomery, size=(1300, 860))
    ed = win.editor
    lesion = next(c.id for c in ed.target.schema if c.name == "left lung")
    win.class_panel.select_class(lesion)
    gt = ed.mask.plane(lesion).copy()
    eroded = cv2.erode(gt.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    m = ed.mask.array.copy()
    m[gt & ~eroded] = 0
    ed.replace_mask(m)
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *a, **k: (12, True)))
    win.actions_["refine_edge"].trigger()
    prop = ed.proposal
    assert prop is not None and prop.tool == "Refine edge"
    assert _iou(prop.plane, gt) > _iou(eroded, gt) + 0.05
    u8 = eroded.astype(np.uint8)
    outline = (u8 - cv2.erode(u8, np.ones((3, 3), np.uint8))).astype(bool)
    far = cv2.distanceTransform((~outline).astype(np.uint8), cv2.DIST_L2, 5) > 12 + 1.5
    assert not ((prop.plane ^ eroded) & far).any()  # nothing changes beyond the radius
    win.actions_["finish_shape"].trigger()
    assert _iou(ed.mask.plane(lesion), gt) > _iou(eroded, gt) + 0.05


def test_tool_options_panel_sets_the_tools(show_window, montgomery: Path, qtbot) -> None:
    """The Tool Options dock drives the tool context: the magic wand's tolerance (in shades on screen, so the
    window/level applies), connectivity, "paint only inside" (which the brush then obeys) and GrabCut's rounds."""
    from canvas_driver import drag as stroke

    win: MainWindow = show_window(montgomery, size=(1300, 860))
    ed, opts = win.editor, win.tool_options
    assert win.docks.tool_options.widget() is opts
    ids = {c.name: c.id for c in ed.target.schema}
    assert opts.inside.findData(ids["left lung"]) > 0  # the classes of the open dataset
    opts.wand.setChecked(True)
    opts.tolerance.setValue(12)
    opts.connectivity.setCurrentIndex(opts.connectivity.findData(8))
    opts.grabcut_iterations.setValue(4)
    assert ed.context.tolerance == 12.0 and ed.context.connectivity == 8 and ed.grabcut_iterations == 4
    # the wand floods by the shades shown: a flat grey display makes one click take the whole image
    win.actions_["tool_fill"].trigger()
    win.class_panel.select_class(ids["right lung"])
    h, w = ed.mask.shape
    shown = win.canvas.display_array()
    assert shown is not None
    win.canvas.set_image(np.full_like(shown, 128))
    before = ed.mask.array.copy()
    stroke(win.canvas, [(w // 2, 5)])
    assert np.count_nonzero(ed.mask.array == ids["right lung"]) > 0.9 * h * w
    win.actions_["undo"].trigger()
    assert np.array_equal(ed.mask.array, before)
    opts.wand.setChecked(False)
    assert ed.context.tolerance is None
    # paint only inside the left lung: a brush stroke across the image changes no other class's pixels
    opts.inside.setCurrentIndex(opts.inside.findData(ids["left lung"]))
    assert ed.context.paint_inside == ids["left lung"]
    win.actions_["tool_brush"].trigger()
    win.class_panel.select_class(ids["right lung"])
    stroke(win.canvas, [(10, h // 2), (w // 2, h // 2), (w - 10, h // 2)])
    changed = ed.mask.array != before
    assert changed.any() and np.all(before[changed] == ids["left lung"])


def test_live_wire_follows_the_edge_and_closes_into_a_proposal(show_window, montgomery: Path, qtbot) -> None:
    """Twelve clicks around a real lung's outline; the path between them follows the X-ray's edges; Enter
    closes it into a proposal close to the lung, Enter again accepts it, Esc drops an outline in progress."""
    import cv2

    win: MainWindow = show_window(montgomery, size=(1300, 860))
    ed = win.editor
    lung = next(c.id for c in ed.target.schema if c.name == "left lung")
    win.class_panel.select_class(lung)
    gt = ed.mask.plane(lung).copy()
    ed.replace_mask(np.zeros_like(ed.mask.array))
    win.actions_["tool_livewire"].trigger()
    contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=len)[:, 0, :]
    anchors = outline[:: len(outline) // 12][:12]
    for x, y in anchors:
        drag(win.canvas, [(float(x), float(y))])
    assert ed.gesture_active and ed.proposal is None
    win.actions_["finish_shape"].trigger()  # Enter closes the outline
    prop = ed.proposal
    assert prop is not None and prop.tool == "Live-wire" and _iou(prop.plane, gt) > 0.85
    assert not ed.mask.array.any()
    win.actions_["finish_shape"].trigger()  # Enter again accepts
    assert _iou(ed.mask.plane(lung), gt) > 0.85
    # an outline in progress: Esc drops it, no proposal
    for x, y in anchors[:4]:
        drag(win.canvas, [(float(x), float(y))])
    win.actions_["cancel_shape"].trigger()
    assert not ed.gesture_active and ed.proposal is None


def test_a_box_under_8_px_proposes_nothing_and_says_how_to_draw_one(lesion_window) -> None:  # noqa: ANN001
    """GrabCut and predict-here take a box of at least 8 px each way, clipped to the image; a smaller one (or one
    off the image) leaves the label and any proposal alone and tells the user what to drag."""
    win, _lesion, _gt = lesion_window
    ed = win.editor
    asked = []
    ed.predict_here_hook = lambda image, box, done: asked.append(box) or True
    h, w = ed.mask.shape
    before = ed.mask.array.copy()
    messages: list[str] = []
    ed.sig_proposal_changed.connect(messages.append)
    assert ed.propose_grabcut((10.0, 10.0, 15.0, 40.0)) is None
    assert messages[-1].startswith("GrabCut: drag a box around the object")
    assert ed.predict_here((w - 4.0, 10.0, w + 40.0, 60.0)) is False  # 4 px of it on the image
    assert messages[-1].startswith("Predict here: drag a box")
    assert asked == [] and ed.proposal is None and np.array_equal(ed.mask.array, before)
    # a box past the image's edge is clipped to it
    assert ed.predict_here((-20.0, -20.0, 30.0, 40.0)) is True
    assert asked == [(0, 0, 40, 30)]  # (y0, x0, y1, x1)
