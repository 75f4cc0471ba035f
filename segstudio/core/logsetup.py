"""Logging to a rotating file in the user's state dir (and the console when asked)."""

from __future__ import annotations

import logging
import logging.handlers

from segstudio.core.paths import state_dir

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_configured = False


def log_file():  # noqa: ANN201 - Path, kept lazy for frozen apps
    return state_dir() / "logs" / "segstudio.log"


def setup_logging(*, console: bool = False, level: int = logging.INFO) -> None:
    """Configure the ``segstudio`` logger once: a 1 MB x 5 rotating file, plus stderr when ``console``."""
    global _configured
    root = logging.getLogger("segstudio")
    if _configured:
        return
    root.setLevel(logging.DEBUG if console else level)
    try:
        path = log_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(fh)
    except OSError as exc:  # a read-only home must not stop the app
        logging.getLogger(__name__).warning("cannot write log file: %s", exc)
    if console:
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(sh)
    _configured = True
