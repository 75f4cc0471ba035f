"""Application settings: one typed, versioned schema in a human-readable JSON file (DESIGN rule 9).

``settings.json`` in the user's config folder (platformdirs; ``SEGSTUDIO_CONFIG_DIR`` overrides). Loading never
refuses to start the app over a bad file: a value of the wrong type or out of range is replaced by its default
with a warning, unknown keys are dropped with a warning, a damaged file is set aside as ``settings.json.bad``.
Qt's ``QSettings`` holds only window geometry.

Per-workspace state (last sample, sort order) lives in the workspace database instead
(``Workspace.state``), because it belongs to a dataset, not to the user.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from segstudio.workspace.atomic import atomic_write_text

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class AppSettings:
    """Everything a user can set. Change a field's meaning → bump ``SETTINGS_VERSION`` and add a migration."""

    version: int = SETTINGS_VERSION
    reviewer: str = ""
    autosave_interval_s: float = 10.0
    overlay_opacity: float = 0.5
    contour_only: bool = False
    brush_size: int = 12
    tp_colour: RGB = (46, 204, 113)
    fp_colour: RGB = (231, 76, 60)
    fn_colour: RGB = (52, 152, 219)
    confused_colour: RGB = (241, 196, 15)
    prefetch_neighbours: int = 2
    thumbnail_cache_mb: int = 512
    thumbnail_size: int = 128
    device: str = "auto"
    num_threads: int = 0
    recent_datasets: tuple[str, ...] = ()
    max_recent: int = 10
    undo_memory_mb: int = 512

    def with_recent(self, dataset: str) -> AppSettings:
        """Settings with ``dataset`` first in the recent list (deduplicated, capped at ``max_recent``)."""
        items = (dataset, *(d for d in self.recent_datasets if d != dataset))
        return dataclasses.replace(self, recent_datasets=items[: self.max_recent])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _colour(v: Any) -> RGB | None:
    if isinstance(v, list | tuple) and len(v) == 3 and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in v):
        return (int(v[0]), int(v[1]), int(v[2]))
    return None


def _num(lo: float, hi: float, kind: type) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or (kind is int and not float(v).is_integer()):
            return None
        return kind(v) if lo <= v <= hi else None

    return check


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "reviewer": _text,
    "autosave_interval_s": _num(1.0, 3600.0, float),
    "overlay_opacity": _num(0.0, 1.0, float),
    "contour_only": lambda v: v if isinstance(v, bool) else None,
    "brush_size": _num(1, 1024, int),
    "tp_colour": _colour,
    "fp_colour": _colour,
    "fn_colour": _colour,
    "confused_colour": _colour,
    "prefetch_neighbours": _num(0, 32, int),
    "thumbnail_cache_mb": _num(0, 1 << 20, int),
    "thumbnail_size": _num(16, 1024, int),
    "device": lambda v: v if isinstance(v, str) and (v in ("auto", "cpu", "mps") or v.startswith("cuda")) else None,
    "num_threads": _num(0, 1024, int),
    "recent_datasets": lambda v: tuple(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else None,
    "max_recent": _num(0, 100, int),
    "undo_memory_mb": _num(16, 1 << 20, int),
}

#: ``MIGRATIONS[v]`` turns a version-``v`` dict into a version-``v + 1`` dict.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def default_settings_path() -> Path:
    env = os.environ.get("SEGSTUDIO_CONFIG_DIR")
    if env:
        return Path(env) / "settings.json"
    import platformdirs

    return Path(platformdirs.user_config_dir("segstudio", appauthor=False)) / "settings.json"


def settings_from_dict(raw: dict[str, Any]) -> AppSettings:
    """Validate a settings dict (any version up to the current) into :class:`AppSettings`."""
    data = dict(raw)
    v = data.get("version", 1)
    v = v if isinstance(v, int) and not isinstance(v, bool) else 1
    while v < SETTINGS_VERSION and v in MIGRATIONS:
        data = MIGRATIONS[v](data)
        v += 1
    if v > SETTINGS_VERSION:
        log.warning("settings were written by a newer segstudio (version %d); reading the fields this one knows", v)
    known = {f.name for f in fields(AppSettings)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "version":
            continue
        if key not in known:
            log.warning("settings: unknown key %r dropped", key)
            continue
        ok = _VALIDATORS[key](value)
        if ok is None:
            log.warning("settings: %s=%r is not valid; using the default", key, value)
            continue
        values[key] = ok
    return AppSettings(**values)


def load_settings(path: Path | None = None) -> AppSettings:
    """The saved settings, or defaults when there is no file yet (or it is damaged — it is set aside)."""
    p = path or default_settings_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AppSettings()
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        bad = p.with_name(p.name + ".bad")
        log.warning("settings file %s is damaged (%s); kept as %s, using defaults", p, e, bad)
        os.replace(p, bad)
        return AppSettings()
    return settings_from_dict(raw)


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write ``settings`` atomically as indented JSON; returns the path."""
    p = path or default_settings_path()
    return atomic_write_text(p, json.dumps(settings.to_dict(), indent=2) + "\n")
