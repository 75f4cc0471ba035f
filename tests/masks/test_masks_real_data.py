"""Editing on real Montgomery lung masks: the 'lungs: 2' clean-up and exact undo on real shapes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core.types import ClassSchema
from segstudio.masks import (
    FillTool,
    LabelMask,
    PointerEvent,
    ToolContext,
    create_tool,
    fill_holes,
    keep_largest,
)

LUNG = ClassSchema.from_names(["background", "lung"])


def load_lungs(montgomery: Path) -> tuple[np.ndarray, np.ndarray]:
    masks = sorted((montgomery / "masks").glob("MCUCXR_*.png"))
    if not masks:
        pytest.fail(f"no MCUCXR masks under {montgomery / 'masks'}")
    m = cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE)
    img = cv2.imread(str(montgomery / "cxr" / masks[0].name), cv2.IMREAD_GRAYSCALE)
    assert m is not None and img is not None
    return (m >= 128).astype(np.uint8), img


@pytest.mark.shared
def test_keep_two_lungs_removes_stray_strokes_and_undo_is_exact(montgomery):
    lungs, _ = load_lungs(montgomery)
    mask = LabelMask(lungs, LUNG)
    far = cv2.dilate(lungs, np.ones((41, 41), np.uint8)) == 0  # background well away from both lungs
    ys, xs = np.nonzero(far)
    brush = create_tool("brush", mask, ToolContext(class_id=1, size=7))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ys), 5, replace=False):
        x, y = float(xs[i]) + 0.5, float(ys[i]) + 0.5
        brush.press(PointerEvent(x, y))
        brush.release(PointerEvent(x, y))
    assert (mask.array == 1).sum() > lungs.sum()
    keep_largest(mask, class_id=1, k=2)
    assert np.array_equal(mask.array, lungs)
    for _ in range(6):
        mask.undo()
    assert np.array_equal(mask.array, lungs) and not mask.can_undo


@pytest.mark.shared
def test_fill_holes_and_wand_on_a_real_xray(montgomery):
    lungs, img = load_lungs(montgomery)
    holed = lungs.copy()
    ys, xs = np.nonzero(cv2.erode(lungs, np.ones((25, 25), np.uint8)))
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    holed[y - 4 : y + 5, x - 4 : x + 5] = 0
    mask = LabelMask(holed, LUNG)
    fill_holes(mask, class_id=1)
    assert np.array_equal(mask.array, lungs | holed)
    mask.undo()
    # the wand grows only through pixels near the seed's intensity and never leaves the seed's label
    wand = FillTool(mask, ToolContext(class_id=1, tolerance=12), image=img)
    before = mask.array.copy()
    wand.press(PointerEvent(5.5, 5.5))
    grown = (mask.array == 1) & (before == 0)
    seed_val = int(img[5, 5])
    assert grown.any() and (np.abs(img[grown].astype(int) - seed_val) <= 12).all()
