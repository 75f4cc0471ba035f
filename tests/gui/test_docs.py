"""The shortcuts page of the docs is generated from the actions table and must be current."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_shortcuts_doc_matches_the_actions_table(qapp) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from gen_shortcuts_doc import render
    finally:
        sys.path.pop(0)
    assert (REPO / "docs" / "shortcuts.md").read_text(encoding="utf-8") == render(), (
        "docs/shortcuts.md is stale: run `python tools/gen_shortcuts_doc.py`"
    )


def test_no_two_actions_share_a_shortcut(qapp) -> None:
    from segstudio.gui.actions import shortcut_rows

    seen: dict[str, str] = {}
    for _menu, action, keys in shortcut_rows():
        for k in keys.split(", "):
            assert k not in seen, f"{k} is bound to both {seen[k]!r} and {action!r}"
            seen[k] = action
