"""The status bar's widgets for one background job: a progress bar and a Stop button, at the right, hidden until
the job runs (label ranking, reports, ...)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QProgressBar, QStatusBar, QToolButton


def job_widgets(status_bar: QStatusBar, *, name: str, fmt: str, stop_tip: str,
                on_stop: Callable[[], None]) -> tuple[QProgressBar, QToolButton]:
    """``(progress, stop)`` added to ``status_bar``, hidden; ``name`` prefixes their object names
    (``<name>Progress``, ``<name>Stop``), ``fmt`` is the bar's text (``%v/%m``)."""
    progress = QProgressBar()
    progress.setObjectName(f"{name}Progress")
    progress.setMaximumWidth(220)
    # wide enough for its text on one line ("fold 2/4, epoch 3/20", "ranking labels 8/40") when the status bar is
    # crowded: squeezed, the text wrapped and was cut
    progress.setMinimumWidth(160)
    progress.setFormat(fmt)
    stop = QToolButton()
    stop.setObjectName(f"{name}Stop")
    stop.setText("Stop")
    stop.setToolTip(stop_tip)
    stop.clicked.connect(on_stop)
    for wdg in (progress, stop):
        status_bar.addPermanentWidget(wdg)
        wdg.setVisible(False)
    return progress, stop
