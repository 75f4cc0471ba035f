"""``make package`` on Linux: the one-folder app (PyInstaller), then a ``.deb`` and a ``.tar.gz`` of it.

    python packaging/build.py [--from-git REF] [--skip-pyinstaller] [--no-tar]

Writes into ``dist/``:

- ``dist/segstudio/``                                    the one-folder app (``segstudio`` + ``_internal/``)
- ``dist/segstudio_<version>+<variant>_<arch>.deb``       zstd; /opt/segstudio, /usr/bin/segstudio, desktop entry,
                                                          icons, MIME type, copyright + third-party notice
- ``dist/segstudio-<version>-linux-<machine>-<variant>.tar.gz``
- ``dist/package-report.json``                           stage times, sizes, Depends, artifact names

``<variant>`` is the torch in the build environment: ``cu130`` (CUDA 13.0) or ``cpu``. ``Depends`` is computed
from the bundle: every shared library a bundled ELF file needs that the bundle does not carry is looked up in
the build machine's dpkg database (the NVIDIA driver's ``libcuda`` is left out: the app falls back to the CPU
without it). Windows and macOS builds run their spec directly (see ``.github/workflows/release.yml``).

The app is built from a snapshot in ``build/package/src``: a copy of the working tree taken at the start, or
with ``--from-git HEAD`` the committed tree (a shared checkout whose uncommitted edits must stay out).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DIST = REPO / "dist"
WORK = REPO / "build" / "package"
APP = "segstudio"
#: Provided by the GPU driver, not by a package the app can depend on; torch loads them only when present.
DRIVER_LIBS = re.compile(r"^lib(cuda|nvidia-|nvcuvid|nvoptix|OpenCL)", re.IGNORECASE)
#: Needed by dlopen, not by any NEEDED entry: Qt's xcb plugin loads these at run time (same list as
#: tools/sysdeps.sh, which a source checkout uses).
QT_RUNTIME_PACKAGES = ("libegl1", "libgl1", "libxkbcommon-x11-0", "libfontconfig1", "libdbus-1-3",
                       "libxcb-cursor0", "libglib2.0-0")

log = logging.getLogger("packaging.build")


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    log.info("$ %s", " ".join(cmd))
    return subprocess.run(cmd, check=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def deb_arch() -> str:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]


def needed_sonames(files: list[Path]) -> dict[str, set[str]]:
    """``{soname: {files needing it}}`` from the ELF dynamic sections (``readelf -d``)."""
    out: dict[str, set[str]] = {}
    for f in files:
        res = subprocess.run(["readelf", "-d", str(f)], capture_output=True, text=True)
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", res.stdout):
            out.setdefault(soname, set()).add(f.name)
    return out


def glibc_floor(files: list[Path]) -> str:
    """Highest ``GLIBC_x.y`` symbol version any bundled ELF file asks for: the ``libc6 (>= x.y)`` bound."""
    best = (2, 17)
    pat = re.compile(rb"GLIBC_(2\.\d+)(?:\.\d+)?\x00")
    for f in files:
        data = f.read_bytes()
        for m in pat.finditer(data):
            ver = tuple(int(x) for x in m.group(1).decode().split("."))
            best = max(best, ver)  # type: ignore[assignment, arg-type]
    return f"{best[0]}.{best[1]}"


def _ldconfig_paths() -> dict[str, str]:
    res = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    paths: dict[str, str] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
        if m and ("x86-64" in m.group(2) or "AArch64" in m.group(2) or platform.machine() not in {"x86_64", "aarch64"}):
            paths.setdefault(m.group(1), m.group(3))
    return paths


def _owning_package(path: str) -> str | None:
    candidates = {path, os.path.realpath(path)}
    for c in list(candidates):
        # usrmerge: dpkg may know /lib/x86_64-linux-gnu/X as /usr/lib/x86_64-linux-gnu/X or the other way round
        if c.startswith("/usr/lib/"):
            candidates.add(c[len("/usr"):])
        elif c.startswith("/lib/"):
            candidates.add("/usr" + c)
    for c in candidates:
        res = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout:
            return res.stdout.split(":", 1)[0].strip()
    return None


def debian_package_for_soname(soname: str) -> str | None:
    """Debian's library package name for a soname (policy 8.1): ``libwayland-egl.so.1`` → ``libwayland-egl1``,
    ``libfoo2.so.3`` → ``libfoo2-3``. Used for libraries the build machine lacks (a Qt plugin's optional
    backend, e.g. Wayland), which dpkg cannot be asked about."""
    m = re.fullmatch(r"(lib[A-Za-z0-9_+.-]+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if m is None:
        return None
    name, major = m.group(1).lower().replace("_", "-"), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def compute_depends(app_dir: Path) -> tuple[list[str], list[str]]:
    """``(Depends entries, sonames left unresolved)`` for the bundle in ``app_dir``: dpkg's owner of each system
    library the bundle needs, or Debian's naming rule for libraries this machine lacks."""
    files = elf_files(app_dir)
    bundled = {p.name for p in app_dir.rglob("*") if ".so" in p.name}
    needed = needed_sonames(files)
    system = {s for s in needed if s not in bundled and not DRIVER_LIBS.match(s)}
    paths = _ldconfig_paths()
    packages: set[str] = set()
    unresolved: list[str] = []
    for soname in sorted(system):
        path = paths.get(soname)
        pkg = _owning_package(path) if path else None
        if pkg is None:
            pkg = debian_package_for_soname(soname)
            log.warning("Depends: %s is not installed here; assuming package %s", soname, pkg)
        if pkg is None:
            unresolved.append(soname)
            continue
        packages.add(pkg)
    packages.update(QT_RUNTIME_PACKAGES)
    packages.discard("libc6")
    depends = [f"libc6 (>= {glibc_floor(files)})"] + sorted(packages)
    return depends, unresolved


def git_snapshot(ref: str) -> tuple[Path, str]:
    """Export the committed tree at ``ref`` into ``build/package/src``: what a clean checkout would build."""
    src = WORK / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "--short=12", ref], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {ref} failed")
    return src, commit


def worktree_snapshot() -> Path:
    """Copy the working tree's app sources into ``build/package/src``: analysis takes minutes, and a file edited
    meanwhile must not leave the bundle half old, half new."""
    src = WORK / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("segstudio", "resources"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("LICENSE", "pyproject.toml"):
        shutil.copy2(REPO / name, src / name)
    return src


def run_pyinstaller(*, source: Path | None = None, commit: str = "") -> float:
    t0 = time.perf_counter()
    spec = HERE / "linux" / "segstudio.spec"
    env = dict(os.environ)
    if source is not None:
        # PYTHONPATH puts the snapshot ahead of the editable install's finder (which sits at the end of
        # sys.meta_path), so analysis and the notice both see the snapshot's segstudio
        env.update(SEGSTUDIO_PACKAGE_SOURCE=str(source), SEGSTUDIO_PACKAGE_COMMIT=commit,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH", "")])))
    _run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
          "--distpath", str(DIST), "--workpath", str(WORK / "work"), str(spec)], env=env)
    return time.perf_counter() - t0


def _install(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(mode)


def build_deb(app_dir: Path, *, version: str, tag: str, components: int) -> tuple[Path, list[str], list[str]]:
    arch = deb_arch()
    root = WORK / "debroot"
    if root.exists():
        shutil.rmtree(root)
    (root / "opt").mkdir(parents=True)
    # hard links: the 4 GB folder is not copied again, dpkg-deb reads the same inodes
    _run(["cp", "-al", str(app_dir), str(root / "opt" / APP)])
    _install(HERE / "linux" / "launcher.sh", root / "usr" / "bin" / APP, 0o755)
    _install(REPO / "resources" / "desktop" / "segstudio.desktop", root / "usr" / "share" / "applications" / f"{APP}.desktop")
    _install(HERE / "linux" / "segstudio-mime.xml", root / "usr" / "share" / "mime" / "packages" / f"{APP}.xml")
    icons = WORK / "generated" / "icons" / "png"
    for png in sorted(icons.glob("segstudio-*.png")):
        size = int(png.stem.rsplit("-", 1)[1])
        if size <= 512:  # hicolor stops at 512
            _install(png, root / "usr/share/icons/hicolor" / f"{size}x{size}" / "apps" / f"{APP}.png")
    _install(REPO / "resources" / "icons" / "segstudio.svg", root / "usr/share/icons/hicolor/scalable/apps/segstudio.svg")
    doc = root / "usr" / "share" / "doc" / APP
    notice = WORK / "generated" / "THIRD-PARTY-NOTICES.txt"
    _install(notice, doc / "THIRD-PARTY-NOTICES.txt")
    (doc / "copyright").write_text((HERE / "linux" / "copyright.in").read_text().replace("@COMPONENTS@", str(components)))
    (doc / "copyright").chmod(0o644)

    depends, unresolved = compute_depends(app_dir)
    deb_version = f"{version}+{tag}"
    variant = describe(tag)
    control = (HERE / "linux" / "control.in").read_text()
    for key, value in {"@VERSION@": deb_version, "@ARCH@": arch, "@DEPENDS@": ", ".join(depends),
                       "@INSTALLED_SIZE_KB@": str(dir_size(root) // 1024), "@VARIANT@": variant}.items():
        control = control.replace(key, value)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(control)
    # no maintainer scripts: desktop-file-utils, shared-mime-info and hicolor-icon-theme refresh their caches
    # through dpkg file triggers on the folders written above
    out = DIST / f"{APP}_{deb_version}_{arch}.deb"
    threads = str(max(1, (os.cpu_count() or 2)))
    _run(["dpkg-deb", "--root-owner-group", f"--threads-max={threads}", "-Zzstd", "-z3", "--build", str(root),
          str(out)])
    shutil.rmtree(root)
    return out, depends, unresolved


def build_tar(app_dir: Path, *, version: str, tag: str) -> Path:
    out = DIST / f"{APP}-{version}-linux-{platform.machine()}-{tag}.tar.gz"
    gzip = "pigz" if shutil.which("pigz") else "gzip"
    _run(["tar", "--owner=0", "--group=0", "--numeric-owner", "-I", f"{gzip} -6", "-C", str(app_dir.parent),
          "-cf", str(out), app_dir.name])
    return out


def describe(tag: str) -> str:
    sys.path.insert(0, str(REPO))
    from segstudio.core.licences import describe_variant

    return describe_variant(tag)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python packaging/build.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-pyinstaller", action="store_true", help="reuse dist/segstudio from an earlier build")
    ap.add_argument("--no-tar", action="store_true", help="skip the .tar.gz")
    ap.add_argument("--from-git", metavar="REF", default=os.environ.get("SEGSTUDIO_PACKAGE_FROM_GIT") or None,
                    help="build the committed tree at REF (e.g. HEAD) instead of the working tree "
                         "(env SEGSTUDIO_PACKAGE_FROM_GIT)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not sys.platform.startswith("linux"):
        log.error("build.py makes the Linux packages; on Windows/macOS run the spec (docs/packaging.md)")
        return 2
    for tool in ("dpkg-deb", "readelf", "zstd"):
        if shutil.which(tool) is None:
            log.error("%s is missing: run `bash packaging/sysdeps.sh` (as root) first", tool)
            return 2
    DIST.mkdir(exist_ok=True)
    t_all = time.perf_counter()
    app_dir = DIST / APP
    stages: dict[str, float] = {}
    if not args.skip_pyinstaller:
        if args.from_git:
            source, commit = git_snapshot(args.from_git)
        else:
            source, commit = worktree_snapshot(), ""
        stages["pyinstaller_s"] = run_pyinstaller(source=source, commit=commit)
        shutil.rmtree(source)
    if not (app_dir / APP).is_file():
        log.error("no one-folder app at %s", app_dir)
        return 1
    info = json.loads((app_dir / "_internal" / "resources" / "build-info.json").read_text())
    version, tag = info["version"], info["torch_variant"]

    t0 = time.perf_counter()
    deb, depends, unresolved = build_deb(app_dir, version=version, tag=tag, components=int(info["components"]))
    stages["deb_s"] = time.perf_counter() - t0
    tar = None
    if not args.no_tar:
        t0 = time.perf_counter()
        tar = build_tar(app_dir, version=version, tag=tag)
        stages["tar_s"] = time.perf_counter() - t0
    stages["total_s"] = time.perf_counter() - t_all
    report = {
        "version": version,
        "torch_variant": tag,
        "commit": info.get("commit"),
        "built": info.get("built"),
        "cpu_count": os.cpu_count(),
        "stages": {k: round(v, 1) for k, v in stages.items()},
        "onefolder": str(app_dir.relative_to(REPO)),
        "onefolder_bytes": dir_size(app_dir),
        "deb": str(deb.relative_to(REPO)),
        "deb_bytes": deb.stat().st_size,
        "tar": str(tar.relative_to(REPO)) if tar else None,
        "tar_bytes": tar.stat().st_size if tar else None,
        "depends": depends,
        "unresolved_sonames": unresolved,
    }
    (DIST / "package-report.json").write_text(json.dumps(report, indent=2) + "\n")
    mb = 1024 * 1024
    log.info("one-folder %s: %.0f MB", app_dir, report["onefolder_bytes"] / mb)
    log.info(".deb %s: %.0f MB", deb, report["deb_bytes"] / mb)
    if tar:
        log.info(".tar.gz %s: %.0f MB", tar, report["tar_bytes"] / mb)
    log.info("stages: %s", ", ".join(f"{k} {v:.0f}" for k, v in report["stages"].items()))
    if unresolved:
        log.warning("sonames no installed package provides (not in Depends): %s", ", ".join(unresolved))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
