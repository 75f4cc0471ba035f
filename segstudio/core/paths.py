"""Where segstudio keeps its own files: user config, state (logs, crash journals), cache, and bundled resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP = "segstudio"


def _override(var: str) -> Path | None:
    v = os.environ.get(var)
    return Path(v) if v else None


def config_dir() -> Path:
    """Settings file lives here. ``SEGSTUDIO_CONFIG_DIR`` overrides (tests use it)."""
    return _override("SEGSTUDIO_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP))


def state_dir() -> Path:
    """Logs and recovery data. ``SEGSTUDIO_STATE_DIR`` overrides."""
    return _override("SEGSTUDIO_STATE_DIR") or Path(platformdirs.user_state_dir(APP))


def cache_dir() -> Path:
    """Thumbnails and other re-creatable data. ``SEGSTUDIO_CACHE_DIR`` overrides."""
    return _override("SEGSTUDIO_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    """Workspaces of read-only datasets (e.g. the bundled sample of an installed app)."""
    return _override("SEGSTUDIO_DATA_DIR") or Path(platformdirs.user_data_dir(APP))


def resources_dir() -> Path:
    """The ``resources/`` tree: beside the package in a checkout, inside the bundle in a frozen app."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    env = _override("SEGSTUDIO_RESOURCES")
    if env:
        return env
    return Path(__file__).resolve().parents[2] / "resources"


def sample_dataset_dir() -> Path:
    return resources_dir() / "samples" / "lungs"
