"""Application settings: one typed, versioned schema in a human-readable JSON file (DESIGN rule 9).

Window geometry is the only thing kept in ``QSettings``; everything a user might want to read, copy or reset
lives here. Unknown keys from a newer version are kept on save; a corrupt file is set aside, never lost.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_text
from segstudio.core.paths import config_dir

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1


@dataclass(frozen=True)
class OverlaySettings:
    opacity: float = 0.5
    contour_only: bool = False


@dataclass(frozen=True)
class AppSettings:
    version: int = SETTINGS_VERSION
    overlay: OverlaySettings = field(default_factory=OverlaySettings)
    recent_datasets: tuple[str, ...] = ()
    last_dataset: str | None = None
    reviewer: str = ""
    max_recent: int = 10

    def with_recent(self, path: str) -> AppSettings:
        rec = (path, *(p for p in self.recent_datasets if p != path))[: self.max_recent]
        return replace(self, recent_datasets=rec, last_dataset=path)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recent_datasets"] = list(self.recent_datasets)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AppSettings:
        ov_fields = {f.name for f in fields(OverlaySettings)}
        ov = OverlaySettings(**{k: v for k, v in dict(d.get("overlay") or {}).items() if k in ov_fields})
        ov = replace(ov, opacity=min(1.0, max(0.0, float(ov.opacity))))
        top = {f.name for f in fields(AppSettings)} - {"overlay", "version"}
        kw = {k: v for k, v in d.items() if k in top}
        if "recent_datasets" in kw:
            kw["recent_datasets"] = tuple(str(p) for p in kw["recent_datasets"])
        return AppSettings(overlay=ov, **kw)


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load_settings(path: Path | None = None) -> AppSettings:
    p = path or settings_path()
    if not p.exists():
        return AppSettings()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        return AppSettings.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        backup = p.with_suffix(".corrupt.json")
        log.warning("settings file %s unreadable (%s); set aside as %s, using defaults", p, exc, backup)
        try:
            os.replace(p, backup)
        except OSError:
            pass
        return AppSettings()


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    p = path or settings_path()
    extra: dict[str, Any] = {}
    if p.exists():  # keep keys a newer segstudio wrote
        try:
            old = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(old, dict):
                extra = {k: v for k, v in old.items() if k not in {f.name for f in fields(AppSettings)}}
        except (OSError, ValueError):
            pass
    atomic_write_text(p, json.dumps({**extra, **settings.to_dict()}, indent=2) + "\n")
