"""Edit → Preferences and the settings the window changes as it is used (the reviewer's name, the GT opacity):
opens the dialog, applies what changed to the parts that show it, and saves the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from segstudio.core.settings import AppSettings
from segstudio.gui.loop.training_panel import TrainingPanel
from segstudio.gui.panels.class_panel import ClassPanel
from segstudio.gui.panels.layers_panel import LayersPanel
from segstudio.gui.panels.review_panel import ReviewPanel
from segstudio.gui.screen.editor import GT_LAYER, EditorController
from segstudio.gui.screen.navigation import NavigationController
from segstudio.gui.screen.review import ReviewController
from segstudio.gui.screen.session import SessionController
from segstudio.gui.screen.view import ViewController
from segstudio.gui.window.preferences import (
    SettingsStore,
    apply_compute,
    apply_shortcuts,
    apply_workspace_location,
    effective_schema,
)
from segstudio.gui.window.preferences_dialog import PreferencesDialog


class PreferencesController(QObject):
    def __init__(self, *, settings: SettingsStore, dialog_parent: QWidget, session: SessionController,
                 review: ReviewController, editor: EditorController, navigation: NavigationController,
                 view: ViewController, class_panel: ClassPanel, layers_panel: LayersPanel,
                 review_panel: ReviewPanel, training_panel: TrainingPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings, self._dialog_parent = settings, dialog_parent
        self.session, self.review, self.editor, self.navigation, self.view = session, review, editor, navigation, view
        self.class_panel, self.layers_panel = class_panel, layers_panel
        self.review_panel, self.training_panel = review_panel, training_panel
        self.actions: Mapping[str, QAction] = {}
        layers_panel.sig_layer_opacity_changed.connect(self._on_layers_opacity_changed)
        review_panel.sig_reviewer_edited.connect(self._on_review_panel_reviewer_edited)

    def apply_at_start(self, actions: Mapping[str, QAction]) -> None:
        """The preferences the window applies once its actions exist (the dialog re-applies them on change)."""
        self.actions = actions
        s = self.settings.value
        self.review.reviewer = self.editor.author = s.reviewer
        self.review_panel.set_reviewer(s.reviewer)
        apply_shortcuts(actions, s.shortcuts)
        apply_compute(self.training_panel, s.compute)
        apply_workspace_location(s)
        self.layers_panel.rows[GT_LAYER].opacity.setValue(round(s.overlay.opacity * 100))

    def show_preferences(self) -> PreferencesDialog:
        """Edit → Preferences…: one dialog over the typed settings; applied when accepted (non-blocking)."""
        ds = self.session.dataset
        dlg = PreferencesDialog(self.settings.value, schema=ds.schema if ds is not None else None,
                                dataset_root=str(Path(ds.root).resolve()) if ds is not None else None,
                                actions=dict(self.actions), parent=self._dialog_parent)
        dlg.sig_applied.connect(self.apply)
        dlg.open()
        return dlg

    def apply(self, new: AppSettings) -> None:
        """Re-apply what changed: overlay opacity and mask style, autosave interval, reviewer, shortcuts, training
        defaults, workspace location and the open dataset's class colours; then save."""
        old = self.settings.value
        self.settings.value = new
        if old.overlay.opacity != new.overlay.opacity:
            self.layers_panel.rows[GT_LAYER].opacity.setValue(round(new.overlay.opacity * 100))
        if old.overlay.contour_only != new.overlay.contour_only:
            self.view.set_contour_mode(new.overlay.contour_only)
        if old.autosave_s != new.autosave_s:
            self.navigation.set_autosave(new.autosave_s)
        if old.reviewer != new.reviewer:
            self.review.reviewer = self.editor.author = new.reviewer
            self.review_panel.set_reviewer(new.reviewer)
        if old.shortcuts != new.shortcuts:
            apply_shortcuts(self.actions, new.shortcuts)
        if old.compute != new.compute:
            apply_compute(self.training_panel, new.compute)
        if old.workspace != new.workspace:
            apply_workspace_location(new)
        self.settings.save()
        ds = self.session.dataset
        if ds is not None and old.colours != new.colours:
            ds.schema = effective_schema(ds.schema, new, str(Path(ds.root).resolve()))
            self.class_panel.set_schema(ds.schema)
            self.layers_panel.set_schema(ds.schema)
            self.session.reload_current()  # overlays drawn again in the new colours

    def _on_layers_opacity_changed(self, name: str, value: float) -> None:
        if name == GT_LAYER:
            s = self.settings.value
            self.settings.value = replace(s, overlay=replace(s.overlay, opacity=value))

    def _on_review_panel_reviewer_edited(self, name: str) -> None:
        self.settings.value = replace(self.settings.value, reviewer=name)
        self.review.reviewer = self.editor.author = name
        self.settings.save()
