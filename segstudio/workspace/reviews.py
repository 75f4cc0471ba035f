"""Review state per sample, with its full history (who decided what, when)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from segstudio.workspace.db import Database
from segstudio.workspace.events import WorkspaceEvents
from segstudio.workspace.records import ReviewState, ReviewStatus


def _row(r: tuple[object, ...]) -> ReviewState:
    return ReviewState(
        sample_id=str(r[0]), status=ReviewStatus(r[1]), comment=str(r[2]), reviewer=str(r[3]), time=float(r[4])  # type: ignore[arg-type]
    )


class ReviewStore:
    """Current review state (one row per reviewed sample) plus an append-only history."""

    def __init__(self, db: Database, events: WorkspaceEvents) -> None:
        self._db = db
        self._events = events

    def set(
        self,
        sample_id: str,
        status: ReviewStatus | str,
        *,
        comment: str | None = None,
        reviewer: str = "",
        when: float | None = None,
    ) -> ReviewState:
        """Record a decision (``status`` as enum or its string value); returns the new state.

        ``comment=None`` keeps the sample's current comment (a keyboard "accept" must not wipe a note);
        ``""`` clears it."""
        st = ReviewStatus(status)
        with self._db.write() as conn:
            if comment is None:
                row = conn.execute("SELECT comment FROM reviews WHERE sample_id=?", (sample_id,)).fetchone()
                comment = str(row[0]) if row else ""
            state = ReviewState(
                sample_id=sample_id, status=st, comment=comment, reviewer=reviewer, time=time.time() if when is None else when
            )
            args = (state.sample_id, state.status.value, state.comment, state.reviewer, state.time)
            conn.execute(
                "INSERT INTO reviews(sample_id, status, comment, reviewer, time) VALUES (?,?,?,?,?) "
                "ON CONFLICT(sample_id) DO UPDATE SET status=excluded.status, comment=excluded.comment, "
                "reviewer=excluded.reviewer, time=excluded.time",
                args,
            )
            conn.execute("INSERT INTO review_history(sample_id, status, comment, reviewer, time) VALUES (?,?,?,?,?)", args)
        self._events.review_changed.emit(state)
        return state

    def get(self, sample_id: str) -> ReviewState:
        """The current state; ``UNREVIEWED`` with ``time=None`` for a sample never reviewed."""
        rows = self._db.query("SELECT sample_id, status, comment, reviewer, time FROM reviews WHERE sample_id=?", (sample_id,))
        return _row(rows[0]) if rows else ReviewState(sample_id=sample_id)

    def history(self, sample_id: str) -> list[ReviewState]:
        """Every decision on the sample, oldest first."""
        rows = self._db.query(
            "SELECT sample_id, status, comment, reviewer, time FROM review_history WHERE sample_id=? ORDER BY id", (sample_id,)
        )
        return [_row(r) for r in rows]

    def all(self) -> dict[str, ReviewState]:
        """Current state of every sample that has one (one query; for filling a browser column)."""
        rows = self._db.query("SELECT sample_id, status, comment, reviewer, time FROM reviews")
        return {str(r[0]): _row(r) for r in rows}

    def with_status(self, status: ReviewStatus | str) -> frozenset[str]:
        """The samples whose current decision is ``status`` (e.g. the rejected labels, which do not train)."""
        st = ReviewStatus(status)
        rows = self._db.query("SELECT sample_id FROM reviews WHERE status=?", (st.value,))
        return frozenset(str(r[0]) for r in rows)

    def summary(self, sample_ids: Iterable[str] | None = None) -> dict[ReviewStatus, int]:
        """Count per status. With ``sample_ids`` (the dataset's samples) samples without a row count as
        unreviewed and rows of samples no longer in the dataset are left out."""
        out = {s: 0 for s in ReviewStatus}
        states = self.all()
        if sample_ids is None:
            for st in states.values():
                out[st.status] += 1
            return out
        for sid in sample_ids:
            found = states.get(sid)
            out[found.status if found is not None else ReviewStatus.UNREVIEWED] += 1
        return out
