"""Render the main window to a PNG without a screen (tests and ``segstudio screenshot``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop

from segstudio.core.errors import SegstudioError
from segstudio.gui.app import create_main_window, get_app


def render_main_window(out: Path, *, dataset: str | None = None, format_name: str | None = None,
                       predictions: str | None = None, sample_id: str | None = None,
                       size: tuple[int, int] = (1280, 820), view: str = "single") -> Path:
    get_app()
    win = create_main_window(dataset=dataset, format_name=format_name, predictions=predictions,
                             sample_id=sample_id, headless=True)
    win.view.set_view_mode(view)
    if sample_id and (win.session.current is None or win.session.current.sample.id != sample_id):
        raise SegstudioError(f"No sample {sample_id!r} in the dataset.", fix="Use an id that `segstudio info` lists.")
    win.resize(*size)
    win.show()
    for _ in range(5):
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    if win.review.predictions is not None:
        win.review.wait_for_scoring(60000)
    for _ in range(5):
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    win.canvas.fit()
    QCoreApplication.processEvents()
    pixmap = win.grab()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out), "PNG"):
        raise SegstudioError("Could not write the screenshot.", path=out, fix="Check that the folder is writable.")
    win.close()
    return out
