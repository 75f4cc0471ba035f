"""The preferences the window applies: at start, and again when Edit → Preferences changes them.

Shortcuts (the actions table's keys, or the user's), the training form's device and threads, where workspaces go
(``SEGSTUDIO_WORKSPACE_HOME``, unless set outside segstudio) and the colours a dataset shows. The dialog
(:mod:`segstudio.gui.window.preferences_dialog`) only edits a copy of the settings; these functions put it to work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from PySide6.QtGui import QAction, QKeySequence

from segstudio.core.errors import SegstudioError
from segstudio.core.palettes import recolour
from segstudio.core.settings import AppSettings, ComputeSettings, save_settings
from segstudio.core.types import ClassSchema
from segstudio.gui.actions import ACTIONS
from segstudio.gui.loop.training_panel import TrainingPanel

log = logging.getLogger(__name__)

PORTABLE = QKeySequence.SequenceFormat.PortableText
#: Keys the window binds outside the actions table (class selection by number).
RESERVED_KEYS: dict[str, str] = {str(d): f"selecting class {d}" for d in range(10)}
WORKSPACE_ENV = "SEGSTUDIO_WORKSPACE_HOME"
#: The value this module last put into ``WORKSPACE_ENV`` (None: it has not set one). Any other value there came
#: from outside segstudio (the user's environment, a test harness) and wins over the preference.
_set_here: str | None = None


def workspace_env_from_outside() -> str | None:
    """``SEGSTUDIO_WORKSPACE_HOME`` when it was set outside segstudio (it then wins over the preference)."""
    current = os.environ.get(WORKSPACE_ENV)
    return current if current is not None and current != _set_here else None


def portable_key(key: object) -> str:
    """A key sequence (text, ``QKeySequence`` or standard key) as portable text ("Ctrl+S")."""
    return QKeySequence(key).toString(PORTABLE)  # type: ignore[call-overload]


def default_shortcuts() -> dict[str, tuple[str, ...]]:
    """Action name → its keys as the actions table declares them (portable text)."""
    return {s.name: tuple(k for k in (portable_key(x) for x in s.shortcuts) if k) for s in ACTIONS}


def apply_shortcuts(actions: Mapping[str, QAction], overrides: Mapping[str, tuple[str, ...]]) -> None:
    """Give every action its keys: the user's override, else the actions table's default (so a reset sticks)."""
    defaults = default_shortcuts()
    for name, act in actions.items():
        if name in overrides:
            act.setShortcuts([QKeySequence(k) for k in overrides[name]])
        elif name in defaults:
            act.setShortcuts([QKeySequence(k) for k in defaults[name]])


def apply_workspace_location(settings: AppSettings) -> None:
    """Point ``SEGSTUDIO_WORKSPACE_HOME`` (read by ``workspace.locate``) at the chosen location for datasets
    opened from now on. A value set outside segstudio (the environment, a test harness) wins and is left alone:
    only a value this function set is ever changed or removed."""
    global _set_here
    if workspace_env_from_outside() is not None:
        return
    home = settings.workspace.home()
    if home is None:
        if _set_here is not None:
            os.environ.pop(WORKSPACE_ENV, None)
        _set_here = None
    else:
        os.environ[WORKSPACE_ENV] = _set_here = str(home)


def effective_schema(schema: ClassSchema, settings: AppSettings, dataset_root: str | None) -> ClassSchema:
    """The colours a dataset shows: its own, else the chosen palette; then the user's overrides."""
    return recolour(schema, palette=settings.colours.palette,
                    overrides=settings.colours.overrides_for(dataset_root))


def apply_compute(training_panel: TrainingPanel, compute: ComputeSettings) -> None:
    """The training form's device and thread count take the defaults from the settings."""
    from segstudio.gui.loop.training import default_threads

    training_panel.device.set_device(compute.device)
    training_panel.threads.setValue(compute.threads or default_threads())


class SettingsStore:
    """The app's settings while the window runs: ``value`` is replaced (never mutated; ``AppSettings`` is frozen)
    by whoever changes them, and ``save`` writes it."""

    def __init__(self, value: AppSettings) -> None:
        self.value = value

    def save(self) -> None:
        try:
            save_settings(self.value)
        except (SegstudioError, OSError) as exc:  # a full disk must not stop the window (DiskFullError)
            log.warning("cannot save settings: %s", exc)
