"""QApplication set-up and the entry point of the window."""

from __future__ import annotations

import logging
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from segstudio import __version__
from segstudio.core.paths import resources_dir, sample_dataset_dir

log = logging.getLogger(__name__)


def get_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("segstudio")
    app.setOrganizationName("segstudio")
    app.setApplicationVersion(__version__)
    icon = resources_dir() / "icons" / "segstudio.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    style = resources_dir() / "styles" / "dark.qss"
    if style.exists():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    return app


def create_main_window(*, dataset: str | None = None, format_name: str | None = None,
                       predictions: str | None = None, sample_id: str | None = None,
                       headless: bool = False):  # noqa: ANN201 - MainWindow, lazy
    """The main window with ``dataset`` (default: the bundled sample) open.

    ``headless``: errors raise (SegstudioError) instead of showing a dialog — for screenshots and self-tests.
    """
    from segstudio.gui.main_window import MainWindow

    win = MainWindow()
    _fit_to_screen(win)
    path = dataset or sample_dataset_dir()
    if headless:
        from segstudio.gui.screen.session import OpenRequest

        req = OpenRequest.resolve(path, format_name=format_name, predictions=predictions)
        ds = win.session.load(req.path, format_name=req.format_name)
        win.review.open(ds, predictions=req.predictions)
        win.session.set_dataset(ds, extra=win.review_screen.prepare_sample, side=win.review.prediction_mask)
    else:
        win.open_dataset(path, format_name=format_name, predictions=predictions)
    if sample_id and not win.session.go_to_id(sample_id):
        log.warning("sample %s not in the dataset; showing the first", sample_id)
    return win


def _fit_to_screen(win) -> None:  # noqa: ANN001 - a QMainWindow
    """Keep a first-time window (no saved geometry) inside the screen's available area."""
    screen = win.screen()
    if screen is None:
        return
    avail = screen.availableGeometry()
    w, h = min(win.width(), avail.width()), min(win.height(), avail.height())
    if (w, h) != (win.width(), win.height()):
        win.resize(w, h)


def run_app(*, dataset: str | None = None, format_name: str | None = None, predictions: str | None = None,
            sample_id: str | None = None) -> int:
    from segstudio.gui.common.errors import install_excepthook

    app = get_app()
    install_excepthook()
    win = create_main_window(dataset=dataset, format_name=format_name, predictions=predictions, sample_id=sample_id)
    win.show()
    return int(app.exec())
