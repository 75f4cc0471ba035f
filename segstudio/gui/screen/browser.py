"""Sample browser widget: the "Samples" dock — filter bar, the virtual sample table and a progress summary.

The model and its sort/filter proxies live in ``browser_model`` (see there for how 10,000 rows stay cheap).
Names are elided in the middle ("MCUCX…0_0.png": the numbers that tell samples apart stay), the full id and path
are the name's tooltip, and the header's state (column widths, order, sort) is remembered in ``window.ini`` beside
the window's geometry (DESIGN rule 9: ``QSettings`` for window and view state only).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QModelIndex, QPersistentModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QHideEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.errors import UnknownKeyError
from segstudio.core.paths import config_dir
from segstudio.datasets.base import Dataset
from segstudio.gui.screen.browser_model import (
    COLUMNS,
    DICE,
    FILTERS,
    HEADERS,
    IOU,
    NAME,
    PROBLEMS,
    SPLIT,
    STATUS,
    SUSPICION,
    SampleIdRole,
    SampleTableModel,
)
from segstudio.gui.screen.browser_proxies import FilterProxy, OrderProxy
from segstudio.gui.screen.name_elide import NameDelegate
from segstudio.gui.screen.thumbnails import THUMBNAIL_PX

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex

#: ``window.ini`` key of the sample table's header state (``QHeaderView.saveState``: widths, order, sort)
HEADER_STATE_KEY = "browser/header"
#: the name column keeps room for the dataset's names up to this many average characters beside the thumbnail
#: ("MCUCXR_0004_0.png" whole: eliding it hides the digits that tell samples apart); longer names elide in the
#: middle rather than widen the window
_NAME_MIN_CHARS, _NAME_MAX_CHARS = 8, 22


def view_settings() -> QSettings:
    """The file the main window keeps its geometry in (``config_dir()/window.ini``)."""
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class SampleBrowser(QWidget):
    """The "Samples" dock: filter bar, the sample table and a one-line progress summary.

    ``sig_sample_activated(sample_id)`` fires when the user makes a row current (click, arrow keys) or calls
    ``select_row``; ``select_sample`` follows the app's own navigation and stays silent.
    """

    sig_sample_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, thumbnail_px: int = THUMBNAIL_PX) -> None:
        super().__init__(parent)
        self.setObjectName("sampleBrowser")
        self.model_ = SampleTableModel(self, thumbnail_px=thumbnail_px)
        self._order = OrderProxy(self.model_)
        self.proxy = FilterProxy(self._order)
        self._current_id: str | None = None
        self._silent = False

        self.filter_combo = QComboBox(self)
        self.filter_combo.setObjectName("browserFilter")
        for key, text in FILTERS.items():
            self.filter_combo.addItem(text, key)
        self.name_filter = QLineEdit(self)
        self.name_filter.setObjectName("browserNameFilter")
        self.name_filter.setPlaceholderText("Filter by name…")
        self.name_filter.setClearButtonEnabled(True)
        self.view = self._build_view(thumbnail_px)
        self.summary = QLabel(self)
        self.summary.setObjectName("browserSummary")
        bar = QHBoxLayout()
        bar.addWidget(self.filter_combo)
        bar.addWidget(self.name_filter, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.summary)

        # typing re-filters 10,000 rows: wait for a pause instead of doing it per key
        self._text_timer = QTimer(self, singleShot=True, interval=150)
        self._text_timer.timeout.connect(self._apply_filter)
        # coalesces many cell updates into one summary refresh
        self._summary_timer = QTimer(self, singleShot=True, interval=0)
        self._summary_timer.timeout.connect(self._refresh_summary)
        # re-filters the row that was current, one event-loop turn after the current row moved on
        self._unpin_row = -1
        self._unpin_timer = QTimer(self, singleShot=True, interval=0)
        self._unpin_timer.timeout.connect(self._on_unpin_timer_timeout)

        self.filter_combo.currentIndexChanged.connect(self._on_filter_combo_changed)
        self.name_filter.textChanged.connect(self._on_name_filter_edited)
        self.view.selectionModel().currentRowChanged.connect(self._on_view_current_changed)
        for sig in (self.model_.dataChanged, self.model_.modelReset, self.proxy.rowsInserted,
                    self.proxy.rowsRemoved, self.proxy.layoutChanged, self.proxy.modelReset):
            sig.connect(self._on_rows_changed)
        self.model_.modelReset.connect(self._on_model_reset)
        # the header's state is saved a moment after the user last dragged or sorted, and when the table hides
        self._save_timer = QTimer(self, singleShot=True, interval=500)
        self._save_timer.timeout.connect(self.save_view_state)
        self._sizing = False  # programmatic resizing: not the user's choice, not saved
        self._restored = self._restore_view_state()
        hh = self.view.horizontalHeader()
        for sig in (hh.sectionResized, hh.sectionMoved, hh.sortIndicatorChanged):
            sig.connect(self._on_header_changed)
        self._fit_minimum_width()
        self._refresh_summary()

    def _build_view(self, px: int) -> QTableView:
        view = QTableView(self)
        view.setObjectName("browserTable")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # "predict selected images"
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setShowGrid(False)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        view.setItemDelegateForColumn(NAME, NameDelegate(self.model_.shared_prefix, view))
        view.setIconSize(view.iconSize().scaled(px, px, Qt.AspectRatioMode.IgnoreAspectRatio))
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = view.verticalHeader()
        vh.setVisible(False)
        # fixed heights: Qt never asks 10,000 rows for a size hint (which would decode every thumbnail)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(px + 4)
        hh = view.horizontalHeader()
        hh.setSectionsClickable(True)
        hh.setSortIndicatorClearable(True)  # a third click goes back to dataset order
        hh.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        view.setSortingEnabled(True)
        view.setColumnHidden(SUSPICION, True)  # until the labels are ranked (set_suspicion_column_visible)
        # a long header: room for it in the header's own font (a style sheet may make it bolder) and the sort arrow
        view.setColumnWidth(SUSPICION, max(view.columnWidth(SUSPICION),
                                           hh.fontMetrics().horizontalAdvance(HEADERS[SUSPICION]) + 40))
        hh.setSectionsMovable(True)  # the name stays first (Qt's default); the order is remembered
        # the name takes what the other columns leave; its minimum is kept by the view's (see _fit_minimum_width)
        hh.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        fm = view.fontMetrics()
        hh.setMinimumSectionSize(fm.horizontalAdvance(HEADERS[PROBLEMS]) + 20)
        for col, sample in ((SPLIT, "train"), (STATUS, "unreviewed"), (DICE, "0.000"), (IOU, "0.000"),
                            (PROBLEMS, "99"), (SUSPICION, "0.00")):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            view.setColumnWidth(col, max(fm.horizontalAdvance(sample), fm.horizontalAdvance(HEADERS[col])) + 24)
        return view

    def set_dataset(self, dataset: Dataset | None) -> None:
        """Show ``dataset`` (all unreviewed, no scores until the caller pushes them); the sort is kept."""
        self.model_.set_dataset(dataset)

    def set_score_columns_visible(self, visible: bool) -> None:
        """Dice and IoU columns only make sense with predictions; without them the name gets the room."""
        self._sizing = True
        try:
            self.view.setColumnHidden(DICE, not visible)
            self.view.setColumnHidden(IOU, not visible)
        finally:
            self._sizing = False
        self._fit_minimum_width()

    def set_suspicion_column_visible(self, visible: bool) -> None:
        """The label-suspicion column shows once the labels were ranked (Review → Rank Labels by Suspicion)."""
        if self.view.isColumnHidden(SUSPICION) == (not visible):
            return
        self._sizing = True
        try:
            self.view.setColumnHidden(SUSPICION, not visible)
        finally:
            self._sizing = False
        self._fit_minimum_width()

    def set_context_actions(self, actions: list[QAction]) -> None:
        """The table's right-click menu: ``actions`` (the window's, e.g. the bulk review actions on the selection)."""
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for act in self.view.actions():
            self.view.removeAction(act)
        self.view.addActions(actions)

    # the header's state -----------------------------------------------------------------------------------------
    def save_view_state(self) -> None:
        """Remember the column widths, order and sort (the window also calls this when it closes)."""
        self._save_timer.stop()
        qs = view_settings()
        qs.setValue(HEADER_STATE_KEY, self.view.horizontalHeader().saveState())
        qs.sync()

    def _restore_view_state(self) -> bool:
        state = view_settings().value(HEADER_STATE_KEY)
        hh = self.view.horizontalHeader()
        if not isinstance(state, QByteArray) or not hh.restoreState(state):
            return False
        # a file from an older layout must not leave the name squeezed or unstretched
        hh.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        col = hh.sortIndicatorSection()
        if 0 <= col < len(COLUMNS):
            self.proxy.sort(col, hh.sortIndicatorOrder())
        return True

    def _fit_minimum_width(self) -> None:
        """The table is never narrower than the visible columns plus a readable name: the dock (and so the
        window) keeps room for "MCUCXR_0004_0.png" beside the Dice and IoU columns (longer names elide in the middle)."""
        view, hh = self.view, self.view.horizontalHeader()
        if self.model_.rowCount() == 0:  # nothing listed: no claim on the window's width (the start screen)
            view.setMinimumWidth(0)
            return
        fm = view.fontMetrics()
        # A floor, not the names' full width: a hard minimum as wide as the longest name pushed the first window past
        # a 1366 px screen. The dock starts wide enough for the names when the window has room (preferred_width).
        text = _NAME_MIN_CHARS * fm.averageCharWidth()
        name = view.iconSize().width() + text + 16  # icon, its spacing and the cell's margins
        others = sum(hh.sectionSize(c) for c in range(hh.count()) if c != NAME and not hh.isSectionHidden(c))
        scroll = view.verticalScrollBar().sizeHint().width()
        view.setMinimumWidth(name + others + scroll + 2 * view.frameWidth())
        names = [str(self.model_.data(self.model_.index(r, NAME))) for r in range(min(200, self.model_.rowCount()))]
        full = max((fm.horizontalAdvance(n) for n in names), default=0)
        full = min(max(full, text), _NAME_MAX_CHARS * fm.averageCharWidth())
        self._prefer_width(view.iconSize().width() + full + 16 + others + scroll + 2 * view.frameWidth())

    def _prefer_width(self, width: int) -> None:
        """Widen the dock holding the table to ``width`` where the window has room (the central view keeps its
        minimum): the names show whole at a usual window size, and a small screen still fits the window."""
        from PySide6.QtWidgets import QDockWidget, QMainWindow

        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        window = dock.parentWidget() if dock is not None else None
        if dock is None or not isinstance(window, QMainWindow) or dock.isFloating() or dock.width() >= width:
            return
        window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)

    def _on_header_changed(self, *_args: object) -> None:
        if not self._sizing:
            self._save_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802
        if self._save_timer.isActive():  # the window is closing: what the user just dragged is not lost
            self.save_view_state()
        super().hideEvent(event)

    # navigation -------------------------------------------------------------------------------------------------
    def current_id(self) -> str | None:
        return self._current_id

    def select_sample(self, sample_id: str) -> bool:
        """Make ``sample_id`` current (shown even if the filter hides it) without emitting
        ``sig_sample_activated``; ``False`` if it is not in the dataset."""
        row = self.model_.row_of(sample_id)
        if row < 0:
            return False
        self._silent = True
        try:
            self._make_current(row)
        finally:
            self._silent = False
        return True

    def select_row(self, row: int) -> None:
        """Make dataset row ``row`` current as a click would (emits ``sig_sample_activated``)."""
        if 0 <= row < self.model_.rowCount():
            self._make_current(row)

    def _make_current(self, row: int) -> None:
        self._pin(row)
        prow = self.proxy.proxy_row_of(row)
        idx = self.proxy.index(prow, NAME)
        self.view.setCurrentIndex(idx)
        self.view.scrollTo(idx)

    def selected_ids(self) -> list[str]:
        """Ids of the selected rows (Ctrl/Shift-click), in the table's order; the current sample when none is."""
        rows = sorted(self.view.selectionModel().selectedRows(NAME), key=lambda i: i.row())
        ids = [str(i.data(SampleIdRole)) for i in rows]
        if not ids and self._current_id is not None:
            ids = [self._current_id]
        return ids

    def visible_ids(self) -> list[str]:
        """Sample ids in the order the table shows them (sorted and filtered)."""
        # computed from the arrays the filter reads (one numpy pass) rather than 10,000 proxy lookups
        mask = self.model_.match_mask(self.proxy.filter_key, self.proxy.text)
        for row in (self.proxy.pinned, self._unpin_row if self._unpin_timer.isActive() else -1):
            if row >= 0:
                mask[row] = True
        order = self._order.order
        return [self.model_.sample_id(int(r)) for r in order[mask[order]]]

    def next_id(self, current_id: str | None) -> str | None:
        """The sample after ``current_id`` in the visible order (``None`` at the end); the first visible
        sample when ``current_id`` is ``None``."""
        return self._step(current_id, +1)

    def previous_id(self, current_id: str | None) -> str | None:
        return self._step(current_id, -1)

    def _step(self, current_id: str | None, step: int) -> str | None:
        n_visible = self.proxy.rowCount()
        if n_visible == 0:
            return None
        row = self.model_.row_of(current_id) if current_id is not None else -1
        if row < 0:
            return self.model_.sample_id(self.proxy.dataset_row(0 if step > 0 else n_visible - 1))
        prow = self.proxy.proxy_row_of(row)
        if prow >= 0:
            nxt = prow + step
            return self.model_.sample_id(self.proxy.dataset_row(nxt)) if 0 <= nxt < n_visible else None
        # hidden by the filter: continue from its place in the sort order
        order, pos = self._order.order, int(self._order.pos[row]) + step
        while 0 <= pos < len(order):
            if self.proxy.accepts_dataset_row(int(order[pos])):
                return self.model_.sample_id(int(order[pos]))
            pos += step
        return None

    # sorting and filtering --------------------------------------------------------------------------------------
    def sort_by(self, column: str | None, ascending: bool = True) -> None:
        """Sort by a column key (``COLUMNS``, e.g. ``"dice"`` ascending = worst first); ``None`` or
        ``"dataset"`` = dataset order. Unknown values sort last in both directions."""
        if column is None or column == "dataset":
            col = -1
        elif column in COLUMNS:
            col = COLUMNS.index(column)
        else:
            raise UnknownKeyError("browser column", column, [*COLUMNS, "dataset"])
        order = Qt.SortOrder.AscendingOrder if ascending else Qt.SortOrder.DescendingOrder
        hh = self.view.horizontalHeader()
        if hh.sortIndicatorSection() == col and hh.sortIndicatorOrder() == order:
            self.proxy.sort(col, order)  # same indicator: the header emits nothing, re-sort explicitly
        else:
            hh.setSortIndicator(col, order)  # the view sorts the proxy and the header shows it

    def sort_state(self) -> tuple[str | None, bool]:
        """``(column key or None for dataset order, ascending)``."""
        col = self.proxy.sort_column
        return (COLUMNS[col] if 0 <= col < len(COLUMNS) else None, self.proxy.sort_ascending)

    def set_filter(self, name: str) -> None:
        """Show only the samples of filter ``name`` (a ``FILTERS`` key, e.g. ``"unreviewed"``)."""
        if name not in FILTERS:
            raise UnknownKeyError("browser filter", name, list(FILTERS))
        self.filter_combo.setCurrentIndex(list(FILTERS).index(name))  # applies through the handler

    def set_name_filter(self, text: str) -> None:
        """Show only samples whose id contains ``text`` (case-insensitive); applied at once."""
        self.name_filter.blockSignals(True)
        self.name_filter.setText(text)
        self.name_filter.blockSignals(False)
        self._apply_filter()

    def _apply_filter(self) -> None:
        self._text_timer.stop()
        self.proxy.set_filter(str(self.filter_combo.currentData()), self.name_filter.text().strip())

    # handlers ---------------------------------------------------------------------------------------------------
    def _on_view_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if not current.isValid():
            return
        row = self.proxy.dataset_row(current.row())
        sid = self.model_.sample_id(row)
        if sid == self._current_id:
            return  # re-sorting or re-filtering moved the same sample
        self._current_id = sid
        self._pin(row)
        if not self._silent:
            self.sig_sample_activated.emit(sid)

    def _pin(self, row: int) -> None:
        old = self.proxy.pinned
        if old == row:
            return
        self.proxy.pinned = row
        if self.proxy.proxy_row_of(row) < 0:
            self.model_.touch(row)  # the filter proxy re-checks it and shows it
        if old >= 0:
            # later, not now: slots still running for this change hold indexes a removal would shift
            self._unpin_row = old
            self._unpin_timer.start()

    def _on_unpin_timer_timeout(self) -> None:
        row, self._unpin_row = self._unpin_row, -1
        if 0 <= row < self.model_.rowCount() and row != self.proxy.pinned:
            self.model_.touch(row)

    def _on_rows_changed(self, *_args: object) -> None:
        self._summary_timer.start()

    def _on_filter_combo_changed(self, _index: int) -> None:
        self._apply_filter()

    def _on_name_filter_edited(self, _text: str) -> None:
        self._text_timer.start()

    def _on_model_reset(self) -> None:
        ds = self.model_.dataset
        splits = {s.split for s in ds.samples if s.split} if ds is not None else set()
        # a column of dashes only takes room from the names; otherwise as wide as the longest split name
        self._sizing = True
        try:
            self.view.setColumnHidden(SPLIT, not splits)
            if splits and not self._restored:  # a width the user chose wins over the fitted one
                fm = self.view.fontMetrics()
                self.view.setColumnWidth(SPLIT, max(fm.horizontalAdvance(t) for t in (*splits, HEADERS[SPLIT])) + 24)
        finally:
            self._sizing = False
        self._fit_minimum_width()
        self._current_id = None
        self.proxy.pinned = -1
        self._unpin_row = -1
        col, asc = self.sort_state()
        if col is not None:  # a new dataset keeps the user's chosen sort
            self.proxy.sort(COLUMNS.index(col), Qt.SortOrder.AscendingOrder if asc else Qt.SortOrder.DescendingOrder)

    def _refresh_summary(self) -> None:
        text = self.model_.summary().text() if self.model_.rowCount() else "no samples"
        shown, total = self.proxy.rowCount(), self.model_.rowCount()
        if shown != total:
            text += f" · showing {shown}"
        self.summary.setText(text)
