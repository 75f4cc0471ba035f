"""The pieces of the Linux build that need no PyInstaller run: Depends derivation, the launcher, icons, the
desktop entry and MIME type, the Windows version resource. (The build itself: test_installer.py.)"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINUX = REPO / "packaging" / "linux"


def _load(name: str):  # noqa: ANN202
    # by file path: packaging/ is no package (and must not shadow PyPI's `packaging` on sys.path)
    spec = importlib.util.spec_from_file_location(f"segstudio_pkg_{name}", REPO / "packaging" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load("build")


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libwayland-egl.so.1", "libwayland-egl1"),
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libgtk-3.so.0", "libgtk-3-0"),
        ("libGL.so.1", "libgl1"),
        ("libfoo2.so.3.1.4", "libfoo2-3"),
        ("ld-linux-x86-64.so.2", None),
    ],
)
def test_debian_package_for_soname(soname: str, package: str | None) -> None:
    assert build.debian_package_for_soname(soname) == package


def test_glibc_floor_is_the_highest_symbol_version(tmp_path: Path) -> None:
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    a.write_bytes(b"\x7fELF....GLIBC_2.17\x00GLIBC_2.34\x00")
    b.write_bytes(b"\x7fELF....GLIBC_2.28\x00GLIBC_PRIVATE\x00GLIBC_2.3.4\x00")
    assert build.glibc_floor([a, b]) == "2.34"
    assert build.elf_files(tmp_path) and all(build._is_elf(p) for p in (a, b))


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system")
def test_depends_of_a_real_library_names_its_package(tmp_path: Path) -> None:
    # python's own _ssl module links libssl: its owner must come out of dpkg, libc6 with a floor
    import _ssl

    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(_ssl.__file__, app / Path(_ssl.__file__).name)
    depends, unresolved = build.compute_depends(app)
    assert depends[0].startswith("libc6 (>= 2.")
    assert unresolved == []
    assert any(d.startswith("libssl") for d in depends), depends


def test_launcher_runs_the_app_next_to_it_wherever_unpacked(tmp_path: Path) -> None:
    root = tmp_path / "scratch root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "opt/segstudio").mkdir(parents=True)
    launcher = root / "usr/bin/segstudio"
    shutil.copy(LINUX / "launcher.sh", launcher)
    launcher.chmod(0o755)
    app = root / "opt/segstudio/segstudio"
    app.write_text('#!/bin/sh\necho "app:$0 args:$*"\n')
    app.chmod(0o755)
    link = tmp_path / "bin-link"
    link.symlink_to(launcher)  # started through a symlink (e.g. update-alternatives) it still finds the app
    for entry in (launcher, link):
        out = subprocess.run([str(entry), "--selftest", "a b"], capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"app:{root}/usr/bin/../../opt/segstudio/segstudio args:--selftest a b"


def test_desktop_entry_and_mime_type_agree() -> None:
    desktop = dict(
        line.split("=", 1) for line in (REPO / "resources" / "desktop" / "segstudio.desktop").read_text().splitlines() if "=" in line
    )
    assert desktop["Type"] == "Application" and desktop["Exec"] == "segstudio %f" and desktop["Icon"] == "segstudio"
    mime_types = [m for m in desktop["MimeType"].split(";") if m]
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    tree = ET.parse(LINUX / "segstudio-mime.xml")
    declared = [e.get("type") for e in tree.getroot().findall("m:mime-type", ns)]
    assert mime_types == declared == ["application/x-segstudio-workspace"]
    globs = [g.get("pattern") for g in tree.getroot().iter(f"{{{ns['m']}}}glob")]
    assert "*.segstudio" in globs and all("/" not in g for g in globs)  # globs see base names only
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(REPO / "resources" / "desktop" / "segstudio.desktop")], check=True)


def test_control_template_has_every_field_build_fills() -> None:
    text = (LINUX / "control.in").read_text()
    for key in ("@VERSION@", "@ARCH@", "@DEPENDS@", "@INSTALLED_SIZE_KB@", "@VARIANT@"):
        assert key in text
    # a Description's continuation lines start with a space; an empty one is " ."
    body = text.split("Description: ", 1)[1].splitlines()[1:]
    assert body and all(line.startswith(" ") for line in body)


def test_icons_in_every_size_from_the_svg(tmp_path: Path) -> None:
    icons = _load("icons")
    made = icons.generate(tmp_path)
    from PIL import Image

    for size in icons.PNG_SIZES:
        with Image.open(made["png_dir"] / f"segstudio-{size}.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
            assert im.getpixel((0, 0))[3] == 0  # transparent corner outside the rounded square
    with Image.open(made["ico"]) as ico:
        assert set(ico.info["sizes"]) == {(s, s) for s in icons.ICO_SIZES}
    with Image.open(made["icns"]) as icns:
        assert icns.size == (1024, 1024)


def test_windows_version_resource_parses(tmp_path: Path) -> None:
    spec_common = _load("spec_common")
    path = spec_common._windows_version_file(tmp_path, "0.1.0")
    text = path.read_text()
    assert "filevers=(0, 1, 0, 0)" in text and "StringStruct('ProductVersion', '0.1.0')" in text
    # PyInstaller evaluates the file as one Python expression over its version classes (pefile, Windows only,
    # behind them): evaluate it over recorders to prove it is well-formed
    names = ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct", "VarFileInfo",
             "VarStruct")
    recorded = {n: (lambda *a, _n=n, **k: (_n, a, k)) for n in names}
    info = eval(text, {"__builtins__": {}}, recorded)  # noqa: S307 - our own generated file
    assert info[0] == "VSVersionInfo" and info[2]["ffi"][2]["filevers"] == (0, 1, 0, 0)


def test_specs_share_one_module() -> None:
    for os_name in ("linux", "windows", "macos"):
        spec = (REPO / "packaging" / os_name / "segstudio.spec").read_text()
        assert f'spec_common.make_app(globals(), os_name="{os_name}")' in spec
    assert os.access(REPO / "packaging" / "macos" / "make_dmg.sh", os.X_OK)
