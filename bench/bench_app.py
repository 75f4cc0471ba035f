"""Start-up figures: cold start to the first painted window, and ``segstudio --help``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, median

PREFIX = "app"
REPO = Path(__file__).resolve().parents[1]

_FIRST_PAINT = r"""
import sys, time
from PySide6.QtCore import QObject, QEvent, QTimer
from segstudio.gui.app import get_app, create_main_window
app = get_app()
win = create_main_window(headless=True)

class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint:
            print(f"PAINTED {time.time():.6f}", flush=True)
            app.quit()
        return False

f = FirstPaint()
win.canvas.viewport().installEventFilter(f)
win.show()
QTimer.singleShot(20000, app.quit)
app.exec()
"""


def _env() -> dict[str, str]:
    tmp = tempfile.mkdtemp(prefix="segstudio-bench-")
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SEGSTUDIO_CONFIG_DIR": tmp, "SEGSTUDIO_STATE_DIR": tmp}


def bench_cold_start() -> list[Figure]:
    times = []
    for _ in range(3):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", _FIRST_PAINT], capture_output=True, text=True, env=_env(),
                             cwd=REPO, timeout=120)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PAINTED")), None)
        if line is None:
            raise RuntimeError(f"window never painted: {out.stderr[-2000:]}")
        times.append(float(line.split()[1]) - t0)
    return [Figure("app.cold_start_s", median(times), "s", budget=3.0, better="lower")]


def bench_cli_help() -> list[Figure]:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "segstudio", "--help"], capture_output=True, check=True, cwd=REPO,
                       env=_env(), timeout=60)
        times.append(time.perf_counter() - t0)
    return [Figure("cli.help_s", median(times), "s", budget=1.0, better="lower")]
