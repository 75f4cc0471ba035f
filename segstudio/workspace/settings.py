"""Per-workspace settings: one typed, versioned schema in a human-readable JSON file (DESIGN rule 9).

``<workspace>/workspace.json`` says what this workspace is about — which dataset, read how, which model is
current, which split judges a retrain — so a person (or a script) can read and edit it. User-level preferences
(colours, brush size, recent datasets) are ``segstudio.core.settings``; volatile UI state (last sample, sort
column) is the database's ``state`` table.

Loading never refuses to open a workspace over a bad file: a value of the wrong type is replaced by its default
with a warning; keys this version does not know (written by a newer segstudio) are kept and written back; a
damaged file is set aside as ``workspace.json.bad``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_text

log = logging.getLogger(__name__)

SETTINGS_VERSION = 2
FILE_NAME = "workspace.json"


@dataclass(frozen=True)
class WorkspaceSettings:
    """What a workspace is about. Changing a field's meaning → bump ``SETTINGS_VERSION``, add a migration."""

    version: int = SETTINGS_VERSION
    #: absolute path of the dataset (folder or annotation file)
    dataset_root: str = ""
    #: registered dataset format name; ``""`` = detect
    dataset_format: str = ""
    #: options the format was opened with (JSON-safe)
    format_options: dict[str, Any] = field(default_factory=dict)
    #: a folder of predicted masks shown as the prediction layer (``segstudio PATH --predictions DIR``)
    predictions_dir: str = ""
    #: checkpoint folder of the current model (relative to the workspace when inside it); ``""`` = none yet.
    #: Written by the model registry (``models.json``, the record of every promotion) for people reading this file
    current_checkpoint: str = ""
    #: training weight of reviewed/corrected samples relative to untouched GT
    reviewed_weight: float = 1.0
    #: the promotion gate (``segstudio.metrics.gate``): confidence of the bootstrap interval of the change in Dice
    gate_confidence: float = 0.95
    #: the interval's lower end must be above this change in mean Dice for a promotion
    gate_min_gain: float = 0.0
    #: a class whose Dice drops by more than this refuses the promotion
    gate_class_margin: float = 0.02
    #: bootstrap resamples
    gate_resamples: int = 2000
    #: promote a retrained model by itself when the gate says "promote" (else a person decides)
    auto_promote: bool = True
    #: keys of a newer schema, kept verbatim so a round trip through this version loses nothing
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **d}

    def replace(self, **changes: Any) -> WorkspaceSettings:
        return dataclasses.replace(self, **changes)

    def gate_thresholds(self) -> dict[str, Any]:
        """Keyword arguments of ``segstudio.metrics.gate.GateThresholds``."""
        return {"confidence": self.gate_confidence, "min_gain": self.gate_min_gain,
                "class_margin": self.gate_class_margin, "resamples": self.gate_resamples}


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _weight(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if 0.0 <= v <= 100.0 else None


def _ranged(v: Any, lo: float, hi: float) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if lo <= v <= hi else None


def _drop_validation_split(d: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: ``validation_split`` (never used) goes; the frozen split lives in the model registry."""
    out = {k: v for k, v in d.items() if k != "validation_split"}
    out["version"] = 2
    return out


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "dataset_root": _text,
    "dataset_format": _text,
    "format_options": lambda v: dict(v) if isinstance(v, dict) else None,
    "predictions_dir": _text,
    "current_checkpoint": _text,
    "reviewed_weight": _weight,
    "gate_confidence": lambda v: _ranged(v, 0.5, 0.999),
    "gate_min_gain": lambda v: _ranged(v, -1.0, 1.0),
    "gate_class_margin": lambda v: _ranged(v, 0.0, 1.0),
    "gate_resamples": lambda v: int(v) if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 1_000_000
    else None,
    "auto_promote": lambda v: v if isinstance(v, bool) else None,
}

#: ``MIGRATIONS[v]`` turns a version-``v`` dict into a version-``v + 1`` dict.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _drop_validation_split}


def settings_from_dict(raw: dict[str, Any]) -> WorkspaceSettings:
    """Validate a dict of any known version into :class:`WorkspaceSettings` (bad values → defaults)."""
    data = dict(raw)
    v = data.get("version", 1)
    v = v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else 1
    while v < SETTINGS_VERSION:
        data = MIGRATIONS[v](data)
        v += 1
    if v > SETTINGS_VERSION:
        log.warning("workspace settings were written by a newer segstudio (version %d); unknown keys are kept", v)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key == "version":
            continue
        check = _VALIDATORS.get(key)
        if check is None:
            extra[key] = value
            continue
        ok = check(value)
        if ok is None:
            log.warning("workspace settings: %s=%r is not valid; using the default", key, value)
            continue
        values[key] = ok
    return WorkspaceSettings(version=max(v, SETTINGS_VERSION), extra=extra, **values)


def load_workspace_settings(folder: Path, *, read_only: bool = False) -> WorkspaceSettings:
    """``<folder>/workspace.json``, or defaults when missing (or damaged — then it is set aside, unless
    ``read_only``: a read-only workspace writes nothing)."""
    p = folder / FILE_NAME
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return WorkspaceSettings()
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        bad = p.with_name(p.name + ".bad")
        if read_only:
            log.warning("workspace settings %s are damaged (%s); using defaults", p, e)
            return WorkspaceSettings()
        log.warning("workspace settings %s are damaged (%s); kept as %s, using defaults", p, e, bad)
        try:
            os.replace(p, bad)
        except OSError as err:
            log.warning("could not set %s aside: %s", p, err)
        return WorkspaceSettings()
    return settings_from_dict(raw)


def save_workspace_settings(folder: Path, settings: WorkspaceSettings) -> Path:
    """Write ``<folder>/workspace.json`` atomically (indented, keys sorted, so diffs stay readable)."""
    return atomic_write_text(folder / FILE_NAME, json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")
