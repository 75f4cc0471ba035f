"""Edit → Preferences: one dialog over the typed settings (:mod:`segstudio.core.settings`).

Tabs: Appearance (palette, class colours, opacity, mask style), Review (reviewer, autosave, tour), Training
(device, CPU threads), Workspace (where workspaces go) and Shortcuts (every action, rebound by pressing keys;
a key another action holds is refused with a message). Nothing is written here: ``result_settings()`` is the
edited copy and ``sig_applied`` carries it on OK / Apply; the window saves it and calls
:class:`segstudio.gui.window.preferences_controller.PreferencesController`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.palettes import PALETTES, recolour
from segstudio.core.settings import (
    RGB,
    AppSettings,
    ColourSettings,
    ComputeSettings,
    OverlaySettings,
    WorkspaceLocationSettings,
    dataset_key,
)
from segstudio.core.types import ClassSchema
from segstudio.gui.actions import ACTIONS
from segstudio.gui.common.tables import cell, cell_text
from segstudio.gui.window.preferences import (
    PORTABLE,
    RESERVED_KEYS,
    WORKSPACE_ENV,
    default_shortcuts,
    effective_schema,
    portable_key,
    workspace_env_from_outside,
)

log = logging.getLogger(__name__)

NATIVE = QKeySequence.SequenceFormat.NativeText


def _swatch(rgb: RGB, w: int = 28, h: int = 16) -> QIcon:
    pm = QPixmap(w, h)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


def _palette_icon(name: str) -> QIcon:
    cols = PALETTES[name][1] or tuple(recolour(ClassSchema.from_names([str(i) for i in range(8)]),
                                               palette="golden").by_id(i).colour for i in range(1, 8))
    pm = QPixmap(14 * len(cols), 14)
    pm.fill(QColor(0, 0, 0, 0))
    from PySide6.QtGui import QPainter

    p = QPainter(pm)
    for i, c in enumerate(cols):
        p.fillRect(i * 14, 0, 13, 14, QColor(*c))
    p.end()
    return QIcon(pm)


class PreferencesDialog(QDialog):
    """``settings`` are not changed; read :meth:`result_settings` or listen to ``sig_applied``."""

    sig_applied = Signal(object)  # AppSettings

    TABS = ("Appearance", "Review", "Training", "Workspace", "Shortcuts")

    def __init__(self, settings: AppSettings, *, schema: ClassSchema | None = None,
                 dataset_root: str | None = None, actions: Mapping[str, QAction] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.resize(720, 560)
        self._settings = settings
        self._schema = schema
        self._dataset_root = dataset_root
        self._actions = dict(actions or {})
        self._colour_edits: dict[str, RGB] = {}  # class name → colour picked in this dialog
        self._cleared_colours = False

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("preferencesTabs")
        self.tabs.addTab(self._appearance_page(), "Appearance")
        self.tabs.addTab(self._review_page(), "Review")
        self.tabs.addTab(self._training_page(), "Training")
        self.tabs.addTab(self._workspace_page(), "Workspace")
        self.tabs.addTab(self._shortcuts_page(), "Shortcuts")

        sb = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(sb.Ok | sb.Apply | sb.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(sb.Apply).clicked.connect(self.apply)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs)
        lay.addWidget(self.buttons)

    # pages ------------------------------------------------------------------------------------------------------
    def _appearance_page(self) -> QWidget:
        page = QWidget(self)
        s = self._settings
        form = QFormLayout()
        self.palette_box = QComboBox(page)
        self.palette_box.setObjectName("prefsPalette")
        for key, (label, _cols) in PALETTES.items():
            self.palette_box.addItem(_palette_icon(key), label, key)
        self.palette_box.setIconSize(_palette_icon("okabe_ito").availableSizes()[0])
        self.palette_box.setCurrentIndex(max(0, self.palette_box.findData(s.colours.palette)))
        self.palette_box.setToolTip("Colours for the classes of a dataset that names none of its own")
        self.palette_box.currentIndexChanged.connect(lambda _i: self._fill_colour_table())
        form.addRow("Palette", self.palette_box)
        self.opacity = QSpinBox(page)
        self.opacity.setObjectName("prefsOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setSuffix(" %")
        self.opacity.setValue(round(s.overlay.opacity * 100))
        form.addRow("Mask opacity", self.opacity)
        self.mask_style = QComboBox(page)
        self.mask_style.setObjectName("prefsMaskStyle")
        self.mask_style.addItem("Filled", "fill")
        self.mask_style.addItem("Contour only", "contour")
        self.mask_style.setCurrentIndex(1 if s.overlay.contour_only else 0)
        form.addRow("Mask style", self.mask_style)
        self.colour_scope = QComboBox(page)
        self.colour_scope.setObjectName("prefsColourScope")
        if self._dataset_root is not None:
            self.colour_scope.addItem("This dataset only", "dataset")
        self.colour_scope.addItem("Every dataset with a class of this name", "class")
        form.addRow("A colour picked applies to", self.colour_scope)

        self.colour_table = QTableWidget(0, 2, page)
        self.colour_table.setObjectName("prefsClassColours")
        self.colour_table.setHorizontalHeaderLabels(["Class", "Colour"])
        self.colour_table.verticalHeader().setVisible(False)
        self.colour_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.colour_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.colour_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.colour_table.cellDoubleClicked.connect(self._on_colour_cell_double_clicked)
        self.reset_colours = QPushButton("Reset Class Colours", page)
        self.reset_colours.setObjectName("prefsResetColours")
        self.reset_colours.setToolTip("Forget the colours picked for this dataset and for these class names")
        self.reset_colours.clicked.connect(self._on_reset_colours)
        lay = QVBoxLayout(page)
        lay.addLayout(form)
        if self._schema is None:
            note = QLabel("Open a dataset to change the colours of its classes.", page)
            note.setObjectName("prefsNoSchema")
            lay.addWidget(note)
        lay.addWidget(self.colour_table, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.reset_colours)
        lay.addLayout(row)
        self._fill_colour_table()
        return page

    def _review_page(self) -> QWidget:
        page = QWidget(self)
        s = self._settings
        form = QFormLayout(page)
        self.reviewer = QLineEdit(s.reviewer, page)
        self.reviewer.setObjectName("prefsReviewer")
        self.reviewer.setPlaceholderText("Your name, recorded with every review and correction")
        form.addRow("Reviewer name", self.reviewer)
        self.autosave = QSpinBox(page)
        self.autosave.setObjectName("prefsAutosave")
        self.autosave.setRange(0, 3600)
        self.autosave.setSuffix(" s")
        self.autosave.setSpecialValueText("off (save on image change and Ctrl+S)")
        self.autosave.setValue(s.autosave_s)
        form.addRow("Autosave every", self.autosave)
        self.show_tour = QCheckBox("Show the getting-started tour when segstudio starts", page)
        self.show_tour.setObjectName("prefsShowTour")
        self.show_tour.setChecked(s.show_tour)
        form.addRow("", self.show_tour)
        return page

    def _training_page(self) -> QWidget:
        page = QWidget(self)
        c = self._settings.compute
        form = QFormLayout(page)
        self.device = QComboBox(page)
        self.device.setObjectName("prefsDevice")
        self.device.setEditable(True)
        for key, label in (("auto", "Automatic (a GPU when there is one)"), ("cpu", "CPU"),
                           ("cuda", "CUDA GPU"), ("mps", "Apple GPU (MPS)")):
            self.device.addItem(label, key)
        i = self.device.findData(c.device)
        if i < 0:
            self.device.addItem(c.device, c.device)
            i = self.device.count() - 1
        self.device.setCurrentIndex(i)
        self.device.setToolTip("Default device for training and prediction; cuda:1 and the like may be typed")
        form.addRow("Device", self.device)
        self.threads = QSpinBox(page)
        self.threads.setObjectName("prefsThreads")
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic (all cores but one)")
        self.threads.setValue(c.threads)
        form.addRow("CPU threads", self.threads)
        return page

    def _workspace_page(self) -> QWidget:
        page = QWidget(self)
        w = self._settings.workspace
        lay = QVBoxLayout(page)
        intro = QLabel("Where a dataset's workspace (reviews, corrected masks, models) is kept. Datasets already "
                       "opened keep the workspace they have.", page)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.ws_group = QButtonGroup(page)
        self.ws_radios: dict[str, QRadioButton] = {}
        for key, text in (("beside", "Beside the dataset (a .segstudio folder; the user data folder when the "
                                     "dataset's folder is read-only)"),
                          ("user_data", "Under the user data folder"), ("folder", "Under this folder:")):
            rb = QRadioButton(text, page)
            rb.setObjectName(f"prefsWorkspace_{key}")
            self.ws_group.addButton(rb)
            self.ws_radios[key] = rb
            lay.addWidget(rb)
        self.ws_radios.get(w.location, self.ws_radios["beside"]).setChecked(True)
        row = QHBoxLayout()
        self.ws_folder = QLineEdit(w.folder, page)
        self.ws_folder.setObjectName("prefsWorkspaceFolder")
        browse = QPushButton("Browse…", page)
        browse.setObjectName("prefsWorkspaceBrowse")
        browse.clicked.connect(self._on_browse_workspace)
        row.addWidget(self.ws_folder, 1)
        row.addWidget(browse)
        lay.addLayout(row)
        outside = workspace_env_from_outside()
        if outside:
            env = QLabel(f"{WORKSPACE_ENV} is set ({outside}); it wins over this choice.", page)
            env.setObjectName("prefsWorkspaceEnv")
            env.setWordWrap(True)
            lay.addWidget(env)
        lay.addStretch(1)
        return page

    def _shortcuts_page(self) -> QWidget:
        page = QWidget(self)
        self._defaults = default_shortcuts()
        for name, action in self._actions.items():
            self._defaults.setdefault(name, tuple(portable_key(k) for k in action.shortcuts()))
        self._keys = {n: tuple(self._settings.shortcuts.get(n, d)) for n, d in self._defaults.items()}
        specs = {s.name: s for s in ACTIONS}
        names = [s.name for s in ACTIONS] + [n for n in self._actions if n not in specs]
        self._rows: dict[str, int] = {}
        self._editors: dict[str, QKeySequenceEdit] = {}
        self.shortcut_table = QTableWidget(len(names), 4, page)
        self.shortcut_table.setObjectName("prefsShortcuts")
        self.shortcut_table.setHorizontalHeaderLabels(["Menu", "Action", "Shortcut", "Also"])
        self.shortcut_table.verticalHeader().setVisible(False)
        self.shortcut_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.shortcut_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.shortcut_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        hh = self.shortcut_table.horizontalHeader()
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for r, name in enumerate(names):
            spec = specs.get(name)
            act = self._actions.get(name)
            menu = spec.menu.replace("&", "") if spec else ""
            text = (spec.text if spec else act.text() if act else name).replace("&", "").rstrip("…")
            self.shortcut_table.setItem(r, 0, QTableWidgetItem(menu))
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.shortcut_table.setItem(r, 1, item)
            ed = QKeySequenceEdit(self.shortcut_table)
            ed.setObjectName(f"prefsKey_{name}")
            ed.setMaximumSequenceLength(1)
            ed.setClearButtonEnabled(True)
            ed.editingFinished.connect(lambda n=name: self._on_key_edited(n))
            self.shortcut_table.setCellWidget(r, 2, ed)
            self.shortcut_table.setItem(r, 3, QTableWidgetItem(""))
            self._rows[name] = r
            self._editors[name] = ed
            self._show_keys(name)
        hh.resizeSection(2, 160)
        self.shortcut_filter = QLineEdit(page)
        self.shortcut_filter.setObjectName("prefsShortcutFilter")
        self.shortcut_filter.setPlaceholderText("Filter actions…")
        self.shortcut_filter.textChanged.connect(self._on_filter_changed)
        self.shortcut_message = QLabel("Click a shortcut and press the new keys; the clear button removes it.", page)
        self.shortcut_message.setObjectName("prefsShortcutMessage")
        self.shortcut_message.setWordWrap(True)
        reset_one = QPushButton("Reset to Default", page)
        reset_one.setObjectName("prefsShortcutReset")
        reset_one.clicked.connect(self._on_reset_selected_shortcut)
        reset_all = QPushButton("Reset All", page)
        reset_all.setObjectName("prefsShortcutResetAll")
        reset_all.clicked.connect(self.reset_all_shortcuts)
        lay = QVBoxLayout(page)
        lay.addWidget(self.shortcut_filter)
        lay.addWidget(self.shortcut_table, 1)
        lay.addWidget(self.shortcut_message)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(reset_one)
        row.addWidget(reset_all)
        lay.addLayout(row)
        return page

    # colours ----------------------------------------------------------------------------------------------------
    def _pending_colours(self) -> ColourSettings:
        c = self._settings.colours
        key = dataset_key(self._dataset_root) if self._dataset_root is not None else None
        by_class, by_dataset = dict(c.by_class), {k: dict(v) for k, v in c.by_dataset.items()}
        if self._cleared_colours and self._schema is not None:
            names = set(self._schema.names)
            by_class = {k: v for k, v in by_class.items() if k not in names}
            if key is not None:
                by_dataset.pop(key, None)
        if self._colour_edits:
            if self.colour_scope.currentData() == "dataset" and key is not None:
                by_dataset.setdefault(key, {}).update(self._colour_edits)
            else:
                by_class.update(self._colour_edits)
                if key is not None and key in by_dataset:  # a class-wide pick is not hidden by an older one
                    for n in self._colour_edits:
                        by_dataset[key].pop(n, None)
        by_dataset = {k: v for k, v in by_dataset.items() if v}
        return ColourSettings(palette=str(self.palette_box.currentData()), by_class=by_class, by_dataset=by_dataset)

    def class_colours(self) -> dict[str, RGB]:
        """Class name → the colour it will show with the settings as edited (empty without a schema)."""
        if self._schema is None:
            return {}
        s = replace(self._settings, colours=self._pending_colours())
        return {c.name: c.colour for c in effective_schema(self._schema, s, self._dataset_root)}

    def _fill_colour_table(self) -> None:
        if not hasattr(self, "colour_table"):
            return
        cols = self.class_colours()
        self.colour_table.setRowCount(len(cols))
        for r, (name, rgb) in enumerate(cols.items()):
            self.colour_table.setItem(r, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(_swatch(rgb), f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
            item.setToolTip("Double-click to pick another colour")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.colour_table.setItem(r, 1, item)
        self.colour_table.setEnabled(self._schema is not None)
        self.reset_colours.setEnabled(self._schema is not None)

    def set_class_colour(self, name: str, rgb: RGB) -> None:
        self._colour_edits[name] = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
        self._fill_colour_table()

    def _on_colour_cell_double_clicked(self, row: int, _col: int) -> None:
        item = self.colour_table.item(row, 1)
        if item is None:
            return
        name = str(item.data(Qt.ItemDataRole.UserRole))
        current = QColor(item.text())
        colour = QColorDialog.getColor(current, self, f"Colour of {name}")
        if colour.isValid():
            self.set_class_colour(name, (colour.red(), colour.green(), colour.blue()))

    def _on_reset_colours(self) -> None:
        self._colour_edits.clear()
        self._cleared_colours = True
        self._fill_colour_table()

    # shortcuts --------------------------------------------------------------------------------------------------
    def _show_keys(self, name: str) -> None:
        keys = self._keys.get(name, ())
        ed = self._editors[name]
        ed.blockSignals(True)
        ed.setKeySequence(QKeySequence(keys[0]) if keys else QKeySequence())
        ed.blockSignals(False)
        also = ", ".join(QKeySequence(k).toString(NATIVE) for k in keys[1:])
        cell(self.shortcut_table, self._rows[name], 3).setText(also)

    def shortcut(self, name: str) -> tuple[str, ...]:
        return self._keys.get(name, ())

    def set_shortcut(self, name: str, key: str) -> bool:
        """Bind ``key`` (portable text, "" clears) as ``name``'s first shortcut; its other keys stay. A key held
        by another action (or by class selection) is refused: False, and the message says who holds it."""
        key = portable_key(key) if key else ""
        old = self._keys.get(name, ())
        if not key:
            self._keys[name] = ()
            self.shortcut_message.setText(f"{self._label(name)} has no shortcut now.")
            self._show_keys(name)
            return True
        holder = self._holder(key, name)
        if holder is not None:
            self.shortcut_message.setText(
                f"{QKeySequence(key).toString(NATIVE)} is already used by {holder}: not changed. Give that one "
                "another key first.")
            self.shortcut_message.setProperty("conflict", True)
            self._show_keys(name)
            return False
        self._keys[name] = (key, *(k for k in old[1:] if k != key))
        self.shortcut_message.setText(f"{self._label(name)}: {QKeySequence(key).toString(NATIVE)}")
        self.shortcut_message.setProperty("conflict", False)
        self._show_keys(name)
        return True

    def _holder(self, key: str, name: str) -> str | None:
        if key in RESERVED_KEYS:
            return RESERVED_KEYS[key]
        for other, keys in self._keys.items():
            if other != name and key in keys:
                return f"“{self._label(other)}”"
        return None

    def _label(self, name: str) -> str:
        return cell_text(self.shortcut_table, self._rows[name], 1)

    def reset_shortcut(self, name: str) -> bool:
        default = self._defaults.get(name, ())
        for k in default:
            holder = self._holder(k, name)
            if holder is not None:
                self.shortcut_message.setText(f"The default {QKeySequence(k).toString(NATIVE)} is now used by "
                                              f"{holder}: not reset.")
                return False
        self._keys[name] = default
        self._show_keys(name)
        self.shortcut_message.setText(f"{self._label(name)}: back to its default.")
        return True

    def reset_all_shortcuts(self) -> None:
        self._keys = dict(self._defaults)
        for name in self._rows:
            self._show_keys(name)
        self.shortcut_message.setText("Every shortcut is back to its default.")

    def _on_key_edited(self, name: str) -> None:
        seq = self._editors[name].keySequence().toString(PORTABLE)
        cur = self._keys.get(name, ())
        if seq == (cur[0] if cur else ""):
            return
        self.set_shortcut(name, seq)

    def _on_reset_selected_shortcut(self) -> None:
        rows = self.shortcut_table.selectionModel().selectedRows()
        if not rows:
            self.shortcut_message.setText("Select an action in the table first.")
            return
        item = self.shortcut_table.item(rows[0].row(), 1)
        if item is not None:
            self.reset_shortcut(str(item.data(Qt.ItemDataRole.UserRole)))

    def _on_filter_changed(self, text: str) -> None:
        t = text.strip().lower()
        for name, r in self._rows.items():
            keys = " ".join(self._keys.get(name, ())).lower()
            hit = not t or t in self._label(name).lower() or t in keys or t in name
            self.shortcut_table.setRowHidden(r, not hit)

    # result -----------------------------------------------------------------------------------------------------
    def _on_browse_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for workspaces", self.ws_folder.text())
        if folder:
            self.ws_folder.setText(folder)
            self.ws_radios["folder"].setChecked(True)

    def result_settings(self) -> AppSettings:
        s = self._settings
        location = next((k for k, rb in self.ws_radios.items() if rb.isChecked()), "beside")
        device = self.device.currentData() if self.device.currentText() == self.device.itemText(
            self.device.currentIndex()) else None
        device = str(device or self.device.currentText().strip() or "auto")
        shortcuts = {n: k for n, k in self._keys.items() if k != self._defaults.get(n, ())}
        shortcuts.update({n: k for n, k in s.shortcuts.items() if n not in self._keys})
        return replace(
            s,
            overlay=OverlaySettings(opacity=self.opacity.value() / 100,
                                    contour_only=self.mask_style.currentData() == "contour"),
            colours=self._pending_colours(),
            reviewer=self.reviewer.text().strip(),
            autosave_s=self.autosave.value(),
            show_tour=self.show_tour.isChecked(),
            compute=ComputeSettings(device=device, threads=self.threads.value()),
            workspace=WorkspaceLocationSettings(location=location, folder=self.ws_folder.text().strip()),
            shortcuts=shortcuts,
        )

    def apply(self) -> None:
        if self.ws_radios["folder"].isChecked() and not self.ws_folder.text().strip():
            self.tabs.setCurrentIndex(self.TABS.index("Workspace"))
            self.ws_folder.setPlaceholderText("Choose a folder, or another option")
            self.ws_folder.setFocus()
            return
        new = self.result_settings()
        self._settings = new
        self._colour_edits.clear()
        self._cleared_colours = False
        self._fill_colour_table()
        self.sig_applied.emit(new)

    def accept(self) -> None:
        self.apply()
        if self.ws_radios["folder"].isChecked() and not self.ws_folder.text().strip():
            return
        super().accept()
