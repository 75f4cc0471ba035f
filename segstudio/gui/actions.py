"""The main window's actions, declared once as a table (DESIGN rule 10): text, shortcut, icon, menu, handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import qtawesome as qta
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    menu: str
    handler: str  # method name on the window
    shortcuts: tuple[str | QKeySequence.StandardKey, ...] = ()
    icon: str | None = None
    tip: str = ""
    checkable: bool = False
    toolbar: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_folder", "&Open Dataset Folder…", "&File", "open_folder_dialog",
               (QKeySequence.StandardKey.Open,), "fa5s.folder-open", "Open a dataset folder (format detected)", toolbar=True),
    ActionSpec("open_file", "Open &Annotation File…", "&File", "open_file_dialog",
               ("Ctrl+Shift+O",), "fa5s.file-code", "Open a COCO / labelme JSON or a single annotation file"),
    ActionSpec("open_sample", "Open the Bundled &Sample", "&File", "open_sample_dataset", (), "fa5s.lungs"),
    ActionSpec("quit", "&Quit", "&File", "close", (QKeySequence.StandardKey.Quit,), "fa5s.power-off"),
    ActionSpec("prev", "&Previous Image", "&Navigate", "go_previous", ("Left", "PgUp", "P"), "fa5s.arrow-left",
               "Previous sample (←, PgUp, P)", toolbar=True),
    ActionSpec("next", "&Next Image", "&Navigate", "go_next", ("Right", "PgDown", "N"), "fa5s.arrow-right",
               "Next sample (→, PgDown, N)", toolbar=True),
    ActionSpec("fit", "&Fit to Window", "&View", "zoom_fit", ("F", "Ctrl+0"), "fa5s.expand", "Fit the image (F)",
               toolbar=True),
    ActionSpec("zoom_1to1", "Actual &Size (1:1)", "&View", "zoom_1to1", ("1", "Ctrl+1"), "fa5s.search",
               "One image pixel per screen pixel"),
    ActionSpec("zoom_in", "Zoom &In", "&View", "zoom_in", (QKeySequence.StandardKey.ZoomIn, "+", "="),
               "fa5s.search-plus", toolbar=True),
    ActionSpec("zoom_out", "Zoom &Out", "&View", "zoom_out", (QKeySequence.StandardKey.ZoomOut, "-"),
               "fa5s.search-minus", toolbar=True),
    ActionSpec("toggle_overlay", "Show &GT Overlay", "&View", "set_overlay_visible", ("G",), "fa5s.layer-group",
               "Show or hide the ground-truth overlay (G)", checkable=True, toolbar=True),
    ActionSpec("about", "&About segstudio", "&Help", "show_about", (), "fa5s.info-circle"),
    ActionSpec("open_logs", "Open &Log Folder", "&Help", "open_log_folder", (), "fa5s.file-alt"),
)


def build_actions(window: QWidget, specs: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, QAction]:
    """Create a QAction per spec, parented to ``window`` and wired to ``window.<handler>``."""
    out: dict[str, QAction] = {}
    for spec in specs:
        act = QAction(spec.text, window)
        act.setObjectName(f"action_{spec.name}")
        if spec.icon:
            act.setIcon(qta.icon(spec.icon, color="#d0d0d0"))
        if spec.shortcuts:
            act.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
        tip = spec.tip or spec.text.replace("&", "").rstrip("…")
        act.setToolTip(tip)
        act.setStatusTip(tip)
        act.setCheckable(spec.checkable)
        handler: Callable = getattr(window, spec.handler)
        if spec.checkable:
            act.toggled.connect(handler)
        else:
            act.triggered.connect(lambda _checked=False, h=handler: h())
        out[spec.name] = act
    return out
