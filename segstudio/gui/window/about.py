"""About dialog: version, licence, and the licences/attribution of the bundled data."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from segstudio import __version__
from segstudio.core.licences import NOTICE_FILE, installed_torch_variant, notice_text
from segstudio.core.paths import resources_dir, sample_dataset_dir


def _read(path) -> str:  # noqa: ANN001
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return f"(not found: {path})"


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About segstudio")
        self.resize(640, 520)
        # read from files, never by importing torch: the dialog must open at once
        variant = installed_torch_variant(resources_dir())
        head = QLabel(
            f"<h2>segstudio {__version__}</h2>"
            "<p>Review ground truth against predictions, correct masks, retrain.</p>"
            f"<p>Python {platform.python_version()} · PySide6 {pyside_version} · PyTorch variant: {variant} · "
            f"{platform.system()} {platform.machine()}</p>"
            "<p>segstudio is licensed under the Apache License 2.0.</p>"
        )
        head.setTextFormat(Qt.TextFormat.RichText)
        head.setWordWrap(True)

        tabs = QTabWidget()
        data = QTextBrowser()
        data.setObjectName("aboutDataLicences")
        data.setMarkdown(_read(sample_dataset_dir() / "README.md"))
        tabs.addTab(data, "Bundled data")
        lic = QTextBrowser()
        lic.setPlainText(_read(resources_dir().parent / "LICENSE") if (resources_dir().parent / "LICENSE").exists()
                         else _read(resources_dir() / "LICENSE"))
        tabs.addTab(lic, "Licence")
        third = QTextBrowser()
        third.setObjectName("aboutThirdParty")
        # the bundle carries the notice generated at build time (no package metadata inside an installer)
        third.setPlainText(notice_text(resources_dir() / NOTICE_FILE, torch_variant=variant))
        tabs.addTab(third, "Third-party software")
        self.torch_variant = variant

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(tabs, 1)
        lay.addWidget(buttons)
