"""A long editing session through the real window (issue 13): thousands of brush strokes across hundreds of
images keep memory bounded and every autosave intact.

``make stress``: 10,000 strokes across 200 images (50 per image); ``make test``: 240 strokes across 24 images.
The RSS is read from /proc after a warm-up tenth of the images and at the end; the figures are
``long_session.rss_end_mib`` and ``long_session.rss_growth_mib``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import FULL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gui"))
from canvas_driver import drag  # noqa: E402

IMAGES = 200 if FULL else 24
STROKES_PER_IMAGE = 50 if FULL else 10
SIZE = 768
#: Growth allowed between the warm-up point and the end. Undo history is bounded by its memory budget and
#: prefetch/thumbnail caches by their sizes; a leak of one mask per image would add 200 × 0.56 MiB = 112 MiB.
RSS_GROWTH_BUDGET_MIB = 64


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dataset(root: Path, n: int) -> Path:
    """A paired-folder dataset of ``n`` synthetic 768² images with three-class index masks."""
    rng = np.random.default_rng(13)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps({"classes": [
        {"id": 0, "name": "background"}, {"id": 1, "name": "left"}, {"id": 2, "name": "right"}]}))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(n):
        img = (rng.random((SIZE, SIZE)) * 60 + 100).astype(np.uint8)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cx, cy = 200 + 20 * (i % 5), 380
        mask[(xx - cx) ** 2 / 120**2 + (yy - cy) ** 2 / 250**2 < 1] = 1
        mask[(xx - (SIZE - cx)) ** 2 / 120**2 + (yy - cy) ** 2 / 250**2 < 1] = 2
        cv2.imwrite(str(root / "images" / f"img{i:04d}.png"), img)
        cv2.imwrite(str(root / "masks" / f"img{i:04d}.png"), mask)
    return root


@pytest.mark.slow
def test_long_session_keeps_memory_bounded_and_autosaves_intact(qtbot, tmp_path: Path, figures) -> None:
    from PySide6.QtWidgets import QApplication

    from segstudio.gui.main_window import MainWindow

    root = _dataset(tmp_path / "long", IMAGES)
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    ds = win.open_dataset(root)
    assert ds is not None and len(ds.samples) == IMAGES
    ids = [s.id for s in ds.samples]
    win.tools.set_tool("brush")
    win.brush_size.setValue(14)
    rng = random.Random(13)
    expected: dict[str, str] = {}  # digests, not arrays: the test must not be what grows
    strokes = 0
    rss_warm = None
    for n, sid in enumerate(ids):
        win.navigation.go_to_sample(sid)
        qtbot.waitUntil(lambda sid=sid: win.editor.target is not None and win.editor.target.sample_id == sid,
                        timeout=20_000)
        for k in range(STROKES_PER_IMAGE):
            win.class_panel.select_class(1 + k % 2)
            x, y = rng.uniform(40, SIZE - 140), rng.uniform(40, SIZE - 140)
            drag(win.canvas, [(x + 12 * j, y + 7 * j) for j in range(8)])
            strokes += 1
            if k % 20 == 19:  # the autosave timer firing mid-image (every 10 s in real use)
                win.navigation._on_autosave_timeout()
        expected[sid] = hashlib.sha256(np.ascontiguousarray(win.editor.mask.array).tobytes()).hexdigest()
        QApplication.processEvents()
        if n + 1 == max(2, IMAGES // 10):
            gc.collect()
            rss_warm = _rss_mib()
    win.navigation.save_current()
    QApplication.processEvents()
    gc.collect()
    rss_end = _rss_mib()
    assert rss_warm is not None

    ws = win.review.workspace
    assert ws is not None
    for sid, digest in expected.items():
        latest = ws.versions.load_latest(sid)
        assert latest is not None, f"{sid}: its edits were never saved"
        saved = hashlib.sha256(np.ascontiguousarray(latest).tobytes()).hexdigest()
        assert saved == digest, f"{sid}: the saved version is not the mask as it was left"
    assert ws.journal.pending() == [], "a clean save leaves no recovery journal behind"
    win.close()

    growth = rss_end - rss_warm
    figures.set("long_session.strokes", strokes)
    figures.set("long_session.images", IMAGES)
    figures.set("long_session.rss_end_mib", round(rss_end, 1))
    figures.set("long_session.rss_growth_mib", round(growth, 1))
    assert strokes == IMAGES * STROKES_PER_IMAGE
    assert growth < RSS_GROWTH_BUDGET_MIB, f"RSS grew {growth:.0f} MiB over the session (end {rss_end:.0f} MiB)"
