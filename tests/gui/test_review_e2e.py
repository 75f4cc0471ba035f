"""End to end on the real Montgomery data with a predictions folder: sort by worst Dice, open the worst, paint a
correction, undo/redo, accept, restart and find everything intact; a SIGKILLed session is recovered; the dataset's
GT files stay byte-identical throughout."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from canvas_driver import drag
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.gui.main_window import MainWindow
from segstudio.workspace import ReviewStatus

REPO = Path(__file__).resolve().parents[2]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _open(qtbot, montgomery: Path, preds: Path) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_dataset(montgomery, format_name="class-folders", predictions=preds) is not None
    win.review.wait_for_scoring(60000)
    qtbot.waitUntil(lambda: all(v[0] is not None for v in win.review.cached_scores().values())
                    and len(win.review.cached_scores()) == 40, timeout=60000)
    QApplication.processEvents()
    return win


@pytest.mark.slow
def test_review_session_survives_restart(qtbot, montgomery: Path, montgomery_predictions) -> None:
    preds, worst = montgomery_predictions
    before = _digest(montgomery)

    win = _open(qtbot, montgomery, preds)
    win.browser.sort_by("dice", ascending=True)
    ids = win.browser.visible_ids()
    assert ids[0] == worst
    scores = win.review.cached_scores()
    assert scores[worst][0] < 0.2 < min(d for sid, (d, _i) in scores.items() if sid != worst)

    win.navigation.go_to_sample(ids[0])
    assert win.session.current.sample.id == worst
    assert win.editor.target.prediction is not None
    # Next follows the visible (worst-first) order
    win.go_next()
    assert win.session.current.sample.id == ids[1]
    win.go_previous()
    assert win.session.current.sample.id == worst

    # paint a stroke of class 2 through the real canvas
    win.tools.set_tool("brush")
    win.class_panel.select_class(2)
    win.brush_size.setValue(16)
    base = np.array(win.editor.mask.array)
    drag(win.canvas, [(60.0, 60.0), (90.0, 70.0), (120.0, 80.0)])
    painted = np.array(win.editor.mask.array)
    assert (painted != base).sum() > 300
    assert set(np.unique(painted[painted != base]).tolist()) == {2}
    assert win.editor.dirty

    win.editor.undo()
    assert np.array_equal(win.editor.mask.array, base)
    win.editor.redo()
    assert np.array_equal(win.editor.mask.array, painted)

    # accept the sample: the correction is saved as a version, the decision recorded
    win.review_panel.comment.setPlainText("lungs were swapped in the prediction")
    win.navigation.set_review_status("accepted")
    ws = win.review.workspace
    assert ws is not None
    assert ws.reviews.get(worst).status == ReviewStatus.ACCEPTED
    assert ws.reviews.get(worst).comment == "lungs were swapped in the prediction"
    latest = ws.versions.latest(worst)
    assert latest is not None and np.array_equal(ws.versions.load(latest), painted)
    assert not win.editor.dirty
    win.close()

    again = _open(qtbot, montgomery, preds)
    assert again.review.review(worst).status == ReviewStatus.ACCEPTED
    assert again.review.cached_scores()[worst][0] is not None
    again.navigation.go_to_sample(worst)
    assert np.array_equal(again.editor.mask.array, painted)
    assert again.editor.target.base_version == latest.version
    again.close()

    assert _digest(montgomery) == before


_CRASHER = textwrap.dedent(r"""
    import os, sys, time
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    sys.path.insert(0, {repo!r})
    from PySide6.QtWidgets import QApplication
    from segstudio.gui.main_window import MainWindow
    from segstudio.masks import PointerEvent
    app = QApplication([])
    win = MainWindow()
    win.show()
    win.navigation.autosave.stop()  # the journal, not an autosave, must carry the work
    win.open_dataset({data!r}, format_name="class-folders", predictions={preds!r})
    win.navigation.go_to_sample({sid!r})
    win.class_panel.select_class(1)
    win.brush_size.setValue(20)
    win.tools.set_tool("brush")
    ed = win.editor
    ed._on_canvas_pointer("press", PointerEvent(200.0, 200.0))
    for i in range(1, 30):
        ed._on_canvas_pointer("move", PointerEvent(200.0 + 3 * i, 200.0 + i))
    ed._on_canvas_pointer("release", PointerEvent(290.0, 230.0))
    import numpy as np
    np.save({dump!r}, np.array(ed.mask.array))
    print("READY", flush=True)
    time.sleep(120)
""")


@pytest.mark.slow
def test_killed_session_is_recovered(qtbot, montgomery: Path, montgomery_predictions, tmp_path: Path,
                                     monkeypatch) -> None:
    preds, _worst = montgomery_predictions
    sid = "cxr/MCUCXR_0016_0.png"
    dump = tmp_path / "painted.npy"
    before = _digest(montgomery)
    script = _CRASHER.format(repo=str(REPO), data=str(montgomery), preds=str(preds), sid=sid, dump=str(dump))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))
    try:
        deadline = time.time() + 120
        line = ""
        while time.time() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY") or proc.poll() is not None:
                break
        assert line.startswith("READY"), proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    painted = np.load(dump)

    asked: list[str] = []

    def answer_yes(*args, **kwargs):
        asked.append(args[2] if len(args) > 2 else "")
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    win = _open(qtbot, montgomery, preds)
    assert asked and sid in asked[0]
    ws = win.review.workspace
    latest = ws.versions.latest(sid)
    assert latest is not None and np.array_equal(ws.versions.load(latest), painted)
    assert ws.pending_recoveries() == []
    win.navigation.go_to_sample(sid)
    assert np.array_equal(win.editor.mask.array, painted)
    win.close()
    assert _digest(montgomery) == before
