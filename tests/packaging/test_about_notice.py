"""The About dialog shows the third-party notice and the torch variant — without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from segstudio.core import licences as L

REPO = Path(__file__).resolve().parents[2]


def test_about_has_third_party_tab_and_variant(qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QTabWidget, QTextBrowser

    from segstudio.gui.window.about import AboutDialog

    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    tabs = dlg.findChild(QTabWidget)
    assert "Third-party software" in [tabs.tabText(i) for i in range(tabs.count())]
    text = dlg.findChild(QTextBrowser, "aboutThirdParty").toPlainText()
    assert "PySide6" in text and "torch " in text and "licence: " in text
    assert dlg.torch_variant == L.installed_torch_variant()
    assert dlg.torch_variant in {"CPU"} or dlg.torch_variant.startswith(("CUDA ", "ROCm "))


def test_about_prefers_the_bundled_notice(qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QTextBrowser

    from segstudio.gui.window.about import AboutDialog

    res = tmp_path / "resources"
    (res / "samples" / "lungs").mkdir(parents=True)
    (res / L.NOTICE_FILE).write_text("notice from the installer")
    (res / L.BUILD_INFO_FILE).write_text('{"torch_variant": "cpu"}')
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(res))
    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    assert dlg.findChild(QTextBrowser, "aboutThirdParty").toPlainText() == "notice from the installer"
    assert dlg.torch_variant == "CPU"


def test_about_dialog_does_not_import_torch() -> None:
    code = (
        "import sys; from segstudio.gui.app import get_app; from segstudio.gui.window.about import AboutDialog; "
        "get_app(); AboutDialog(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == "False"
