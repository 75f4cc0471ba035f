"""Regression: PySide6-Essentials 6.12.0 dropped a reference to None on every void call and aborted Python 3.11
("Fatal Python error: none_dealloc") after a few thousand calls. The pin (<6.12) keeps us on a sound release;
this test makes 20,000 such calls in a child process and checks it survives with None's refcount intact."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = r"""
import sys
from PySide6.QtCore import QTimer, QCoreApplication
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
w = QWidget()
t = QTimer()
before = sys.getrefcount(None)
for _ in range(20000):
    QCoreApplication.processEvents()
    w.update()
    t.start(1000)
    t.stop()
after = sys.getrefcount(None)
print(before, after)
"""


def test_twenty_thousand_void_calls_keep_none_alive() -> None:
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert res.returncode == 0, f"child died ({res.returncode}): {res.stderr[-2000:]}"
    before, after = (int(v) for v in res.stdout.split())
    # 80,000 void calls: a per-call leak would move the count by tens of thousands (or abort the process)
    assert abs(after - before) < 1000, (before, after)


def test_installed_pyside6_is_below_6_12() -> None:
    import PySide6

    major, minor = (int(p) for p in PySide6.__version__.split(".")[:2])
    assert (major, minor) < (6, 12), PySide6.__version__
