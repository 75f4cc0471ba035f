"""The command line: --help/--version without torch, subcommand discovery, screenshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def test_help_does_not_import_torch_or_qt() -> None:
    code = (
        "import sys, io, contextlib, json\n"
        "from segstudio.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n        main(['--help'])\n    except SystemExit as e:\n        code = e.code\n"
        "mods = [m for m in ('torch', 'PySide6', 'segmentation_models_pytorch', 'scipy') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'mods': mods, 'out': buf.getvalue()}))\n"
    )
    res = _run(code)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["code"] == 0
    assert data["mods"] == []
    assert "usage: segstudio" in data["out"] and "screenshot" in data["out"]


def test_version_via_module_entry_point() -> None:
    from segstudio import __version__

    res = subprocess.run([sys.executable, "-m", "segstudio", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert res.returncode == 0
    assert res.stdout.strip() == f"segstudio {__version__}"


def test_the_entry_exits_with_mains_code_past_the_last_gc_and_still_runs_atexit(tmp_path: Path) -> None:
    marker = tmp_path / "atexit"
    code = ("import atexit, gc\n"
            "import segstudio.cli as cli\n"
            "cli.main = lambda: 7\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write(str(gc.get_freeze_count() > 0)))\n"
            "cli.entry()\n")
    res = _run(code)
    assert res.returncode == 7, res.stderr
    assert marker.read_text() == "True"  # what existed at exit was frozen; the atexit handler ran all the same


def test_unknown_dataset_path_is_a_clean_error(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "segstudio", "screenshot", "--out", str(tmp_path / "x.png"),
                          str(tmp_path / "nope")], capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                              "SEGSTUDIO_CONFIG_DIR": str(tmp_path / "cfg"),
                              "SEGSTUDIO_STATE_DIR": str(tmp_path / "state")})
    assert res.returncode == 2
    assert "does not exist" in res.stderr and str(tmp_path / "nope") in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_screenshot_renders_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    res = subprocess.run([sys.executable, "-m", "segstudio", "screenshot", "--out", str(out), "--size", "1400x900",
                          "--sample", "cxr/MCUCXR_0038_0.png"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                              "SEGSTUDIO_CONFIG_DIR": str(tmp_path / "cfg"),
                              "SEGSTUDIO_STATE_DIR": str(tmp_path / "state")})
    assert res.returncode == 0, res.stderr
    import cv2

    img = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (900, 1400)
    # the overlay colours of both lungs are on screen (blue-ish left lung, orange right lung)
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert np.count_nonzero((b - r) > 60) > 500
    assert np.count_nonzero((r - b) > 60) > 500
