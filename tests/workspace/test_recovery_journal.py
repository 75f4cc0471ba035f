"""Crash-recovery journal: replay, torn tails, clean saves, and a real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegstudioError
from segstudio.workspace import RecoveryJournal, Workspace

REPO = Path(__file__).resolve().parents[2]


def test_patches_replay_over_the_base(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path / "journal")
    w = j.open("a.png", base_version=0, shape=(8, 8), dtype=np.uint8)
    w.append_patch(top=1, left=1, values=np.full((2, 3), 4, np.uint8))
    changed = np.array([[True, False], [False, True]])
    w.append_patch(top=1, left=1, values=np.full((2, 2), 9, np.uint8), changed=changed)
    w.close()
    base = np.ones((8, 8), np.uint8)
    out = j.restore("a.png", base=base)
    expected = base.copy()
    expected[1:3, 1:4] = 4
    expected[1, 1] = 9
    expected[2, 2] = 9
    assert np.array_equal(out, expected)
    [p] = j.pending()
    assert (p.sample_id, p.base_version, p.patches, p.has_snapshot, p.shape, p.dtype) == ("a.png", 0, 2, False, (8, 8), "uint8")


def test_snapshot_makes_base_unnecessary(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("m", base_version=3, shape=(4, 5), dtype=np.uint64)
    w.append_patch(top=0, left=0, values=np.full((1, 1), 1, np.uint64))
    snap = np.arange(20, dtype=np.uint64).reshape(4, 5) << np.uint64(40)
    w.append_snapshot(snap)
    w.append_patch(top=3, left=4, values=np.full((1, 1), 7, np.uint64))
    w.close()
    out = j.restore("m", base=None)
    snap[3, 4] = 7
    assert out.dtype == np.uint64 and np.array_equal(out, snap)
    [p] = j.pending()
    assert p.has_snapshot and p.patches == 1


def test_missing_base_is_explained(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("m", base_version=0, shape=(4, 4), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
    w.close()
    with pytest.raises(SegstudioError, match="base mask"):
        j.restore("m", base=None)


def test_torn_last_record_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("a", base_version=0, shape=(6, 6), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.full((1, 6), 1, np.uint8))
    w.append_patch(top=1, left=0, values=np.full((1, 6), 2, np.uint8))
    w.close()
    path = j.path_for("a")
    path.write_bytes(path.read_bytes()[:-3])  # a kill in the middle of the second append
    out = j.restore("a", base=np.zeros((6, 6), np.uint8))
    assert out[0].tolist() == [1] * 6 and out[1].tolist() == [0] * 6
    assert j.pending()[0].patches == 1


def test_patch_outside_the_mask_is_refused(tmp_path: Path) -> None:
    w = RecoveryJournal(tmp_path).open("a", base_version=0, shape=(4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside"):
        w.append_patch(top=3, left=3, values=np.zeros((2, 2), np.uint8))
    w.close()


def test_open_without_resume_replaces_old_work_and_empty_journals_are_not_offered(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("a", base_version=0, shape=(2, 2), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
    w.close()
    j.open("a", base_version=1, shape=(2, 2), dtype=np.uint8).close()
    assert j.pending() == []  # declined work replaced; a journal without edits is not "unsaved work"
    w = j.open("a", base_version=1, shape=(2, 2), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
    w.close()
    w = j.open("a", base_version=1, shape=(2, 2), dtype=np.uint8, resume=True)
    w.append_patch(top=1, left=1, values=np.ones((1, 1), np.uint8))
    w.close()
    assert j.pending()[0].patches == 2


def test_clean_save_clears_the_journal_and_recover_uses_saved_base(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        base = np.full((5, 5), 2, np.uint8)
        v = ws.save_mask("s.png", base)
        w = ws.journal.open("s.png", base_version=v.version, shape=(5, 5), dtype=np.uint8)
        w.append_patch(top=0, left=0, values=np.zeros((2, 2), np.uint8))
        w.close()
        restored = ws.recover("s.png")  # base version loaded from the workspace itself
        assert restored[:2, :2].tolist() == [[0, 0], [0, 0]] and restored[4, 4] == 2
        ws.save_mask("s.png", restored, parent=v.version)
        assert ws.pending_recoveries() == []
        with pytest.raises(SegstudioError, match="No unsaved work"):
            ws.recover("s.png")


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from segstudio.workspace import Workspace

    ws = Workspace(sys.argv[1])
    w = ws.journal.open("cases/a b.png", base_version=0, shape=(64, 64), dtype=np.uint8)
    i = 0
    while True:
        w.append_patch(top=(i * 4) % 64, left=0, values=np.full((4, 64), i % 250 + 1, np.uint8))
        print(i, flush=True)
        i += 1
    """
)


def _after(k: int) -> np.ndarray:
    m = np.zeros((64, 64), np.uint8)
    for i in range(k):
        m[(i * 4) % 64 : (i * 4) % 64 + 4, :] = i % 250 + 1
    return m


def test_strokes_survive_kill_9(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    confirmed = 0
    try:
        for line in proc.stdout:
            confirmed = int(line) + 1
            if confirmed >= 40:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert confirmed >= 40

    with Workspace(folder) as ws:
        [p] = ws.pending_recoveries()
        assert p.sample_id == "cases/a b.png" and p.base_version == 0
        assert p.patches >= confirmed  # every append reported done was durable
        restored = ws.recover("cases/a b.png", gt=np.zeros((64, 64), np.uint8))
        assert np.array_equal(restored, _after(p.patches))
        ws.save_mask("cases/a b.png", restored)
        assert ws.pending_recoveries() == []


def test_autosave_beside_editing_keeps_strokes_made_during_the_save(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        live = np.zeros((6, 6), np.uint8)
        w = ws.journal.open("s", base_version=0, shape=(6, 6), dtype=np.uint8)
        for i in range(3):
            live[i, :] = i + 1
            w.append_patch(top=i, left=0, values=live[i : i + 1, :])
        copy_seq, copy = w.seq, live.copy()  # the autosave copies the mask here…
        live[4, :] = 9
        w.append_patch(top=4, left=0, values=live[4:5, :])  # …and the user keeps painting
        v = ws.save_mask("s", copy, journal_seq=copy_seq)
        [p] = RecoveryJournal(ws.journal.folder).pending()  # what a restart after a crash now would find
        assert ws.pending_recoveries() == []  # this process is still writing it: not "left by a previous session"
        assert (p.base_version, p.patches) == (v.version, 1)
        assert np.array_equal(ws.recover("s"), live)
        live[5, :] = 7
        w.append_patch(top=5, left=0, values=live[5:6, :])  # journaling goes on in the rebased file
        assert np.array_equal(ws.recover("s"), live)
        ws.save_mask("s", live)  # a save of everything leaves nothing to recover
        assert ws.pending_recoveries() == []
        w.close()


def test_resuming_after_a_torn_tail_keeps_new_strokes_reachable(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("a", base_version=0, shape=(4, 4), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.full((1, 4), 1, np.uint8))
    w.append_patch(top=1, left=0, values=np.full((1, 4), 2, np.uint8))
    w.close()
    path = j.path_for("a")
    path.write_bytes(path.read_bytes()[:-5])
    w = j.open("a", base_version=0, shape=(4, 4), dtype=np.uint8, resume=True)
    assert w.seq == 1
    w.append_patch(top=2, left=0, values=np.full((1, 4), 3, np.uint8))
    w.close()
    out = j.restore("a", base=np.zeros((4, 4), np.uint8))
    assert out[:, 0].tolist() == [1, 0, 3, 0]


def test_autosave_worker_and_editor_thread_share_the_journal(tmp_path: Path) -> None:
    import queue
    import threading

    with Workspace(tmp_path / "ws", fsync_journal=False) as ws:
        live = np.zeros((32, 32), np.uint8)
        w = ws.journal.open("s", base_version=0, shape=live.shape, dtype=np.uint8)
        todo: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        saved_seqs: list[int] = []
        errors: list[BaseException] = []

        def autosave() -> None:
            try:
                while (item := todo.get()) is not None:
                    mask, seq = item
                    ws.save_mask("s", mask, journal_seq=seq)
                    saved_seqs.append(seq)
            except BaseException as e:  # re-raised in the test thread below
                errors.append(e)

        saver = threading.Thread(target=autosave)
        saver.start()
        rng = np.random.default_rng(0)
        for i in range(300):
            y, x = (int(v) for v in rng.integers(0, 28, 2))
            live[y : y + 4, x : x + 4] = i % 200 + 1
            w.append_patch(top=y, left=x, values=live[y : y + 4, x : x + 4])
            if i % 37 == 36:
                todo.put((live.copy(), w.seq))
        todo.put(None)
        saver.join()
        assert errors == []
        assert len(saved_seqs) == 8
        p = ws.journal.info("s")
        assert p is not None and p.patches == w.seq - saved_seqs[-1]
        assert np.array_equal(ws.recover("s"), live)  # last save + the strokes after it = the live mask
        w.close()


def test_discard_closes_the_open_writer(tmp_path: Path) -> None:
    j = RecoveryJournal(tmp_path)
    w = j.open("a", base_version=0, shape=(2, 2), dtype=np.uint8)
    w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
    j.discard("a")
    assert not w.is_open and not j.path_for("a").exists()
    with pytest.raises(SegstudioError, match="closed"):
        w.append_patch(top=0, left=0, values=np.ones((1, 1), np.uint8))
