"""Sample names in a column too narrow for them: what tells two rows apart stays in sight. The names of a dataset
often share a long start ("MCUCXR_0004_0.png", "MCUCXR_0016_0.png"); a middle elision then shows the same text on
every row, so that shared prefix is what goes first."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

#: the characters a shared name prefix is cut after ("MCUCXR_" of "MCUCXR_0004_0.png", not "MCUCXR_0")
_PREFIX_ENDS = "_-./ "


def shared_prefix(names: list[str]) -> str:
    """The start that every one of ``names`` shares, up to its last separator (``_ - . /`` or a space): what a
    narrow name column can leave out first. "" for fewer than two names, or when it would leave a name empty."""
    if len(names) < 2:
        return ""
    common = os.path.commonprefix(names)
    cut = max(common.rfind(ch) for ch in _PREFIX_ENDS) + 1
    if cut < 3 or any(len(n) <= cut for n in names):
        return ""
    return common[:cut]


class NameDelegate(QStyledItemDelegate):
    """Sample names that do not fit their cell first lose the prefix every name of the dataset shares
    ("MCUCXR_0004_0.png" → "…0004_0.png"), then their end ("…0004…"): the part that tells two rows apart stays in
    sight (a middle-elided "MCUCXR…_0.png" is every row of a Montgomery set). Names with no shared prefix are
    elided in the middle by the view."""

    def __init__(self, prefix: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._prefix = prefix  # the model's shared prefix, worked out once per dataset

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        prefix = self._prefix()
        text = option.text
        if not prefix or not text.startswith(prefix):
            return
        widget = option.widget
        style = widget.style() if widget is not None else None
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, widget) + 1 if style else 4
        room = option.rect.width() - option.decorationSize.width() - 4 * margin
        fm = option.fontMetrics
        if fm.horizontalAdvance(text) <= room:
            return
        rest = text[len(prefix):]
        if fm.horizontalAdvance("…" + rest) > room:  # still too long: keep its start, where names differ
            rest = fm.elidedText(rest, Qt.TextElideMode.ElideRight, max(0, room - fm.horizontalAdvance("…")))
        option.text = "…" + rest
