"""Render the app icon (``resources/icons/segstudio.svg``) into every size the installers need.

Generated at build time, never committed: the SVG is the one source, so the icons cannot drift from it.
``python packaging/icons.py OUT_DIR`` writes ``png/segstudio-<N>.png`` (16…1024), ``segstudio.ico`` (Windows:
16…256) and ``segstudio.icns`` (macOS: 16…1024). Qt renders the SVG (offscreen, no display needed); Pillow
writes ICO and ICNS, so the Windows and macOS icons are made on any OS.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SVG = REPO / "resources" / "icons" / "segstudio.svg"
#: freedesktop hicolor sizes; ICO stops at 256, ICNS goes to 1024 (512@2x).
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)

log = logging.getLogger("packaging.icons")


def render_pngs(out: Path, *, svg: Path = SVG, sizes: tuple[int, ...] = PNG_SIZES) -> dict[int, Path]:
    """``{size: png path}``, each an RGBA render of ``svg`` at ``size``² with a transparent background."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"icons: {svg} is not a valid SVG")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[int, Path] = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        path = out / f"segstudio-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"icons: could not write {path}")
        paths[size] = path
    return paths


def write_ico(pngs: dict[int, Path], path: Path) -> Path:
    from PIL import Image

    biggest = Image.open(pngs[max(ICO_SIZES)]).convert("RGBA")
    biggest.save(path, format="ICO", sizes=[(s, s) for s in ICO_SIZES])
    return path


def write_icns(pngs: dict[int, Path], path: Path) -> Path:
    from PIL import Image

    # Pillow picks each ICNS slot from the images given (append_images), so every size is a real render
    base = Image.open(pngs[1024]).convert("RGBA")
    others = [Image.open(pngs[s]).convert("RGBA") for s in ICNS_SIZES if s != 1024]
    base.save(path, format="ICNS", append_images=others)
    return path


def generate(out: Path) -> dict[str, Path]:
    """Everything at once; returns ``{"png_dir", "ico", "icns", "svg"}``."""
    pngs = render_pngs(out / "png")
    return {
        "png_dir": out / "png",
        "ico": write_ico(pngs, out / "segstudio.ico"),
        "icns": write_icns(pngs, out / "segstudio.icns"),
        "svg": SVG,
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "package" / "icons"
    made = generate(target)
    log.info("icons: wrote %s", ", ".join(str(p) for p in made.values()))
