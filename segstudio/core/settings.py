"""Application settings: one typed, versioned schema in a human-readable JSON file (DESIGN rule 9).

Window geometry is the only thing kept in ``QSettings``; everything a user might want to read, copy or reset
lives here. Unknown keys from a newer version are kept on save; a corrupt file is set aside, never lost; a
section or value of the wrong type falls back to its default with a warning, the rest of the file still loads.

Fields added since version 1 (colours, autosave, compute, workspace, shortcuts, tour, assist) are additive: an older
segstudio ignores them and a version-1 file loads with their defaults, so ``SETTINGS_VERSION`` stays 1 until a
change is incompatible.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_text
from segstudio.core.paths import config_dir, data_dir

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1
RGB = tuple[int, int, int]

#: Where workspaces go: ``beside`` the dataset (``<dataset>.segstudio``, user data when read-only), always under
#: the ``user_data`` folder, or under a chosen ``folder``.
WORKSPACE_LOCATIONS = ("beside", "user_data", "folder")
MASK_STYLES = ("fill", "contour")


@dataclass(frozen=True)
class OverlaySettings:
    opacity: float = 0.5
    contour_only: bool = False


@dataclass(frozen=True)
class ColourSettings:
    """``palette``: see :mod:`segstudio.core.palettes`, for datasets that name no colours. ``by_class``: class
    name → colour for every dataset; ``by_dataset``: dataset root → class name → colour (wins over by_class)."""

    palette: str = "okabe_ito"
    by_class: dict[str, RGB] = field(default_factory=dict)
    by_dataset: dict[str, dict[str, RGB]] = field(default_factory=dict)

    def overrides_for(self, dataset_root: str | None) -> dict[str, RGB]:
        out = dict(self.by_class)
        if dataset_root is not None:
            out.update(self.by_dataset.get(dataset_key(dataset_root), {}))
        return out


@dataclass(frozen=True)
class ComputeSettings:
    """Defaults for training and inference: ``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    ``threads`` 0 means automatic (all cores but one)."""

    device: str = "auto"
    threads: int = 0


@dataclass(frozen=True)
class WorkspaceLocationSettings:
    location: str = "beside"
    folder: str = ""

    def home(self) -> Path | None:
        """The folder every workspace goes under (``SEGSTUDIO_WORKSPACE_HOME``), or None for beside-the-dataset."""
        if self.location == "user_data":
            return data_dir() / "workspaces"
        if self.location == "folder" and self.folder:
            return Path(self.folder).expanduser()
        return None


@dataclass(frozen=True)
class AssistSettings:
    """The model-assisted tools: ``promptable_model`` is the SAM checkpoint or ONNX pair the user chose ("" for
    none; nothing is ever downloaded); ``sam_multimask``: one click alone asks for SAM's three candidate masks
    and keeps the best-scored."""

    promptable_model: str = ""
    sam_multimask: bool = True


@dataclass(frozen=True)
class AppSettings:
    version: int = SETTINGS_VERSION
    overlay: OverlaySettings = field(default_factory=OverlaySettings)
    recent_datasets: tuple[str, ...] = ()
    last_dataset: str | None = None
    reviewer: str = ""
    max_recent: int = 10
    autosave_s: int = 10
    colours: ColourSettings = field(default_factory=ColourSettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    workspace: WorkspaceLocationSettings = field(default_factory=WorkspaceLocationSettings)
    #: action name → its key sequences (portable text, e.g. ``"Ctrl+Shift+S"``); only the ones the user rebound.
    shortcuts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    show_tour: bool = True
    assist: AssistSettings = field(default_factory=AssistSettings)

    def with_recent(self, path: str) -> AppSettings:
        rec = (path, *(p for p in self.recent_datasets if p != path))[: self.max_recent]
        return replace(self, recent_datasets=rec, last_dataset=path)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recent_datasets"] = list(self.recent_datasets)
        d["shortcuts"] = {k: list(v) for k, v in self.shortcuts.items()}
        c = d["colours"]
        c["by_class"] = {k: list(v) for k, v in self.colours.by_class.items()}
        c["by_dataset"] = {r: {k: list(v) for k, v in m.items()} for r, m in self.colours.by_dataset.items()}
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AppSettings:
        version = d.get("version", SETTINGS_VERSION)
        if isinstance(version, int) and version > SETTINGS_VERSION:
            log.warning("settings file is version %s, newer than this segstudio (%s): reading what it knows",
                        version, SETTINGS_VERSION)
        ov = _section(OverlaySettings, d.get("overlay"), "overlay")
        ov = replace(ov, opacity=min(1.0, max(0.0, float(ov.opacity))), contour_only=bool(ov.contour_only))
        kw: dict[str, Any] = {}
        defaults = AppSettings()
        simple: dict[str, Callable[[Any], Any]] = {"recent_datasets": _str_tuple, "last_dataset": _opt_str, "reviewer": str,
                  "max_recent": lambda v: max(1, _int(v)), "autosave_s": lambda v: max(0, _int(v)),
                  "show_tour": _bool, "shortcuts": _shortcuts}
        for name, conv in simple.items():
            if name in d:
                try:
                    kw[name] = conv(d[name])
                except (TypeError, ValueError) as exc:
                    log.warning("settings: %s=%r is not valid (%s); using %r", name, d[name], exc,
                                getattr(defaults, name))
        kw["colours"] = _colours(d.get("colours"))
        comp = _section(ComputeSettings, d.get("compute"), "compute")
        try:
            comp = ComputeSettings(device=str(comp.device) or "auto", threads=max(0, _int(comp.threads)))
        except (TypeError, ValueError):
            comp = ComputeSettings()
        kw["compute"] = comp
        ws = _section(WorkspaceLocationSettings, d.get("workspace"), "workspace")
        if ws.location not in WORKSPACE_LOCATIONS:
            log.warning("settings: workspace location %r unknown; using 'beside'", ws.location)
            ws = WorkspaceLocationSettings()
        kw["workspace"] = replace(ws, folder=str(ws.folder))
        assist = _section(AssistSettings, d.get("assist"), "assist")
        kw["assist"] = AssistSettings(promptable_model=str(assist.promptable_model or ""),
                                      sam_multimask=assist.sam_multimask is not False)
        return AppSettings(overlay=ov, **kw)


def dataset_key(root: str | Path) -> str:
    """The key a dataset's overrides are stored under: its absolute path."""
    return str(Path(root).expanduser().absolute())


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise TypeError(f"not a number: {v!r}")
    return int(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"not true/false: {v!r}")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _str_tuple(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list | tuple):
        raise TypeError("not a list")
    return tuple(str(p) for p in v)


def _rgb(v: Any) -> RGB:
    if isinstance(v, str) and v.startswith("#") and len(v) == 7:
        return (int(v[1:3], 16), int(v[3:5], 16), int(v[5:7], 16))
    if not isinstance(v, list | tuple) or len(v) != 3:
        raise ValueError(f"not a colour: {v!r}")
    r, g, b = (min(255, max(0, _int(c))) for c in v)
    return (r, g, b)


def _rgb_map(v: Any) -> dict[str, RGB]:
    if not isinstance(v, Mapping):
        raise TypeError("not an object")
    return {str(k): _rgb(c) for k, c in v.items()}


def _shortcuts(v: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(v, Mapping):
        raise TypeError("not an object")
    return {str(k): (str(s),) if isinstance(s, str) else _str_tuple(s) for k, s in v.items()}


def _section(cls: type[Any], raw: Any, name: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        log.warning("settings: %s is not an object; using defaults", name)
        return cls()
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in raw.items() if k in names})
    except (TypeError, ValueError) as exc:
        log.warning("settings: %s unreadable (%s); using defaults", name, exc)
        return cls()


def _colours(raw: Any) -> ColourSettings:
    if raw is None:
        return ColourSettings()
    if not isinstance(raw, Mapping):
        log.warning("settings: colours is not an object; using defaults")
        return ColourSettings()
    out = ColourSettings()
    try:
        out = replace(out, palette=str(raw.get("palette", out.palette)))
        if "by_class" in raw:
            out = replace(out, by_class=_rgb_map(raw["by_class"]))
        if "by_dataset" in raw:
            bd = raw["by_dataset"]
            if not isinstance(bd, Mapping):
                raise TypeError("by_dataset is not an object")
            out = replace(out, by_dataset={str(r): _rgb_map(m) for r, m in bd.items()})
    except (TypeError, ValueError) as exc:
        log.warning("settings: colours unreadable (%s); keeping what was read", exc)
    return out


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
