"""The workspace's model registry: which model is current, how it got there, and the split that judges the next one.

One typed API for the app and the command line (``segstudio models list|promote|rollback``). It lives in
``<workspace>/models.json`` — readable by a person, written atomically, kept apart from the database so that a
damaged ``workspace.sqlite`` never loses the model history — and the current checkpoint is mirrored into
``workspace.json`` (``current_checkpoint``) for anyone reading the settings.

```
{"version": 1,
 "current": {"checkpoint": "runs/20261204-…/checkpoints/best", "run": "20261204-…"},
 "validation": {"ids": ["MCUCXR_0001_0", …], "from_run": "…", "frozen_at": 1.7e9},
 "history": [{"seq": 1, "action": "adopt", "checkpoint": …, "run": …, "previous": null, "reason": …,
              "author": …, "time": …, "figures": {…}}, …]}
```

History is append-only. Actions: ``adopt`` (a model chosen as current by hand, or the workspace's first model),
``promote`` (a retrained model became current: by the gate, or by a person overriding it, the reason says which),
``refuse`` (a retrained model the gate did not let through; the current model stays), ``rollback`` (back to the
model that was current before). The ``figures`` of a promotion or refusal are the gate's verdict, its interval and
the per-class changes (``segstudio.metrics.gate.GateResult.to_dict``).

Checkpoint paths inside the workspace are stored relative to it, so a workspace that moves keeps its models.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_text, json_safe
from segstudio.core.errors import ReadOnlyError, SegstudioError

log = logging.getLogger(__name__)

__all__ = ["FILE_NAME", "CurrentModel", "ModelAction", "ModelEvent", "ModelRegistry", "ValidationSplit", "run_checkpoint"]

FILE_NAME = "models.json"
REGISTRY_VERSION = 1
#: a registry file larger than this is not a registry (a history entry is well under 10 kB)
MAX_BYTES = 64 * 2**20
#: the database ``state`` keys the app used before the registry (read once, to migrate)
LEGACY_MODEL_KEY = "model"
LEGACY_VALIDATION_KEY = "retrain_validation"


class ModelAction(enum.StrEnum):
    ADOPT = "adopt"
    PROMOTE = "promote"
    REFUSE = "refuse"
    ROLLBACK = "rollback"


@dataclass(frozen=True, kw_only=True)
class CurrentModel:
    checkpoint: Path
    run_id: str


@dataclass(frozen=True, kw_only=True)
class ValidationSplit:
    """The validation images frozen for the retraining rounds (chosen once from the current model's config)."""

    ids: tuple[str, ...]
    from_run: str = ""
    frozen_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ModelEvent:
    seq: int
    action: ModelAction
    #: the model the event is about: the new current model, or (``refuse``) the candidate turned away
    checkpoint: Path
    run_id: str
    #: the current model before the event (None for the first)
    previous: Path | None
    previous_run: str
    reason: str
    author: str
    time: float
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changed_current(self) -> bool:
        return self.action is not ModelAction.REFUSE

    @property
    def verdict(self) -> str:
        """The gate's verdict stored with the event (``""`` for a hand-made choice)."""
        gate = self.figures.get("gate")
        return str(gate.get("verdict", "")) if isinstance(gate, Mapping) else ""


class ModelRegistry:
    """The current model, its history and the frozen validation split of one workspace.

    ``folder``: the workspace folder. ``writable``: a callable that raises when the workspace may not be written
    (the database's ``check_writable``). ``legacy_state``: ``key -> value`` of the database's state table, read
    once to migrate a workspace from before the registry. ``on_change``: called with each new :class:`ModelEvent`.
    ``mirror``: called with the new current checkpoint (the workspace mirrors it into ``workspace.json``)."""

    def __init__(self, folder: Path, *, writable: Callable[[], None], read_only: bool = False,
                 legacy_state: Callable[[str], Any] | None = None,
                 on_change: Callable[[ModelEvent], None] | None = None,
                 mirror: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self._writable = writable
        self._read_only = read_only
        self._legacy = legacy_state
        self._on_change = on_change
        self._mirror = mirror
        # the parsed file and its events, kept while the file is unchanged (size, mtime, inode): the panel asks
        # for the current model often, and a long-lived workspace's history is thousands of entries
        self._cache_key: tuple[int, int, int] | None = None
        self._cache_doc: dict[str, Any] = {}
        self._cache_events: list[ModelEvent] | None = None

    # reading -----------------------------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        """The registry document; treat it as read-only (writers copy the top level and replace keys)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache_key, self._cache_events = None, None
            return self._migrated()
        except OSError as exc:
            raise SegstudioError(f"Cannot read the model registry: {exc.strerror or exc}", path=self.path,
                                 fix="Check the workspace folder's permissions.") from exc
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if key == self._cache_key:
            return self._cache_doc
        try:
            if st.st_size > MAX_BYTES:
                raise ValueError(f"{st.st_size} bytes is too large for a model registry")
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("history", []), list):
                raise ValueError("not a model registry (a JSON object with a history list)")
        except (OSError, ValueError) as exc:
            self._cache_key, self._cache_events = None, None
            return self._set_aside(exc)
        self._cache_key, self._cache_doc, self._cache_events = key, doc, None
        return doc

    def _set_aside(self, exc: Exception) -> dict[str, Any]:
        """A damaged registry is kept beside (never deleted) and the workspace goes on without a current model."""
        if self._read_only:
            log.warning("model registry %s is damaged (%s); read-only, so it is left as it is", self.path, exc)
            return {}
        bad = self.path.with_name(f"{FILE_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("model registry %s is damaged (%s); kept as %s", self.path, exc, bad.name)
        try:
            os.replace(self.path, bad)
        except OSError as err:
            log.warning("could not set %s aside: %s", self.path, err)
        return {}

    def _migrated(self) -> dict[str, Any]:
        """A workspace from before the registry: its state keys become the first history entry."""
        if self._legacy is None:
            return {}
        doc: dict[str, Any] = {}
        model = self._legacy(LEGACY_MODEL_KEY)
        if isinstance(model, dict) and model.get("checkpoint"):
            doc["current"] = {"checkpoint": self._rel(Path(str(model["checkpoint"]))),
                              "run": str(model.get("run") or "")}
            doc["history"] = [{"seq": 1, "action": "adopt", "checkpoint": doc["current"]["checkpoint"],
                               "run": doc["current"]["run"], "previous": None, "previous_run": "",
                               "reason": "the model chosen before this version of segstudio kept a history",
                               "author": "", "time": time.time(), "figures": {}}]
        val = self._legacy(LEGACY_VALIDATION_KEY)
        if isinstance(val, dict) and val.get("ids"):
            doc["validation"] = {"ids": [str(i) for i in val["ids"]], "from_run": str(val.get("from_run") or ""),
                                 "frozen_at": time.time()}
        return doc

    def _rel(self, path: Path) -> str:
        p = path if path.is_absolute() else self.folder / path
        try:
            return p.resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return str(p)

    def _abs(self, text: str) -> Path:
        p = Path(text)
        return p if p.is_absolute() else self.folder / p

    def _event(self, d: Mapping[str, Any]) -> ModelEvent | None:
        try:
            prev = d.get("previous")
            return ModelEvent(seq=int(d["seq"]), action=ModelAction(d["action"]), checkpoint=self._abs(str(d["checkpoint"])),
                              run_id=str(d.get("run") or ""), previous=self._abs(str(prev)) if prev else None,
                              previous_run=str(d.get("previous_run") or ""), reason=str(d.get("reason") or ""),
                              author=str(d.get("author") or ""), time=float(d.get("time") or 0.0),
                              figures=dict(d.get("figures") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("model registry %s: a history entry is not readable (%s); skipped", self.path, exc)
            return None

    def current(self) -> CurrentModel | None:
        cur = self._load().get("current")
        if not isinstance(cur, dict) or not cur.get("checkpoint"):
            return None
        return CurrentModel(checkpoint=self._abs(str(cur["checkpoint"])), run_id=str(cur.get("run") or ""))

    def history(self) -> list[ModelEvent]:
        """Oldest first."""
        doc = self._load()
        if self._cache_events is not None and doc is self._cache_doc:
            return list(self._cache_events)
        out = [self._event(d) for d in doc.get("history", []) if isinstance(d, Mapping)]
        events = [e for e in out if e is not None]
        if doc is self._cache_doc:
            self._cache_events = events
        return list(events)

    def last_round(self) -> ModelEvent | None:
        """The newest event that judged a retrained model (a promotion or a refusal with the gate's figures)."""
        for ev in reversed(self.history()):
            if ev.verdict:
                return ev
        return None

    def validation_split(self) -> ValidationSplit | None:
        val = self._load().get("validation")
        if not isinstance(val, dict) or not val.get("ids"):
            return None
        return ValidationSplit(ids=tuple(str(i) for i in val["ids"]), from_run=str(val.get("from_run") or ""),
                               frozen_at=float(val.get("frozen_at") or 0.0))

    # writing -----------------------------------------------------------------------------------------------------
    def _save(self, doc: dict[str, Any]) -> None:
        if self._read_only:
            raise ReadOnlyError("This workspace is open read-only: the model cannot be changed.", path=self.path)
        self._writable()
        doc["version"] = REGISTRY_VERSION
        atomic_write_text(self.path, json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n")
        try:
            st = self.path.stat()
        except OSError:
            self._cache_key = None
        else:  # what was just written is what the next read would parse
            self._cache_key, self._cache_doc, self._cache_events = (st.st_size, st.st_mtime_ns, st.st_ino), doc, None

    def _append(self, *, action: ModelAction, checkpoint: Path, run_id: str, reason: str, author: str,
                figures: Mapping[str, Any] | None) -> ModelEvent:
        checkpoint = Path(checkpoint)
        if action is not ModelAction.REFUSE and not (self._abs(str(checkpoint)) / "config.json").is_file():
            raise SegstudioError("That checkpoint folder holds no model (no config.json).", path=checkpoint,
                                 fix="Choose a run's checkpoints/best or checkpoints/last folder.")
        doc = dict(self._load())
        history = [d for d in doc.get("history", []) if isinstance(d, dict)]
        cur = doc.get("current") if isinstance(doc.get("current"), dict) else None
        entry = {"seq": max((int(d.get("seq", 0)) for d in history), default=0) + 1, "action": action.value,
                 "checkpoint": self._rel(checkpoint), "run": run_id,
                 "previous": cur.get("checkpoint") if cur else None, "previous_run": cur.get("run", "") if cur else "",
                 "reason": reason, "author": author, "time": time.time(), "figures": json_safe(dict(figures or {}))}
        history.append(entry)
        doc["history"] = history
        if action is not ModelAction.REFUSE:
            doc["current"] = {"checkpoint": entry["checkpoint"], "run": run_id}
        self._save(doc)
        ev = self._event(entry)
        assert ev is not None
        if action is not ModelAction.REFUSE and self._mirror is not None:
            try:
                self._mirror(entry["checkpoint"])
            except SegstudioError as exc:  # the registry is the truth; the mirror is for people reading settings
                log.warning("could not mirror the current model into workspace.json: %s", exc)
        log.info("model registry: %s %s (%s)", action.value, entry["checkpoint"], reason)
        if self._on_change is not None:
            self._on_change(ev)
        return ev

    def adopt(self, checkpoint: Path, *, run_id: str, reason: str = "chosen by the user", author: str = "") -> ModelEvent:
        """Make ``checkpoint`` the current model by hand (or as the workspace's first model)."""
        return self._append(action=ModelAction.ADOPT, checkpoint=checkpoint, run_id=run_id, reason=reason,
                            author=author, figures=None)

    def promote(self, checkpoint: Path, *, run_id: str, reason: str, figures: Mapping[str, Any] | None = None,
                author: str = "") -> ModelEvent:
        """Make a retrained model current; ``figures`` carry the gate's verdict (stored with the promotion)."""
        return self._append(action=ModelAction.PROMOTE, checkpoint=checkpoint, run_id=run_id, reason=reason,
                            author=author, figures=figures)

    def refuse(self, checkpoint: Path, *, run_id: str, reason: str, figures: Mapping[str, Any] | None = None,
               author: str = "") -> ModelEvent:
        """Record that a retrained model was not promoted (the current model stays)."""
        return self._append(action=ModelAction.REFUSE, checkpoint=checkpoint, run_id=run_id, reason=reason,
                            author=author, figures=figures)

    def rollback(self, *, reason: str = "rolled back by the user", author: str = "") -> ModelEvent:
        """Go back to the model that was current before the current one became current."""
        cur = self.current()
        if cur is None:
            raise SegstudioError("There is no current model to roll back.", path=self.path,
                                 fix="Train a model first, or choose one in the run history.")
        target: ModelEvent | None = None
        for ev in reversed(self.history()):
            # a rollback is not a step of its own: rolling back twice goes back two models, not to and fro
            if ev.changed_current and ev.action is not ModelAction.ROLLBACK and ev.checkpoint == cur.checkpoint:
                target = ev
                break
        if target is None or target.previous is None:
            raise SegstudioError("The current model is the first one of this workspace: there is nothing to roll "
                                 "back to.", path=self.path, fix="Choose another model by hand (models promote).")
        if not (target.previous / "config.json").is_file():
            raise SegstudioError("The previous model's checkpoint is gone.", path=target.previous,
                                 fix="Choose another model by hand (segstudio models promote CHECKPOINT).")
        return self._append(action=ModelAction.ROLLBACK, checkpoint=target.previous, run_id=target.previous_run,
                            reason=reason, author=author, figures={"undid": target.seq})

    def freeze_validation(self, ids: Sequence[str], *, from_run: str) -> ValidationSplit:
        if not ids:
            raise SegstudioError("A validation split needs at least one image.", path=self.path)
        doc = dict(self._load())
        doc["validation"] = {"ids": [str(i) for i in ids], "from_run": from_run, "frozen_at": time.time()}
        self._save(doc)
        return ValidationSplit(ids=tuple(str(i) for i in ids), from_run=from_run,
                               frozen_at=float(doc["validation"]["frozen_at"]))

    def reset_validation(self) -> None:
        """Forget the frozen split: the next round chooses it again from the current model's config."""
        doc = dict(self._load())
        if doc.pop("validation", None) is not None or not self.path.exists():
            self._save(doc)


def run_checkpoint(run_folder: Path) -> Path | None:
    """The checkpoint a run folder offers as its model: ``best`` when it has one, else ``swa`` (a run averaged
    without a validation split), else ``last``; None without."""
    for kind in ("best", "swa", "last"):
        path = Path(run_folder) / "checkpoints" / kind
        if (path / "config.json").is_file():
            return path
    return None
