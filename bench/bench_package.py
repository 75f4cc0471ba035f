"""Installer figures (issue 9): build time, artifact sizes, frozen app's cold start to first window.

Run by ``make bench-package`` only (``SEGSTUDIO_BENCH_PACKAGE=1 python -m bench --only package``): a build takes
minutes, so plain ``make bench`` leaves these figures alone. ``SEGSTUDIO_PACKAGE_REUSE=1`` reads the build time and
sizes that the last ``make package`` recorded in ``dist/package-report.json`` instead of building again (the
build times itself either way); the cold start is always measured here, on the installed ``.deb`` under Xvfb.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Figure, median

PREFIX = "package"
#: The bench runner skips a module with this flag unless ``--only`` names its prefix (see the runner).
EXPLICIT_ONLY = True
REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024  # "MB" figures are MiB
COLD_START_RUNS = 3

log = logging.getLogger(__name__)


def _enabled() -> bool:
    if os.environ.get("SEGSTUDIO_BENCH_PACKAGE") == "1":
        return True
    log.warning("package benchmarks build the installers (minutes): run `make bench-package`")
    return False


def _smoke():  # noqa: ANN202 - the packaging helpers live outside the bench package
    # by file path: packaging/ is no package (and must not shadow PyPI's `packaging` on sys.path)
    import importlib.util

    if "segstudio_pkg_smoke" in sys.modules:
        return sys.modules["segstudio_pkg_smoke"]
    spec = importlib.util.spec_from_file_location("segstudio_pkg_smoke", REPO / "packaging" / "pkg_smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _report() -> dict:
    smoke = _smoke()
    if os.environ.get("SEGSTUDIO_PACKAGE_REUSE") != "1" or not smoke.REPORT.is_file():
        subprocess.run([sys.executable, str(REPO / "packaging" / "build.py")], cwd=REPO, check=True)
    return smoke.read_report()


def bench_build() -> list[Figure]:
    if not _enabled():
        return []
    r = _report()
    figures = [
        # budgets: what CI's 90 minutes leave for the packaging test on a 2-core runner
        Figure("package.build_s", float(r["stages"]["total_s"]), "s", budget=900.0, better="lower"),
        Figure("package.onefolder_mb", r["onefolder_bytes"] / MB, "MB"),
        Figure("package.deb_mb", r["deb_bytes"] / MB, "MB"),
    ]
    if r.get("tar_bytes"):
        figures.append(Figure("package.tar_mb", r["tar_bytes"] / MB, "MB"))
    if "pyinstaller_s" in r["stages"]:
        figures.append(Figure("package.pyinstaller_s", float(r["stages"]["pyinstaller_s"]), "s"))
    return figures


def bench_frozen_cold_start() -> list[Figure]:
    """Launch of the installed app (bundled sample) until its main window is mapped on Xvfb; the first run after
    unpacking is the coldest the page cache allows here, the median of the runs is the figure."""
    if not _enabled():
        return []
    if shutil.which("Xvfb") is None or shutil.which("xwininfo") is None:
        raise RuntimeError("Xvfb/xwininfo missing: bash packaging/sysdeps.sh")
    smoke = _smoke()
    r = _report()
    times = []
    with tempfile.TemporaryDirectory(prefix="segstudio-bench-") as tmp:
        root = Path(tmp) / "root"
        launcher = smoke.unpack_deb(REPO / r["deb"], root)
        for i in range(COLD_START_RUNS):
            with smoke.Xvfb() as display:
                start = smoke.time_to_first_window(launcher, display=display, home=Path(tmp) / f"home{i}",
                                                   screenshot=Path(tmp) / f"shot{i}.png", settle=0.5)
            times.append(start.seconds)
            log.info("cold start %d: %.2f s", i, start.seconds)
    return [
        Figure("package.frozen_cold_start_s", median(times), "s", budget=10.0, better="lower"),
        Figure("package.frozen_first_start_s", times[0], "s"),
    ]
