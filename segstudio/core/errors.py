"""Errors that say what is wrong, with which file, and how to fix it."""

from __future__ import annotations

from pathlib import Path


class SegstudioError(Exception):
    """Base class of every error segstudio raises on purpose.

    ``str(err)`` is a complete sentence a user can act on: what is wrong, the file, and the fix.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.path is not None:
            parts.append(f"File: {self.path}")
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return "\n".join(parts)


class DatasetError(SegstudioError):
    """A dataset cannot be opened or a file of it cannot be read."""


class UnknownKeyError(SegstudioError, KeyError):
    """A registry lookup with a key that is not registered; the message lists the valid keys."""

    def __init__(self, kind: str, key: str, valid: list[str] | tuple[str, ...]) -> None:
        options = ", ".join(sorted(valid)) or "(none registered)"
        super().__init__(f"Unknown {kind} {key!r}. Valid {kind}s: {options}.")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message
