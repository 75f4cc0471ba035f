from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings, logs and caches of GUI tests go to a temp dir, never the user's."""
    for var in ("SEGSTUDIO_CONFIG_DIR", "SEGSTUDIO_STATE_DIR", "SEGSTUDIO_CACHE_DIR", "SEGSTUDIO_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
