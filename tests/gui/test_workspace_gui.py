"""The window and the workspace's hard cases (issue 13): held by another segstudio (ask, then read-only with
edits and decisions refused out loud), a full disk on save (the message and the status bar tell the truth about
the recovery journal), and a damaged workspace rebuilt with a message."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from segstudio.gui.window import workspace_dialogs
from segstudio.workspace import ReviewStatus, user_data_dir
from segstudio.workspace import journal as journal_mod

REPO = Path(__file__).resolve().parents[2]
_HOLDER = textwrap.dedent(
    """
    import sys
    from segstudio.workspace import Workspace
    ws = Workspace(sys.argv[1])
    ws.reviews.set("held-by-the-other.png", "flagged")
    print("READY", flush=True)
    sys.stdin.readline()
    ws.close()
    """
)


def _bundled_workspace() -> Path:
    return user_data_dir() / "workspaces" / "bundled-sample-lungs"


@pytest.fixture
def holder() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(_bundled_workspace())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    yield proc
    proc.communicate("\n", timeout=30)


def _window(qtbot):  # noqa: ANN001, ANN202
    from segstudio.gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_a_held_workspace_asks_and_cancel_opens_nothing(qtbot, holder, sample_dataset_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(workspace_dialogs, "ask_open_read_only", lambda _p, err: asked.append(err) or False)
    win = _window(qtbot)
    assert win.open_dataset(sample_dataset_path) is None
    assert asked and asked[0].holder is not None and asked[0].holder.pid == holder.pid
    assert win.review.workspace is None and win.session.dataset is None


def test_read_only_window_refuses_edits_and_decisions_out_loud(qtbot, holder, sample_dataset_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace_dialogs, "ask_open_read_only", lambda _p, _err: True)
    win = _window(qtbot)
    assert win.open_dataset(sample_dataset_path) is not None
    qtbot.waitUntil(lambda: win.editor.target is not None, timeout=10_000)
    ws = win.review.workspace
    assert ws is not None and ws.read_only
    assert "[read-only]" in win.windowTitle() and win.status.workspace.text() == "read-only"
    assert win.review.review("held-by-the-other.png").status is ReviewStatus.FLAGGED  # the holder's data shows
    before = win.editor.mask.array.copy()  # type: ignore[union-attr]
    win.editor.replace_mask(np.zeros_like(before))
    assert np.array_equal(win.editor.mask.array, before) and not win.editor.dirty  # type: ignore[union-attr]
    assert "read-only" in win.statusBar().currentMessage()
    sid = win.session.current.sample.id  # type: ignore[union-attr]
    win.navigation.set_review_status("accepted")
    assert "Not recorded" in win.statusBar().currentMessage()
    assert win.review.review(sid).status is ReviewStatus.UNREVIEWED
    assert not list((_bundled_workspace() / "journal").glob("*.journal"))
    # what would write to the workspace is disabled up front, and the training panel says why
    from segstudio.gui.screen.status import WORKSPACE_WRITE_ACTIONS

    assert not any(win.actions_[name].isEnabled() for name in WORKSPACE_WRITE_ACTIONS)
    assert not win.training_panel.start_button.isEnabled()
    assert "read-only" in win.training_panel.state_label.text()
    win.close()


def test_full_disk_on_save_tells_the_truth_about_the_journal(window, monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.core import atomic
    from segstudio.gui.screen import navigation as mw

    shown: list[str] = []
    monkeypatch.setattr(mw, "show_error", lambda _title, text, *_: shown.append(text))

    def enospc(*_a: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    editor = window.editor
    sid = window.session.current.sample.id
    # 1. the journal works, the version file cannot be written
    editor.replace_mask(np.zeros_like(editor.mask.array))
    assert editor.journal_ok and window.status.saved.text() == "unsaved (journaled)"
    assert "in the recovery journal" in window.status.saved.toolTip()
    monkeypatch.setattr(atomic.os, "write", enospc)
    assert window.navigation.save_current() is None
    assert "disk is full" in shown[-1] and "still in the recovery journal" in shown[-1]
    # 2. the journal cannot be written either: the message and the status bar say the edits are only here
    monkeypatch.setattr(journal_mod.os, "write", enospc)
    editor.replace_mask(np.ones_like(editor.mask.array))
    assert not editor.journal_ok
    assert window.status.saved.text() == "UNSAVED, not journaled"
    assert "NOT in the recovery journal" in window.status.saved.toolTip()
    window.navigation.save_current()
    assert "could NOT be written to the recovery journal" in shown[-1]
    window.go_next()  # leaving would lose them: the window stays
    assert window.session.current.sample.id == sid and editor.dirty
    monkeypatch.undo()
    monkeypatch.setattr(mw, "show_error", lambda _title, text, *_: shown.append(text))
    rec = window.navigation.save_current()  # space again: the save goes through and the truth is restored
    assert rec is not None and rec.sample_id == sid and editor.journal_ok and window.status.saved.text() != ""


def test_a_damaged_workspace_is_rebuilt_with_a_message(window, sample_dataset_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    told = []
    monkeypatch.setattr(workspace_dialogs, "tell_rebuilt", lambda _p, report: told.append(report))
    ws = window.review.workspace
    sid = window.session.current.sample.id
    ws.save_mask(sid, np.zeros_like(window.editor.mask.array))
    folder = ws.folder
    window.review.close()
    (folder / "workspace.sqlite").write_bytes(b"")
    for side in ("workspace.sqlite-wal", "workspace.sqlite-shm"):
        (folder / side).unlink(missing_ok=True)
    assert window.open_dataset(sample_dataset_path) is not None
    assert told and told[0].versions == 1 and "rebuilt" in told[0].message()
    assert window.review.workspace.versions.latest(sid) is not None
