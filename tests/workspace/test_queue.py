"""The "next to review" queue: each strategy's order, who leaves the queue, and the metrics entries it reads."""

from __future__ import annotations

import math

import pytest

from segstudio.core.errors import UnknownKeyError
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.queue import MODEL_METRICS_KEY, next_in_queue, review_queue
from segstudio.workspace.records import MetricsEntry


def _e(sid: str, *, dice=None, unc=None, change=None) -> MetricsEntry:
    return MetricsEntry(sample_id=sid, key=MODEL_METRICS_KEY, data={"uncertainty": unc, "change": change},
                        mean_dice=dice, suspicion=unc)


ENTRIES = [
    _e("a", dice=0.95, unc=0.10, change=0.02),
    _e("b", dice=0.60, unc=0.05, change=0.30),
    _e("c", dice=0.80, unc=0.40, change=None),
    _e("d", dice=None, unc=0.01, change=0.10),  # unlabelled: no reference to score against
    _e("e", dice=None, unc=0.20, change=None),  # unlabelled
]
LABELLED = {"a", "b", "c"}


def ids(queue) -> list[str]:
    return [q.sample_id for q in queue]


def test_each_strategy_puts_its_worst_first() -> None:
    kw = dict(statuses={}, labelled=LABELLED)
    assert ids(review_queue("uncertainty", ENTRIES, **kw)) == ["c", "e", "a", "b", "d"]
    assert ids(review_queue("disagreement", ENTRIES, **kw)) == ["b", "c", "a"]  # unscored samples are not in it
    assert ids(review_queue("changed", ENTRIES, **kw)) == ["b", "d", "a"]
    assert ids(review_queue("pseudo-labels", ENTRIES, **kw)) == ["d", "e"]  # unlabelled, most confident first
    q = review_queue("disagreement", ENTRIES, **kw)
    assert q[0].reason == "Dice with GT 0.600" and math.isclose(q[0].score, 0.4)


def test_decided_samples_leave_the_queue_but_flagged_unlabelled_stay_pseudo_label_candidates() -> None:
    statuses = {"c": ReviewStatus.ACCEPTED, "b": ReviewStatus.FLAGGED, "d": ReviewStatus.FLAGGED,
                "e": ReviewStatus.ACCEPTED}
    assert ids(review_queue("uncertainty", ENTRIES, statuses=statuses, labelled=LABELLED)) == ["a"]
    assert ids(review_queue("pseudo-labels", ENTRIES, statuses=statuses, labelled=LABELLED)) == ["d"]
    # once a pseudo-label is accepted as a correction the sample is labelled and leaves
    assert ids(review_queue("pseudo-labels", ENTRIES, statuses={}, labelled=LABELLED | {"d"})) == ["e"]


def test_ties_follow_the_dataset_order_and_next_skips_the_current_sample() -> None:
    tied = [_e("x", unc=0.5), _e("y", unc=0.5), _e("z", unc=0.5)]
    q = review_queue("uncertainty", tied, statuses={}, labelled=set(), order=["z", "x", "y"])
    assert ids(q) == ["z", "x", "y"]
    assert next_in_queue(q, "z").sample_id == "x"
    assert next_in_queue(q, None).sample_id == "z"
    assert next_in_queue([], "z") is None


def test_unknown_strategy_names_the_valid_ones() -> None:
    with pytest.raises(UnknownKeyError, match="uncertainty"):
        review_queue("random", ENTRIES, statuses={}, labelled=set())


def test_metrics_entries_of_a_key_round_trip(tmp_path) -> None:
    ws = Workspace(tmp_path / "ws", dataset_root=tmp_path)
    try:
        ws.metrics.put("s1", key=MODEL_METRICS_KEY, data={"change": 0.25, "uncertainty": 0.1}, mean_dice=0.9,
                       suspicion=0.1)
        ws.metrics.put("s2", key="other", data={}, mean_dice=0.1)
        got = ws.metrics.entries(key=MODEL_METRICS_KEY)
        assert [e.sample_id for e in got] == ["s1"]
        assert got[0].data["change"] == 0.25 and got[0].suspicion == pytest.approx(0.1)
        assert ids(review_queue("changed", got, statuses={}, labelled={"s1"})) == ["s1"]
        light = ws.metrics.entries(key=MODEL_METRICS_KEY, data_fields=("change", "missing"))
        assert light[0].data == {"change": 0.25, "missing": None} and light[0].mean_dice == pytest.approx(0.9)
    finally:
        ws.close()


def test_a_predictions_folder_orders_by_disagreement_only() -> None:
    from segstudio.workspace.queue import (
        SOURCE_FOLDER,
        SOURCE_MODEL,
        STRATEGIES,
        default_strategy,
        unavailable_reason,
    )

    assert all(unavailable_reason(k, source=SOURCE_MODEL) is None for k in STRATEGIES)
    assert unavailable_reason("disagreement", source=SOURCE_FOLDER) is None
    assert "two models" in (unavailable_reason("changed", source=SOURCE_FOLDER) or "")
    assert "uncertainty" in (unavailable_reason("uncertainty", source=SOURCE_FOLDER) or "")
    assert unavailable_reason("pseudo-labels", source=SOURCE_FOLDER) is not None
    assert default_strategy(SOURCE_MODEL) == "uncertainty"
    assert default_strategy(SOURCE_FOLDER) == "disagreement"
