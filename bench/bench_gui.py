"""Review-canvas figures on a synthetic 2048² dataset (written to a temp dir in the class-folders layout)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Figure, median, percentile

PREFIX = "gui"
N_IMAGES = 6
SIZE = 2048


def _make_dataset(root: Path) -> tuple[Path, Path]:
    import cv2

    data, preds = root / "data", root / "preds"
    for sub in ("images", "left", "right"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    preds.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(N_IMAGES):
        img = (rng.random((SIZE // 16, SIZE // 16)) * 255).astype(np.uint8)
        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        left = ((xx - 700 - 10 * i) ** 2 / 300**2 + (yy - 1000) ** 2 / 600**2) < 1
        right = ((xx - 1350) ** 2 / 300**2 + (yy - 1000 - 10 * i) ** 2 / 600**2) < 1
        name = f"img{i:02d}.png"
        cv2.imwrite(str(data / "images" / name), img)
        cv2.imwrite(str(data / "left" / name), left.astype(np.uint8) * 255)
        cv2.imwrite(str(data / "right" / name), right.astype(np.uint8) * 255)
        pred = np.zeros((SIZE, SIZE), np.uint8)
        pred[np.roll(left, 15, axis=1)] = 1
        pred[np.roll(right, -15, axis=0)] = 2
        cv2.imwrite(str(preds / name), pred)
    (data / "classes.json").write_text(json.dumps({
        "images": "images",
        "classes": [{"id": 0, "name": "background", "colour": [0, 0, 0]},
                    {"id": 1, "name": "left", "colour": [60, 160, 255], "folder": "left"},
                    {"id": 2, "name": "right", "colour": [255, 140, 40], "folder": "right"}],
    }))
    return data, preds


def _window(tmp: Path):  # noqa: ANN202
    for var in ("SEGSTUDIO_CONFIG_DIR", "SEGSTUDIO_STATE_DIR", "SEGSTUDIO_CACHE_DIR", "SEGSTUDIO_DATA_DIR"):
        os.environ[var] = str(tmp / var.lower())
    from PySide6.QtWidgets import QApplication

    from segstudio.core.settings import AppSettings
    from segstudio.gui.app import get_app
    from segstudio.gui.main_window import MainWindow

    get_app()
    data, preds = _make_dataset(tmp)
    win = MainWindow(settings=AppSettings())
    win.resize(1400, 900)
    win.show()
    QApplication.processEvents()
    win.open_dataset(data, format_name="class-folders", predictions=preds)
    win.review.wait_for_scoring(120000)
    QApplication.processEvents()
    win._bench_paints = _PaintCounter(win)
    return win


class _PaintCounter:
    """Counts paint events of the canvas viewport and when the last one ended, so a figure is taken at the moment
    the canvas was really painted (and never when no paint happened)."""

    def __init__(self, win) -> None:  # noqa: ANN001
        from PySide6.QtCore import QEvent, QObject

        counter = self

        class _Filter(QObject):
            def eventFilter(self, obj, ev):  # noqa: ANN001, ANN202, N802
                if ev.type() == QEvent.Type.Paint:
                    counter.n += 1
                    counter.pending = True
                return False

        self.n = 0
        self.pending = False
        self._filter = _Filter()
        win.canvas.viewport().installEventFilter(self._filter)


def _painted(win) -> float:  # noqa: ANN001
    """Run the event loop until the canvas has painted (once, only the dirty region, as in the app); returns the
    perf_counter time right after that paint. Work the app defers past the paint (panels, prefetch requests)
    runs afterwards and is not counted."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    counter: _PaintCounter = win._bench_paints
    before = counter.n
    deadline = time.perf_counter() + 10.0
    while counter.n == before and time.perf_counter() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 1)
    done = time.perf_counter()
    if counter.n == before:
        raise RuntimeError("no paint happened: the measurement would not include drawing")
    QApplication.processEvents()  # let the deferred work run before the next measurement
    return done


def bench_next_image() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="segstudio-bench-gui-") as d:
        win = _window(Path(d))
        cold, warm = [], []
        for _ in range(2):
            for _i in range(N_IMAGES - 1):
                # a cold load: nothing cached and no neighbour load running that it could wait on
                win.session.prefetcher.wait_idle(30)
                win.session.prefetcher.clear()
                t0 = time.perf_counter()
                win.go_next()
                cold.append((_painted(win) - t0) * 1000)
            win.go_to_sample(win.browser.visible_ids()[0])
        for _ in range(2):
            for _i in range(N_IMAGES - 1):
                win.session.prefetcher.wait_idle(30)
                t0 = time.perf_counter()
                win.go_next()
                warm.append((_painted(win) - t0) * 1000)
            win.go_to_sample(win.browser.visible_ids()[0])
        win.close()
    return [
        Figure("gui.next_image_2048_ms", median(cold), "ms", budget=100.0, better="lower"),
        Figure("gui.next_image_2048_prefetched_ms", median(warm), "ms", budget=30.0, better="lower"),
    ]


def bench_canvas_brush_event() -> list[Figure]:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    with tempfile.TemporaryDirectory(prefix="segstudio-bench-gui-") as d:
        win = _window(Path(d))
        win.set_tool("brush")
        win.brush_size.setValue(30)
        win.canvas.zoom_1to1()
        vp = win.canvas.viewport()
        tr = win.canvas.viewportTransform()

        def send(kind, x, y, button, buttons):  # noqa: ANN001, ANN202
            pos = tr.map(QPointF(x, y))
            QApplication.sendEvent(vp, QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

        centre = win.canvas.mapToScene(vp.rect().center())
        cx, cy = centre.x(), centre.y()
        times = []
        left = Qt.MouseButton.LeftButton
        for stroke in range(5):
            send(QMouseEvent.Type.MouseButtonPress, cx - 200, cy - 100 + 40 * stroke, left, left)
            QApplication.processEvents()
            for i in range(200):
                x = cx - 200 + 2 * i
                y = cy - 100 + 40 * stroke + 30 * np.sin(i / 10)
                t0 = time.perf_counter()
                send(QMouseEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, left)
                times.append((_painted(win) - t0) * 1000)
            send(QMouseEvent.Type.MouseButtonRelease, cx + 200, cy, left, Qt.MouseButton.NoButton)
            QApplication.processEvents()
        win.close()
    return [
        Figure("gui.canvas_brush_event_2048.median_ms", median(times), "ms", budget=8.0, better="lower"),
        Figure("gui.canvas_brush_event_2048.p99_ms", percentile(times, 99), "ms"),
    ]
