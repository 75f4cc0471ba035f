"""The Linux installer, end to end: build (PyInstaller one-folder → .deb + .tar.gz), unpack the .deb into a scratch
root with ``dpkg -x``, run the installed launcher's ``--selftest`` offscreen and on a real X server (Xvfb), and
start the installed app on Xvfb and capture the screen.

Marked ``packaging``: ``make test-package`` runs it (``make test`` does not; CI opts in). The build takes minutes;
``SEGSTUDIO_PACKAGE_REUSE=1`` tests the artifacts of the last ``make package`` instead of building again.
Screenshots are kept in ``build/package/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from segstudio.core import licences as L

REPO = Path(__file__).resolve().parents[2]


def _load_smoke():  # noqa: ANN202
    # by file path: packaging/ is no package (and must not shadow PyPI's `packaging` on sys.path)
    import importlib.util

    spec = importlib.util.spec_from_file_location("segstudio_pkg_smoke", REPO / "packaging" / "pkg_smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


pkg_smoke = _load_smoke()

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1800)]
SHOTS = REPO / "build" / "package" / "screenshots"


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `bash packaging/sysdeps.sh` as root")


@pytest.fixture(scope="session")
def report() -> dict:
    _need("dpkg-deb", "dpkg", "readelf", "zstd")
    if os.environ.get("SEGSTUDIO_PACKAGE_REUSE") != "1" or not pkg_smoke.REPORT.is_file():
        subprocess.run([sys.executable, str(REPO / "packaging" / "build.py")], cwd=REPO, check=True)
    return pkg_smoke.read_report()


@pytest.fixture(scope="session")
def installed(report: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch root the .deb was unpacked into."""
    root = tmp_path_factory.mktemp("debroot")
    launcher = pkg_smoke.unpack_deb(REPO / report["deb"], root)
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    return root


def _variant_tag() -> str:
    import torch

    return f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"


def _check_screenshot(path: Path, *, min_colours: int = 200) -> None:
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        assert rgb.width >= 1000 and rgb.height >= 700, rgb.size
        colours = rgb.resize((320, 240)).getcolors(maxcolors=1 << 16) or []
    # the X-ray and its overlays give hundreds of colours; a blank or black frame gives a handful
    assert len(colours) >= min_colours, f"{path}: only {len(colours)} colours — blank window?"


def test_artifacts_are_named_by_version_and_torch_variant(report: dict) -> None:
    from segstudio import __version__

    tag = _variant_tag()
    assert report["torch_variant"] == tag
    assert Path(report["deb"]).name.startswith(f"segstudio_{__version__}+{tag}_")
    assert Path(report["tar"]).name == f"segstudio-{__version__}-linux-{os.uname().machine}-{tag}.tar.gz"
    for key in ("deb", "tar"):
        assert (REPO / report[key]).stat().st_size == report[f"{key}_bytes"]


def test_deb_is_zstd_with_the_control_fields_a_system_needs(report: dict) -> None:
    deb = REPO / report["deb"]
    members = subprocess.run(["ar", "t", str(deb)], capture_output=True, text=True, check=True).stdout.split()
    assert members == ["debian-binary", "control.tar.zst", "data.tar.zst"]
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: segstudio\n" in fields
    assert "Architecture: " in fields and "Installed-Size: " in fields
    depends = next(line for line in fields.splitlines() if line.startswith("Depends: "))
    for pkg in ("libc6 (>= 2.", "libxcb-cursor0", "libxkbcommon-x11-0", "libegl1", "libfontconfig1",
                "libglib2.0-0", "libdbus-1-3"):
        assert pkg in depends, f"{pkg} missing from {depends}"
    assert "libcuda" not in depends and "nvidia" not in depends  # the driver is optional: CPU fallback
    assert report["unresolved_sonames"] == []


def test_deb_layout_desktop_entry_icons_mime_and_notices(installed: Path) -> None:
    app = installed / "opt" / "segstudio"
    assert os.access(app / "segstudio", os.X_OK)
    internal = app / "_internal"
    assert (internal / "resources" / "samples" / "lungs" / "classes.json").is_file()
    assert (internal / "LICENSE").is_file()
    desktop = installed / "usr/share/applications/segstudio.desktop"
    text = desktop.read_text()
    assert "Exec=segstudio %f" in text and "Icon=segstudio" in text
    assert "MimeType=application/x-segstudio-workspace;" in text
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(desktop)], check=True)
    mime = (installed / "usr/share/mime/packages/segstudio.xml").read_text()
    assert 'type="application/x-segstudio-workspace"' in mime
    hicolor = installed / "usr/share/icons/hicolor"
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (hicolor / f"{size}x{size}/apps/segstudio.png").is_file(), size
    assert (hicolor / "scalable/apps/segstudio.svg").is_file()
    doc = installed / "usr/share/doc/segstudio"
    assert (doc / "copyright").is_file()
    notice = (doc / "THIRD-PARTY-NOTICES.txt").read_text()
    assert notice == (internal / "resources" / L.NOTICE_FILE).read_text()


def test_bundle_carries_no_gpl_component(installed: Path) -> None:
    notice = (installed / "usr/share/doc/segstudio/THIRD-PARTY-NOTICES.txt").read_text()
    blocks = [b for b in notice.split("\n\n") if "\n  licence: " in b]
    assert len(blocks) > 30
    for block in blocks:
        licence = block.split("\n  licence: ", 1)[1].split("\n", 1)[0]
        offered = block.split("\n  offered under: ", 1)[1].split("\n", 1)[0].split(" | ") if "offered under" in block else [licence]
        cats = {L.licence_category(a) for a in offered}
        assert cats - {"strong-copyleft"}, f"GPL/AGPL only: {block}"
    assert "PySide6" in notice and "LGPL-3.0" in notice
    # system libraries PyInstaller could pick up from the build machine that are GPL: never in the bundle
    libs = {p.name for p in (installed / "opt/segstudio/_internal").rglob("*.so*")}
    for gpl in ("libreadline", "libgdbm", "libgmp"):
        assert not [n for n in libs if n.startswith(gpl)], gpl
    assert not (installed / "opt/segstudio/_internal/triton").exists()


def test_torchvision_binaries_are_bundled(installed: Path) -> None:
    tv = installed / "opt/segstudio/_internal/torchvision"
    assert list(tv.glob("_C*.so")), "torchvision/_C missing: operator torchvision::nms does not exist"


def test_tarball_holds_the_same_one_folder_app(report: dict) -> None:
    with tarfile.open(REPO / report["tar"]) as tar:
        names = set()
        for member in tar:
            names.add(member.name)
            if len(names) > 200000:
                break
    assert "segstudio/segstudio" in names
    assert "segstudio/_internal/resources/samples/lungs/classes.json" in names


def _selftest(installed: Path, tmp_path: Path, *, env_extra: dict[str, str], shot: Path,
              xvfb: bool) -> subprocess.CompletedProcess[str]:
    launcher = installed / "usr/bin/segstudio"
    env = pkg_smoke.isolated_env(tmp_path / "home", **env_extra)
    cmd = [str(launcher), "--selftest", "--selftest-screenshot", str(shot)]
    if xvfb:
        with pkg_smoke.Xvfb() as display:
            env["DISPLAY"] = display
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_installed_selftest_offscreen(installed: Path, tmp_path: Path) -> None:
    shot = SHOTS / "selftest-offscreen.png"
    res = _selftest(installed, tmp_path, env_extra={"QT_QPA_PLATFORM": "offscreen"}, shot=shot, xvfb=False)
    line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    assert res.returncode == 0, f"{line}\n{res.stderr[-4000:]}"
    assert line.startswith("selftest ok: ") and "checkpoint" in line
    assert "qt offscreen" in line
    _check_screenshot(shot)


def test_installed_selftest_on_xvfb(installed: Path, tmp_path: Path) -> None:
    _need("Xvfb")
    shot = SHOTS / "selftest-xvfb.png"
    res = _selftest(installed, tmp_path, env_extra={}, shot=shot, xvfb=True)
    line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    assert res.returncode == 0, f"{line}\n{res.stderr[-4000:]}"
    assert line.startswith("selftest ok: ") and "qt xcb" in line
    _check_screenshot(shot)


def test_installed_app_opens_the_sample_on_xvfb(installed: Path, tmp_path: Path) -> None:
    _need("Xvfb", "xwininfo", "import")
    with pkg_smoke.Xvfb() as display:
        start = pkg_smoke.time_to_first_window(installed / "usr/bin/segstudio", display=display,
                                               home=tmp_path / "home", screenshot=SHOTS / "app-xvfb.png")
    assert start.title.endswith("segstudio") and "lungs" in start.title  # the bundled sample is open
    _check_screenshot(start.screenshot)
