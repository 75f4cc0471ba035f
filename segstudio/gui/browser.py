"""Sample browser: a virtual table of the dataset's samples, sortable and filterable, with async thumbnails.

Three layers, each cheap on a 10,000-sample dataset:

* ``SampleTableModel`` — rows are dataset indices; cells are computed in ``data()`` from a few numpy arrays
  (review status, Dice, IoU, problem count). Nothing is materialised per row; thumbnails load when painted.
* ``_OrderProxy`` — the sort order as a numpy permutation. Sorting here takes milliseconds, where Qt's own
  proxy sort calls back into Python twice per comparison (2 s for 10,000 rows, measured).
* ``_FilterProxy`` (a ``QSortFilterProxyModel``) — the filter combo and the name filter; a header click reaches
  its ``sort`` and is handed to the order proxy, so the view keeps Qt's header behaviour.

Rows do not jump while a person reviews: a single ``set_review``/``set_scores`` updates cells and the filter, not
the sort order (a header click or ``sort_by`` re-sorts). The current sample stays visible even when it stops
matching the filter (accepting it under "Unreviewed"), so next/previous continue from where the user is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractProxyModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
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
from segstudio.datasets.base import Dataset
from segstudio.gui.thumbnails import THUMBNAIL_PX, ThumbnailLoader, broken_pixmap, placeholder_pixmap
from segstudio.workspace.records import ReviewState, ReviewStatus

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex
_ROLE = Qt.ItemDataRole
SampleIdRole = _ROLE.UserRole + 1
#: Number or casefolded text a column sorts by; ``None`` = unknown (sorted last in both directions).
SortRole = _ROLE.UserRole + 2

COLUMNS = ("name", "split", "status", "dice", "iou", "problems")
_HEADERS = ("Sample", "Split", "Review", "Dice", "IoU", "⚠")
NAME, SPLIT, STATUS, DICE, IOU, PROBLEMS = range(len(COLUMNS))
_STATUSES = tuple(ReviewStatus)
_STATUS_CODE = {s: i for i, s in enumerate(_STATUSES)}
_STATUS_COLOUR = {
    ReviewStatus.UNREVIEWED: QColor(128, 128, 128),  # muted: the default should not shout in every row
    ReviewStatus.ACCEPTED: QColor(46, 160, 67),
    ReviewStatus.CORRECTED: QColor(45, 120, 210),
    ReviewStatus.REJECTED: QColor(205, 50, 50),
    ReviewStatus.FLAGGED: QColor(220, 140, 30),
}
_PROBLEM_COLOUR = QColor(220, 140, 40)
#: filter key → combo text
FILTERS = {
    "all": "All",
    "unreviewed": "Unreviewed",
    "accepted": "Accepted",
    "corrected": "Corrected",
    "rejected": "Rejected",
    "flagged": "Flagged",
    "has_problems": "Has problems",
    "has_prediction": "Has prediction",
}
_DASH = "—"


def _natural_key(text: str) -> tuple[Any, ...]:
    """"img2" before "img10": digit runs compare as numbers."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text.casefold()))


def _numeric_order(values: np.ndarray, ascending: bool) -> np.ndarray:
    """Row order of float ``values`` (NaN = unknown, always last); ties keep dataset order."""
    unknown = np.isnan(values)
    known = np.flatnonzero(~unknown)
    keys = values[known] if ascending else -values[known]
    return np.concatenate([known[np.argsort(keys, kind="stable")], np.flatnonzero(unknown)])


@dataclass(frozen=True)
class BrowserSummary:
    """Progress over the whole dataset (not just the visible rows)."""

    total: int
    by_status: Mapping[ReviewStatus, int]
    with_problems: int
    with_prediction: int
    scored: int
    mean_dice: float | None

    @property
    def reviewed(self) -> int:
        return self.total - self.by_status.get(ReviewStatus.UNREVIEWED, 0)

    def text(self) -> str:
        parts = [f"{self.reviewed}/{self.total} reviewed"]
        for st in (ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED, ReviewStatus.REJECTED, ReviewStatus.FLAGGED):
            if self.by_status.get(st, 0):
                parts.append(f"{self.by_status[st]} {st.value}")
        if self.mean_dice is not None:
            parts.append(f"mean Dice {self.mean_dice:.3f} ({self.scored} scored)")
        if self.with_problems:
            parts.append(f"{self.with_problems} with problems")
        return " · ".join(parts)


class SampleTableModel(QAbstractTableModel):
    """Samples of one dataset as table rows (row = dataset index). Display caches only: the review states and
    scores shown here are pushed by the caller from the workspace, which stays the source of truth."""

    def __init__(self, parent: QObject | None = None, *, thumbnail_px: int = THUMBNAIL_PX) -> None:
        super().__init__(parent)
        self._ds: Dataset | None = None
        self._ids: list[str] = []
        self._folded: list[str] = []
        self._names: list[str] = []
        self._name_keys: list[tuple[Any, ...]] | None = None  # natural-sort keys, made on the first name sort
        self._status = np.zeros(0, np.int8)
        self._reviews: dict[str, ReviewState] = {}
        self._dice = np.zeros(0, np.float64)
        self._iou = np.zeros(0, np.float64)
        self._has_pred = np.zeros(0, bool)
        self._n_problems = np.zeros(0, np.int32)
        self.thumbnails = ThumbnailLoader(self, px=thumbnail_px)
        self._placeholder = placeholder_pixmap(thumbnail_px)
        self._broken = broken_pixmap(thumbnail_px)
        self.thumbnails.sig_thumbnail_ready.connect(self._on_thumbnails_arrived)
        self.thumbnails.sig_thumbnail_failed.connect(lambda sid, _msg: self._on_thumbnails_arrived(sid))

    # dataset and display caches ---------------------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset | None:
        return self._ds

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.beginResetModel()
        self._ds = dataset
        samples = dataset.samples if dataset is not None else []
        n = len(samples)
        self._ids = [s.id for s in samples]
        self._folded = [i.casefold() for i in self._ids]
        # file names read best; where two folders hold the same name only the full id tells them apart
        names = [i.rsplit("/", 1)[-1] for i in self._ids]
        self._names = names if len(set(names)) == n else list(self._ids)
        self._name_keys = None
        self._status = np.zeros(n, np.int8)
        self._reviews = {}
        self._dice = np.full(n, np.nan)
        self._iou = np.full(n, np.nan)
        self._has_pred = np.zeros(n, bool)
        self._n_problems = np.fromiter((len(s.problems) for s in samples), np.int32, count=n)
        self._late_problems: dict[str, list] = {}
        self._late_seen = 0
        self.thumbnails.set_dataset(dataset)
        self.endResetModel()

    def refresh_problems(self) -> None:
        """Take in problems the dataset found while decoding (``Dataset.problems`` naming a sample, e.g. an
        unknown colour or overlapping class masks): they count and show beside the ones found at opening."""
        ds = self._ds
        if ds is None or len(ds.problems) == self._late_seen:
            return
        rows = []
        for p in ds.problems[self._late_seen:]:
            if p.sample_id is not None and p.sample_id in ds:
                self._late_problems.setdefault(p.sample_id, []).append(p)
                row = ds.index_of(p.sample_id)
                self._n_problems[row] += 1
                rows.append(row)
        self._late_seen = len(ds.problems)
        if rows:
            self._emit_rows(sorted(set(rows)), PROBLEMS, PROBLEMS)

    def problems_of(self, row: int) -> list:
        """Every problem of the sample at dataset row ``row``: found at opening, then while decoding."""
        assert self._ds is not None
        s = self._ds.samples[row]
        return list(s.problems) + self._late_problems.get(s.id, [])

    def row_of(self, sample_id: str) -> int:
        """Dataset index of ``sample_id``; -1 when it is not in the dataset."""
        ds = self._ds
        return ds.index_of(sample_id) if ds is not None and sample_id in ds else -1

    def sample_id(self, row: int) -> str:
        return self._ids[row]

    def review(self, sample_id: str) -> ReviewState:
        return self._reviews.get(sample_id, ReviewState(sample_id=sample_id))

    def set_review(self, sample_id: str, state: ReviewState) -> None:
        self.set_reviews({sample_id: state})

    def set_reviews(self, states: Mapping[str, ReviewState]) -> None:
        """Merge review states (e.g. ``ReviewStore.all()`` after opening); ids not in the dataset are ignored."""
        rows = []
        for sid, st in states.items():
            row = self.row_of(sid)
            if row >= 0:
                self._reviews[sid] = st
                self._status[row] = _STATUS_CODE[ReviewStatus(st.status)]
                rows.append(row)
        self._emit_rows(rows, STATUS, STATUS)

    def set_scores(self, sample_id: str, dice: float | None, iou: float | None) -> None:
        self.set_scores_many({sample_id: (dice, iou)})

    def set_scores_many(self, scores: Mapping[str, tuple[float | None, float | None]]) -> None:
        """Merge ``{sample_id: (mean Dice, mean IoU)}`` of prediction vs GT; ``None``/NaN = unknown."""
        rows = []
        for sid, (dice, iou) in scores.items():
            row = self.row_of(sid)
            if row >= 0:
                self._dice[row] = np.nan if dice is None else float(dice)
                self._iou[row] = np.nan if iou is None else float(iou)
                rows.append(row)
        self._emit_rows(rows, DICE, IOU)

    def set_predictions(self, sample_ids: Iterable[str]) -> None:
        """The samples that have a prediction (replaces the previous set; a known score also implies one)."""
        has = np.zeros(len(self._ids), bool)
        for sid in sample_ids:
            row = self.row_of(sid)
            if row >= 0:
                has[row] = True
        changed = np.flatnonzero(has != self._has_pred).tolist()
        self._has_pred = has
        self._emit_rows(changed, NAME, len(COLUMNS) - 1)

    def touch(self, row: int) -> None:
        """Say the row changed, so filters look at it again."""
        self._emit_rows([row], NAME, len(COLUMNS) - 1)

    def _emit_rows(self, rows: list[int], first_col: int, last_col: int) -> None:
        if rows:
            self.dataChanged.emit(self.index(min(rows), first_col), self.index(max(rows), last_col))

    # questions the proxies and the summary ask ------------------------------------------------------------------
    def matches(self, row: int, filter_key: str, text: str) -> bool:
        """Whether dataset row ``row`` passes filter ``filter_key`` and contains ``text`` (casefolded) in its id."""
        if text and text not in self._folded[row]:
            return False
        if filter_key == "all":
            return True
        if filter_key == "has_problems":
            return bool(self._n_problems[row] > 0)
        if filter_key == "has_prediction":
            return bool(self._has_pred[row] or not np.isnan(self._dice[row]))
        return _STATUSES[int(self._status[row])].value == filter_key

    def match_mask(self, filter_key: str, text: str) -> np.ndarray:
        """``matches`` for every dataset row at once: ``(n,)`` bool."""
        n = len(self._ids)
        if filter_key == "all":
            mask = np.ones(n, bool)
        elif filter_key == "has_problems":
            mask = self._n_problems > 0
        elif filter_key == "has_prediction":
            mask = self._has_pred | ~np.isnan(self._dice)
        else:
            mask = self._status == _STATUS_CODE[ReviewStatus(filter_key)]
        if text:
            mask &= np.fromiter((text in f for f in self._folded), bool, count=n)
        return mask

    def sort_order(self, column: int, ascending: bool) -> np.ndarray:
        """Dataset rows in the order of ``column`` (-1: dataset order); unknown values last either way."""
        n = len(self._ids)
        numeric: dict[int, np.ndarray] = {DICE: self._dice, IOU: self._iou, PROBLEMS: self._n_problems, STATUS: self._status}
        if column in numeric:
            return _numeric_order(numeric[column].astype(np.float64), ascending)
        if column == NAME:
            if self._name_keys is None:
                self._name_keys = [_natural_key(name) for name in self._names]
            return np.asarray(sorted(range(n), key=self._name_keys.__getitem__, reverse=not ascending), np.int64)
        if column == SPLIT and self._ds is not None:
            splits = [s.split for s in self._ds.samples]
            known = sorted((i for i in range(n) if splits[i]), key=lambda i: _natural_key(splits[i] or ""),
                           reverse=not ascending)  # Python's sort stays stable in reverse: ties keep dataset order
            return np.asarray(known + [i for i in range(n) if not splits[i]], np.int64)
        return np.arange(n, dtype=np.int64)

    def summary(self) -> BrowserSummary:
        counts = np.bincount(self._status, minlength=len(_STATUSES)) if len(self._status) else np.zeros(len(_STATUSES), int)
        scored = ~np.isnan(self._dice)
        return BrowserSummary(
            total=len(self._ids),
            by_status={s: int(counts[i]) for i, s in enumerate(_STATUSES)},
            with_problems=int((self._n_problems > 0).sum()),
            with_prediction=int((self._has_pred | scored).sum()),
            scored=int(scored.sum()),
            mean_dice=float(self._dice[scored].mean()) if scored.any() else None,
        )

    # Qt model ---------------------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _ROLE.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == _ROLE.DisplayRole:
                return _HEADERS[section]
            if role == _ROLE.ToolTipRole and section in (DICE, IOU):
                return f"Mean {_HEADERS[section]} of the prediction against the GT; unknown values sort last"
            if role == _ROLE.ToolTipRole and section == PROBLEMS:
                return "Problems found in this sample's files (hover a cell for the list)"
        return None

    def data(self, index: Index, role: int = _ROLE.DisplayRole) -> Any:
        if self._ds is None or not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == _ROLE.DisplayRole:
            return self._display(row, col)
        if role == SampleIdRole:
            return self._ids[row]
        if role == _ROLE.DecorationRole and col == NAME:
            return self._thumbnail(row)
        if role == _ROLE.ToolTipRole:
            return self._tooltip(row, col)
        if role == _ROLE.ForegroundRole:
            if col == STATUS:
                return _STATUS_COLOUR.get(_STATUSES[int(self._status[row])])
            if col == PROBLEMS and self._n_problems[row]:
                return _PROBLEM_COLOUR
            return None
        if role == _ROLE.TextAlignmentRole and col in (DICE, IOU, PROBLEMS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == SortRole:
            return self._sort_value(row, col)
        return None

    def _display(self, row: int, col: int) -> str:
        if col == NAME:
            return self._names[row]
        if col == SPLIT:
            return self._ds.samples[row].split or _DASH if self._ds is not None else ""
        if col == STATUS:
            return _STATUSES[int(self._status[row])].value
        if col in (DICE, IOU):
            v = (self._dice if col == DICE else self._iou)[row]
            return _DASH if np.isnan(v) else f"{v:.3f}"
        if col == PROBLEMS:
            return str(int(self._n_problems[row])) if self._n_problems[row] else ""
        return ""

    def _sort_value(self, row: int, col: int) -> Any:
        if col in (DICE, IOU):
            v = float((self._dice if col == DICE else self._iou)[row])
            return None if np.isnan(v) else v
        if col == STATUS:
            return int(self._status[row])
        if col == PROBLEMS:
            return int(self._n_problems[row])
        if col == SPLIT:
            split = self._ds.samples[row].split if self._ds is not None else None
            return split.casefold() if split else None
        return self._names[row].casefold()

    def _thumbnail(self, row: int) -> Any:
        sid = self._ids[row]
        pm = self.thumbnails.get(sid)
        if pm is not None:
            return pm
        if self.thumbnails.error(sid) is not None:
            return self._broken
        self.thumbnails.request(sid)
        return self._placeholder

    def _tooltip(self, row: int, col: int) -> str | None:
        assert self._ds is not None
        s = self._ds.samples[row]
        if col == NAME:
            lines = [s.id, str(s.image)]
            err = self.thumbnails.error(s.id)
            if err:
                lines.append(f"image cannot be read: {err}")
            return "\n".join(lines)
        if col == STATUS:
            st = self._reviews.get(s.id)
            if st is None:
                return "not reviewed yet"
            when = datetime.fromtimestamp(st.time).strftime("%Y-%m-%d %H:%M") if st.time else ""
            who = f" by {st.reviewer}" if st.reviewer else ""
            return "\n".join(x for x in (f"{st.status.value}{who} {when}".strip(), st.comment) if x)
        problems = self.problems_of(row) if col == PROBLEMS else []
        if problems:
            lines = [str(p) for p in problems[:20]]
            if len(problems) > 20:
                lines.append(f"… and {len(problems) - 20} more")
            return "\n".join(lines)
        return None

    def _on_thumbnails_arrived(self, sample_id: str) -> None:
        row = self.row_of(sample_id)
        if row >= 0:
            idx = self.index(row, NAME)
            self.dataChanged.emit(idx, idx, [_ROLE.DecorationRole, _ROLE.ToolTipRole])


class _OrderProxy(QAbstractProxyModel):
    """The model's rows in a sort order held as a numpy permutation (``order[proxy row] = dataset row``)."""

    def __init__(self, model: SampleTableModel) -> None:
        super().__init__(model)
        self.model_ = model
        self.order = np.arange(model.rowCount(), dtype=np.int64)
        self.pos = self.order.copy()  # inverse: pos[dataset row] = proxy row
        self.order_list: list[int] = self.order.tolist()  # the filter's per-row lookups: a list indexes faster
        self.setSourceModel(model)
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._on_model_reset)
        model.dataChanged.connect(self._on_model_data_changed)

    def apply_order(self, order: np.ndarray) -> None:
        """Re-order rows, keeping persistent indexes (the current row, the selection) on their samples."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        rows = [int(self.order[i.row()]) for i in old]
        self.order = np.asarray(order, np.int64)
        self.order_list = self.order.tolist()
        self.pos = np.empty_like(self.order)
        self.pos[self.order] = np.arange(len(self.order))
        self.changePersistentIndexList(old, [self.index(int(self.pos[r]), i.column()) for r, i in zip(rows, old, strict=True)])
        self.layoutChanged.emit()

    def _on_model_reset(self) -> None:
        self.order = np.arange(self.model_.rowCount(), dtype=np.int64)
        self.pos = self.order.copy()
        self.order_list = self.order.tolist()
        self.endResetModel()

    def _on_model_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        rows = self.pos[top.row() : bottom.row() + 1]
        if len(rows):
            lo, hi = int(rows.min()), int(rows.max())
            self.dataChanged.emit(self.index(lo, top.column()), self.index(hi, bottom.column()), roles)

    def mapToSource(self, proxy: Index) -> QModelIndex:  # noqa: N802
        if not proxy.isValid() or proxy.row() >= len(self.order):
            return QModelIndex()
        return self.model_.index(int(self.order[proxy.row()]), proxy.column())

    def mapFromSource(self, source: Index) -> QModelIndex:  # noqa: N802
        if not source.isValid() or source.row() >= len(self.pos):
            return QModelIndex()
        return self.index(int(self.pos[source.row()]), source.column())

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        return self.createIndex(row, column) if self.hasIndex(row, column, parent) else QModelIndex()

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        return QModelIndex()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _ROLE.DisplayRole) -> Any:  # noqa: N802
        return self.model_.headerData(section, orientation, role)


class _FilterProxy(QSortFilterProxyModel):
    """Filters rows of the order proxy; hands header-click sorting to it (see the module docstring)."""

    def __init__(self, order: _OrderProxy) -> None:
        super().__init__(order)
        self.order_ = order
        self.filter_key = "all"
        self.text = ""
        self.pinned = -1  # dataset row that stays visible whatever the filter (the current sample)
        self.sort_column = -1
        self.sort_ascending = True
        self._matches = order.model_.matches
        self.setDynamicSortFilter(True)
        self.setSourceModel(order)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_column = column
        self.sort_ascending = order == Qt.SortOrder.AscendingOrder
        self.order_.apply_order(self.order_.model_.sort_order(column, self.sort_ascending))

    def set_filter(self, filter_key: str, text: str) -> None:
        self.beginFilterChange()
        self.filter_key, self.text = filter_key, text.casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def accepts_dataset_row(self, row: int) -> bool:
        return row == self.pinned or self.order_.model_.matches(row, self.filter_key, self.text)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        row = self.order_.order_list[source_row]
        return row == self.pinned or self._matches(row, self.filter_key, self.text)

    def proxy_row_of(self, dataset_row: int) -> int:
        """Visible row of a dataset row, -1 when filtered out."""
        src = self.order_.index(int(self.order_.pos[dataset_row]), 0)
        return self.mapFromSource(src).row()

    def dataset_row(self, proxy_row: int) -> int:
        return int(self.order_.order[self.mapToSource(self.index(proxy_row, 0)).row()])


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
        self._order = _OrderProxy(self.model_)
        self.proxy = _FilterProxy(self._order)
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
        self._refresh_summary()

    def _build_view(self, px: int) -> QTableView:
        view = QTableView(self)
        view.setObjectName("browserTable")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setShowGrid(False)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
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
        hh.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        fm = view.fontMetrics()
        hh.setMinimumSectionSize(40)
        view.setMinimumWidth(px + fm.horizontalAdvance("MCUCXR_0000_0.png") + 3 * fm.horizontalAdvance("0.000") + 60)
        for col, sample in ((SPLIT, "train"), (STATUS, "unreviewed"), (DICE, "0.000"), (IOU, "0.000"),
                            (PROBLEMS, "99")):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            view.setColumnWidth(col, max(fm.horizontalAdvance(sample), fm.horizontalAdvance(_HEADERS[col])) + 24)
        return view

    def set_dataset(self, dataset: Dataset | None) -> None:
        """Show ``dataset`` (all unreviewed, no scores until the caller pushes them); the sort is kept."""
        self.model_.set_dataset(dataset)

    def set_score_columns_visible(self, visible: bool) -> None:
        """Dice and IoU columns only make sense with predictions; without them the name gets the room."""
        self.view.setColumnHidden(DICE, not visible)
        self.view.setColumnHidden(IOU, not visible)

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
        self.view.setColumnHidden(SPLIT, not splits)
        if splits:
            fm = self.view.fontMetrics()
            self.view.setColumnWidth(SPLIT, max(fm.horizontalAdvance(t) for t in (*splits, _HEADERS[SPLIT])) + 24)
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
