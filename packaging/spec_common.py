"""What every segstudio installer bundles — one module shared by the Linux, Windows and macOS specs.

A per-OS spec (``packaging/<os>/segstudio.spec``) is three lines: put this folder on ``sys.path``, import this
module, call :func:`make_app` with the spec's globals. Everything the stack needs lives here, once:

- hooks (``packaging/hooks``): segstudio's by-name imports, qtawesome's fonts, smp's encoders, torchvision's
  compiled operators (``operator torchvision::nms does not exist`` otherwise), albumentations' transforms;
- data: the ``resources/`` tree (bundled sample dataset, icons, styles), ``LICENSE``, the generated third-party
  notice and ``build-info.json`` (version, torch variant, commit), and the ``dist-info`` metadata of the whole
  runtime closure (several packages read their own or their dependencies' versions at import time);
- excludes: what is big and never used by the app (triton: torch.compile only; ONNX: the optional ``onnx``
  extra; SAM: the optional ``sam`` extra; test/dev tools), and ``readline``, whose GNU library is GPL and may not be bundled.

The one-folder layout is the same on every OS: ``segstudio[.exe]`` plus ``_internal/``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("packaging.spec")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: The source tree the app is built from: the checkout, or a ``git archive`` snapshot (``build.py --from-git``)
#: so that uncommitted edits in a shared working tree never end up in an installer.
SRC = Path(os.environ.get("SEGSTUDIO_PACKAGE_SOURCE", REPO))
APP_NAME = "segstudio"
APP_ID = "org.segstudio.segstudio"
#: Generated inputs (icons, notice, version resource); ``SEGSTUDIO_PACKAGE_GENERATED`` overrides.
GENERATED = Path(os.environ.get("SEGSTUDIO_PACKAGE_GENERATED", REPO / "build" / "package" / "generated"))

# Modules never bundled: size without use, or a licence we may not ship.
EXCLUDES: tuple[str, ...] = (
    "triton",  # torch.compile's GPU code generator (~0.9 GB); the app never compiles
    "onnx", "onnxruntime", "onnxscript",  # the optional `onnx` extra: pip install segstudio[onnx]
    "segment_anything",  # the optional `sam` extra (Click to Segment): pip install segstudio[sam]
    "tkinter", "_tkinter", "matplotlib.backends._backend_tk", "matplotlib.backends.backend_tkagg",
    "readline",  # links GNU readline (GPL-3.0); the GUI app has no interactive prompt
    "pytest", "_pytest", "hypothesis", "mypy", "ruff", "importlinter", "IPython", "jupyter", "notebook",
    "PyInstaller", "pip", "setuptools._vendor", "tensorboard", "torch.utils.tensorboard",
)
HIDDEN_IMPORTS: tuple[str, ...] = ("PySide6.QtSvg",)  # the SVG icon and qtawesome's renderer


def _version() -> str:
    sys.path.insert(0, str(SRC))
    try:
        from segstudio import __version__
    finally:
        sys.path.pop(0)
    return __version__


def _git_commit() -> str:
    try:
        return os.environ.get("SEGSTUDIO_PACKAGE_COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def torch_tag() -> str:
    """``cu130`` / ``cpu`` / ``rocm6.2``: the variant of the torch this build bundles (goes into file names)."""
    sys.path.insert(0, str(SRC))
    try:
        from segstudio.core.licences import torch_variant_tag
    finally:
        sys.path.pop(0)
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("packaging: torch is not installed in the build environment")
    version_py = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    # the same parser the About dialog uses, so the file name and the dialog cannot disagree
    return torch_variant_tag(version_py.read_text(encoding="utf-8"))


def _windows_version_file(out: Path, version: str) -> Path:
    nums = [int(p) if p.isdigit() else 0 for p in version.split("+")[0].split(".")[:3]] + [0]
    while len(nums) < 4:
        nums.append(0)
    t = tuple(nums[:4])
    text = f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={t}, prodvers={t}, mask=0x3f, flags=0x0, OS=0x40004, fileType=0x1, subtype=0x0,
                    date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'segstudio developers'),
      StringStruct('FileDescription', 'segstudio - review, correct and retrain segmentation masks'),
      StringStruct('FileVersion', '{version}'),
      StringStruct('InternalName', 'segstudio'),
      StringStruct('LegalCopyright', 'Apache-2.0; third-party notices in THIRD-PARTY-NOTICES.txt'),
      StringStruct('OriginalFilename', 'segstudio.exe'),
      StringStruct('ProductName', 'segstudio'),
      StringStruct('ProductVersion', '{version}')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""
    path = out / "version_info.txt"
    path.write_text(text, encoding="utf-8")
    return path


def generate(out: Path = GENERATED) -> dict[str, Any]:
    """Write the generated inputs into ``out``: icons (from the SVG), the third-party notice (from installed
    metadata; fails on any GPL/AGPL component), ``build-info.json`` and the Windows version resource."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(HERE / "icons.py"), str(out / "icons")], check=True)
    version, tag = _version(), torch_tag()
    sys.path.insert(0, str(SRC))
    try:
        from segstudio.core.licences import BUILD_INFO_FILE, NOTICE_FILE, describe_variant, write_notice
    finally:
        sys.path.pop(0)
    notice = out / NOTICE_FILE
    # PyInstaller and the dev tools build the app but are not in it; only the runtime closure is walked
    components = write_notice(notice, torch_variant=describe_variant(tag))
    info = {
        "name": APP_NAME,
        "version": version,
        "torch_variant": tag,
        "commit": _git_commit(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": ".".join(map(str, sys.version_info[:3])),
        "platform": sys.platform,
        "components": len(components),
    }
    (out / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {
        "version": version,
        "tag": tag,
        "notice": notice,
        "build_info": out / BUILD_INFO_FILE,
        "icons": out / "icons",
        "version_file": _windows_version_file(out, version),
        "components": components,
    }


def _metadata_datas() -> list[tuple[str, str]]:
    from PyInstaller.utils.hooks import copy_metadata

    sys.path.insert(0, str(SRC))
    try:
        from segstudio.core.licences import dependency_closure
    finally:
        sys.path.pop(0)
    datas: list[tuple[str, str]] = []
    for dist in dependency_closure():
        name = dist.metadata["Name"]
        if name.lower() in {"triton"}:
            continue
        try:
            datas += copy_metadata(name)
        except Exception:  # a distribution without a findable dist-info: its code still ships
            log.warning("packaging: no metadata copied for %s", name)
    return datas


def make_app(g: dict[str, Any], *, os_name: str, console: bool = True) -> None:
    """Build the one-folder app inside a spec. ``g``: the spec's ``globals()`` (PyInstaller injects Analysis,
    PYZ, EXE, COLLECT, BUNDLE there). ``os_name``: ``linux``, ``windows`` or ``macos``. ``console``: keep a
    console on Windows (the ``--selftest`` line and errors stay visible from a terminal)."""
    gen = generate()
    icons: Path = gen["icons"]
    sys.path.insert(0, str(SRC))
    from segstudio.core.licences import BUILD_INFO_FILE, NOTICE_FILE

    datas = [
        (str(SRC / "resources"), "resources"),
        (str(SRC / "LICENSE"), "."),
        (str(gen["notice"]), "resources"),
        (str(gen["build_info"]), "resources"),
        (str(icons / "png" / "segstudio-256.png"), "resources/icons"),
    ]
    datas += _metadata_datas()
    a = g["Analysis"](
        [str(HERE / "entry.py")],
        pathex=[str(SRC)],
        binaries=[],
        datas=datas,
        hiddenimports=list(HIDDEN_IMPORTS),
        hookspath=[str(HERE / "hooks")],
        hooksconfig={},
        runtime_hooks=[],
        excludes=list(EXCLUDES),
        noarchive=False,
        optimize=0,
    )
    # Qt's GTK3 platform theme needs GTK 3 (a Depends of 40+ packages) only to mimic the desktop's dialogs;
    # without it Qt uses its own theme, and segstudio styles itself
    a.binaries = [b for b in a.binaries if "platformthemes/libqgtk3" not in b[0].replace("\\", "/")]
    pyz = g["PYZ"](a.pure)
    icon = {"windows": icons / "segstudio.ico", "macos": icons / "segstudio.icns"}.get(os_name)
    exe = g["EXE"](
        pyz,
        a.scripts,
        [],
        exclude_binaries=True,
        name=APP_NAME,
        debug=False,
        bootloader_ignore_signals=False,
        strip=False,  # stripping CUDA libraries saves little and takes minutes
        upx=False,
        console=console,
        icon=str(icon) if icon else None,
        version=str(gen["version_file"]) if os_name == "windows" else None,
        contents_directory="_internal",
    )
    coll = g["COLLECT"](exe, a.binaries, a.datas, strip=False, upx=False, name=APP_NAME)
    if os_name == "macos":
        g["BUNDLE"](
            coll,
            name=f"{APP_NAME}.app",
            icon=str(icon),
            bundle_identifier=APP_ID,
            version=gen["version"],
            info_plist={
                "CFBundleShortVersionString": gen["version"],
                "NSHighResolutionCapable": True,
                "LSMinimumSystemVersion": "12.0",
                "CFBundleDocumentTypes": [
                    {
                        "CFBundleTypeName": "segstudio workspace",
                        "CFBundleTypeExtensions": ["segstudio"],
                        "CFBundleTypeRole": "Editor",
                        "LSTypeIsPackage": True,
                    }
                ],
            },
        )
    # keep a record of what went in, for the build report and the tests
    (GENERATED / "bundle.json").write_text(
        json.dumps({"os": os_name, "tag": gen["tag"], "version": gen["version"],
                    "notice": NOTICE_FILE, "build_info": BUILD_INFO_FILE}, indent=2) + "\n",
        encoding="utf-8",
    )
