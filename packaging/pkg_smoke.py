"""Smoke-test helpers for an installed package, shared by ``tests/packaging`` and ``bench/bench_package.py``.

- :func:`unpack_deb` — ``dpkg -x`` a ``.deb`` into a scratch root (no root rights, nothing installed system-wide);
- :class:`Xvfb` — a private X server on a free display (``-displayfd``), for a real ``xcb`` window;
- :func:`time_to_first_window` — launch the installed app on that display and time until its main window is
  mapped (``xwininfo``), then capture the screen (ImageMagick ``import -window root``) and stop the app.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
REPORT = DIST / "package-report.json"


def read_report() -> dict:
    """``dist/package-report.json`` of the last ``packaging/build.py`` run."""
    return json.loads(REPORT.read_text(encoding="utf-8"))


def unpack_deb(deb: Path, root: Path) -> Path:
    """Extract ``deb`` into ``root``; returns the installed launcher ``root/usr/bin/segstudio``."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root / "usr" / "bin" / "segstudio"


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment whose user folders (config, cache, state, data) all lie under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGSTUDIO_", "QT_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".local/state"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_RUNTIME_DIR=str(home / "run"), HF_HUB_OFFLINE="1")
    (home / "run").mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    env.update(extra)
    return env


class Xvfb:
    """``with Xvfb() as display:`` — a private X server; ``display`` is ``":N"``."""

    def __init__(self, *, size: str = "1280x900x24") -> None:
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None
        self.display = ""

    def __enter__(self) -> str:
        r, w = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", self.size, "-nolisten", "tcp"],
                                     pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as fh:
            number = fh.readline().strip()
        if not number.isdigit():
            self.__exit__()
            raise RuntimeError("Xvfb did not start (is the xvfb package installed? bash packaging/sysdeps.sh)")
        self.display = f":{number}"
        return self.display

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@dataclass(frozen=True)
class WindowStart:
    seconds: float  # launch → main window mapped
    screenshot: Path
    title: str


def _mapped_title(display: str) -> str | None:
    """Title of a viewable top-level segstudio window on ``display`` (``xwininfo`` lists unmapped ones too)."""
    env = {**os.environ, "DISPLAY": display}
    res = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, env=env)
    for line in res.stdout.splitlines():
        # the main window: WM_CLASS ("segstudio" "segstudio"), title "<sample> (i/n) — <dataset> — segstudio";
        # Qt's 1x1 helper windows are skipped
        m = re.search(r'(0x[0-9a-f]+) "(.*)": \("segstudio" "segstudio"\)\s+(\d+)x(\d+)\+', line)
        if not m or int(m.group(3)) <= 200 or int(m.group(4)) <= 200:
            continue
        info = subprocess.run(["xwininfo", "-id", m.group(1)], capture_output=True, text=True, env=env).stdout
        if "Map State: IsViewable" in info:
            return m.group(2)
    return None


def time_to_first_window(launcher: Path, *, display: str, home: Path, screenshot: Path,
                         timeout: float = 120.0, settle: float = 2.0) -> WindowStart:
    """Start ``launcher`` (no arguments: the bundled sample) on ``display``; time until the main window is
    mapped; wait ``settle`` seconds for the first paint; capture the whole screen; stop the app."""
    env = isolated_env(home, DISPLAY=display)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(launcher)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        title = None
        while title is None:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"the app exited with {proc.returncode} before showing a window:\n{out[-3000:]}")
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"no segstudio window within {timeout:.0f} s")
            time.sleep(0.05)
            title = _mapped_title(display)
        seconds = time.perf_counter() - t0
        time.sleep(settle)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-display", display, "-window", "root", str(screenshot)], check=True,
                       env={**os.environ, "DISPLAY": display}, timeout=60)
        return WindowStart(seconds, screenshot, title)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
