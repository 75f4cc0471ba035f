"""Value objects the workspace stores hand out (frozen: a record is a fact at a time, not a live handle)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReviewStatus(enum.StrEnum):
    UNREVIEWED = "unreviewed"
    ACCEPTED = "accepted"
    CORRECTED = "corrected"
    REJECTED = "rejected"
    FLAGGED = "flagged"


@dataclass(frozen=True, kw_only=True)
class ReviewState:
    """A sample's review decision. ``time`` is seconds since the epoch (UTC), ``None`` when never reviewed."""

    sample_id: str
    status: ReviewStatus = ReviewStatus.UNREVIEWED
    comment: str = ""
    reviewer: str = ""
    time: float | None = None


class MaskSource(enum.StrEnum):
    """Why a mask version exists."""

    CORRECTION = "correction"  #: painted by a person
    ACCEPTED_PREDICTION = "accepted_prediction"  #: a prediction a person explicitly accepted
    REVERT = "revert"  #: a copy of an older version made current again
    IMPORT = "import"  #: brought in from outside (a file, another tool)


@dataclass(frozen=True, kw_only=True)
class MaskVersion:
    """One saved mask of a sample. Versions count 1, 2, … per sample; version 0 means "the dataset's GT".

    ``parent``: the version the edit started from (0 = GT, ``None`` = unknown). ``shape``/``dtype`` describe the
    array in ``path``; ``sha256`` is the file's checksum, verified on load.
    """

    sample_id: str
    version: int
    path: Path
    time: float
    source: MaskSource = MaskSource.CORRECTION
    author: str = ""
    note: str = ""
    dtype: str = ""
    shape: tuple[int, ...] = ()
    sha256: str = ""
    parent: int | None = None


@dataclass(frozen=True, kw_only=True)
class MetricsEntry:
    """Cached figures of one sample under ``key`` (e.g. ``"gt-vs:<checkpoint id>"`` or ``"quality"``).

    ``mean_dice``/``mean_iou``/``suspicion`` are columns the browser sorts by without parsing ``data``.
    ``stamp`` says what the figures were computed from (a model stamp, a mask version), to spot stale ones.
    """

    sample_id: str
    key: str
    data: dict[str, Any]
    mean_dice: float | None = None
    mean_iou: float | None = None
    suspicion: float | None = None
    stamp: str = ""
    time: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PredictionEntry:
    """A cached prediction mask of one sample by one checkpoint; ``model_stamp`` identifies the exact weights."""

    sample_id: str
    checkpoint_id: str
    model_stamp: str
    path: Path
    time: float


class RunStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A training run of this workspace; its files live in ``folder`` (``runs/<id>/``)."""

    id: str
    config: dict[str, Any]
    status: RunStatus
    folder: Path
    created: float
    name: str = ""
    best_metric: float | None = None
    best_metric_name: str = ""
    message: str = ""
    started: float | None = None
    finished: float | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started
