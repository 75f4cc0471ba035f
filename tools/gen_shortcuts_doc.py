"""Write docs/shortcuts.md from the actions table (tests/gui/test_docs.py checks that it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def render() -> str:
    from segstudio.gui.actions import shortcut_rows
    from segstudio.gui.shortcuts import EXTRA_ROWS

    lines = [
        "# Keyboard shortcuts",
        "",
        "Generated from `segstudio/gui/actions.py` by `python tools/gen_shortcuts_doc.py`; the app shows the same",
        "table under Help → Keyboard Shortcuts (F1).",
        "",
        "| menu | action | keys |",
        "|---|---|---|",
    ]
    for menu, action, keys in [*shortcut_rows(), *EXTRA_ROWS]:
        lines.append(f"| {menu} | {action} | {keys.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    (REPO / "docs" / "shortcuts.md").write_text(render(), encoding="utf-8")
    print("wrote docs/shortcuts.md")
