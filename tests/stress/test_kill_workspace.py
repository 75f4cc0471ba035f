"""kill -9 at random points of the workspace's three write paths (issue 13): mask save, SQLite write, journal
append. Every trial writes into the same workspace, so a version file replaced by a later trial is caught.

After each kill the workspace must open writable (the dead process's lock taken over), every version file must
be complete and match its recorded checksum, no version file may have changed since an earlier trial saw it,
every acknowledged save / decision / stroke must be there (the bytes of any that are not count as lost, and
must be zero), and no temp file may remain once it is open. Children import neither torch nor Qt.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .conftest import KILL_POINTS
from .killharness import kill_trials

_OPEN = """
import json, os, sys
import numpy as np
from segstudio.workspace import Workspace
ws = Workspace({folder!r}, fsync_journal=True)
pid = os.getpid()
print("READY", flush=True)
"""

_MASK_SAVE = """
i = 0
while True:
    rng = np.random.default_rng(pid * 1000 + i)
    mask = rng.integers(0, 4, (96, 96), dtype=np.uint8)
    sid = f"s{i % 3}.png"
    rec = ws.save_mask(sid, mask)
    print("ACK " + json.dumps({"sample": sid, "version": rec.version, "sha256": rec.sha256,
                               "bytes": rec.path.stat().st_size}), flush=True)
    i += 1
"""

_SQLITE_WRITE = """
i = 0
while True:
    sid = f"p{pid}-{i}.png"
    comment = f"decision {i} of {pid}"
    ws.reviews.set(sid, ("accepted", "rejected", "flagged", "corrected")[i % 4], comment=comment)
    ws.state.set(f"k{pid}-{i}", {"i": i})
    print("ACK " + json.dumps({"sample": sid, "comment": comment, "key": f"k{pid}-{i}", "i": i}), flush=True)
    i += 1
"""

_JOURNAL_APPEND = """
sid = f"j{pid}.png"
w = ws.journal.open(sid, base_version=0, shape=(512, 512), dtype=np.uint8)
i = 0
while i < 4096:
    top, left, value = (i // 64) * 8, (i % 64) * 8, 1 + i % 250
    seq = w.append_patch(top=top, left=left, values=np.full((8, 8), value, np.uint8))
    print("ACK " + json.dumps({"sample": sid, "seq": seq, "top": top, "left": left, "value": value}), flush=True)
    i += 1
import time
time.sleep(60)
"""


def _child(folder: Path, body: str) -> str:
    return textwrap.dedent(_OPEN.format(folder=str(folder))) + textwrap.dedent(body)


def _open_checked(folder: Path) -> Any:
    from segstudio.workspace import Workspace

    ws = Workspace(folder)
    assert not ws.read_only, f"opened read-only after a kill: {ws.read_only_reason}"
    assert ws.took_over is not None, "the killed writer's lock record should have been found stale and taken over"
    assert ws.rebuild_report is None, ws.rebuild_report
    leftovers = [p for p in folder.rglob("*.tmp")]
    assert not leftovers, f"temp files left after opening: {leftovers}"
    return ws


def _run_kill_trials(folder: Path, body: str, *, name: str, seed: int, figures: Any,
                     count_lost: Callable[[Any, list[dict[str, Any]]], int]) -> None:
    """Kill a child running ``body`` at random points; after each kill open the workspace checked and let
    ``count_lost(ws, acks)`` count the bytes of acknowledged writes that are missing (there must be none)."""

    def check(acks: list[dict[str, Any]]) -> int:
        ws = _open_checked(folder)
        try:
            return count_lost(ws, acks)
        finally:
            ws.close()

    report = kill_trials(child_code=_child(folder, body), trials=KILL_POINTS, check=check, seed=seed)
    assert report.bytes_lost == 0
    figures.add(f"kill.{name}.survived", report.survived)
    figures.add("kill.bytes_lost", report.bytes_lost)


def test_kill_during_mask_save(tmp_path: Path, figures: Any) -> None:
    from segstudio.workspace.maskio import read_mask

    folder = tmp_path / "ws"
    seen: dict[Path, str] = {}  # every version file any trial saw, and its checksum

    def count_lost(ws: Any, acks: list[dict[str, Any]]) -> int:
        recorded = {}
        for sid in ws.versions.corrected_ids():
            for v in ws.versions.versions(sid):
                data = v.path.read_bytes()
                assert hashlib.sha256(data).hexdigest() == v.sha256, f"{v.path} differs from its checksum"
                ws.versions.load(v)
                recorded[v.path] = v.sha256
        for p in folder.glob("masks/*/v*.*"):  # orphans (killed between file and row) are complete files
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            if p not in recorded:
                read_mask(p)
            assert seen.setdefault(p, digest) == digest, f"{p} was overwritten"
        lost = 0
        for a in acks:
            got = [v for v in ws.versions.versions(a["sample"]) if v.version == a["version"]]
            if not got or got[0].sha256 != a["sha256"]:
                lost += int(a["bytes"])
        return lost

    _run_kill_trials(folder, _MASK_SAVE, name="mask_save", seed=131, figures=figures, count_lost=count_lost)


def test_kill_during_sqlite_write(tmp_path: Path, figures: Any) -> None:
    folder = tmp_path / "ws"

    def count_lost(ws: Any, acks: list[dict[str, Any]]) -> int:
        lost = 0
        for a in acks:
            state = ws.reviews.get(a["sample"])
            history = ws.reviews.history(a["sample"])
            ok = state.comment == a["comment"] and [h.comment for h in history] == [a["comment"]]
            ok = ok and ws.state.get(a["key"]) == {"i": a["i"]}
            if not ok:
                lost += len(json.dumps(a))
        return lost

    _run_kill_trials(folder, _SQLITE_WRITE, name="sqlite_write", seed=132, figures=figures, count_lost=count_lost)


def test_kill_during_journal_append(tmp_path: Path, figures: Any) -> None:
    folder = tmp_path / "ws"

    def count_lost(ws: Any, acks: list[dict[str, Any]]) -> int:
        if not acks:
            return 0
        sid = acks[0]["sample"]
        pending = {p.sample_id: p for p in ws.pending_recoveries()}
        if sid not in pending:
            return 64 * len(acks)
        assert pending[sid].patches >= len(acks)
        mask = ws.recover(sid, gt=np.zeros((512, 512), np.uint8))
        lost = 0
        for a in acks:
            patch = mask[a["top"] : a["top"] + 8, a["left"] : a["left"] + 8]
            if not np.all(patch == a["value"]):
                lost += 64
        return lost

    _run_kill_trials(folder, _JOURNAL_APPEND, name="journal_append", seed=133, figures=figures, count_lost=count_lost)
