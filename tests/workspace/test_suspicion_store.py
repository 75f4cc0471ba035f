"""The label-suspicion ranking kept in a workspace (the store) and the review queue's "Most suspicious label"
strategy that reads it: highest score first, undecided samples only, the strongest reason as the item's reason,
and the labels saved again since the ranking named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.workspace import ReviewStatus, Workspace
from segstudio.workspace.queue import (
    MODEL_METRICS_KEY,
    SOURCE_FOLDER,
    STRATEGIES,
    metrics_key_for,
    review_queue,
    unavailable_reason,
    workspace_queue,
)
from segstudio.workspace.records import MetricsEntry
from segstudio.workspace.suspicion_store import (
    SUSPICION_KEY,
    changed_since_ranking,
    label_stamps,
    ranking_info,
    store_ranking,
    stored_ranking,
    suspicion_scores,
)

IDS = ["a.png", "b.png", "c.png", "d.png"]


def _reason(text: str, cls: str = "left lung", check: str = "side") -> dict:
    return {"check": check, "class": cls, "value": 1.0, "text": text, "box": [1, 5, 2, 6]}


RANKING = [  # as SampleSuspicion.to_dict() writes it, most suspicious first
    {"sample_id": "c.png", "score": 0.97, "per_class": {"left lung": 0.97, "right lung": 0.1},
     "reasons": [_reason("left lung lies on the other side"), _reason("left lung is larger", check="area")],
     "error": None},
    {"sample_id": "a.png", "score": 0.6, "per_class": {"left lung": 0.0, "right lung": 0.6},
     "reasons": [_reason("right lung has 2 separate parts", "right lung", "parts")], "error": None},
    {"sample_id": "b.png", "score": 0.0, "per_class": {}, "reasons": [], "error": None},
    {"sample_id": "d.png", "score": 0.0, "per_class": {}, "reasons": [], "error": "cannot read the mask"},
]


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    schema = ClassSchema((ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "left lung", (255, 0, 0)),
                          ClassInfo(2, "right lung", (0, 255, 0))))
    samples = [Sample(id=i, image=tmp_path / i, gt=i) for i in IDS]
    return Dataset(root=tmp_path, format_name="test", schema=schema, samples=samples,
                   read_image=lambda ds, s: np.zeros((8, 8), np.uint8),
                   read_gt=lambda ds, s: np.zeros((8, 8), np.uint8))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "ws", dataset_root=tmp_path)
    yield w  # type: ignore[misc]
    w.close()


def test_the_ranking_is_stored_per_sample_with_its_reasons_and_the_labels_it_judged(ws: Workspace) -> None:
    ws.save_mask("a.png", np.ones((8, 8), np.uint8))  # a correction: the ranking judged v1 of a.png
    stamps = label_stamps(ws, IDS)
    assert stamps == {"a.png": "v1", "b.png": "v0", "c.png": "v0", "d.png": "v0"}
    assert ranking_info(ws) is None
    assert store_ranking(ws, RANKING, stamps=stamps, with_model=True) == 4
    info = ranking_info(ws)
    assert info is not None and info["with_model"] is True and info["samples"] == 4
    scores = suspicion_scores(ws)
    assert scores["c.png"] == pytest.approx(0.97) and scores["b.png"] == 0.0
    assert scores["d.png"] is None  # an unreadable label has no score
    c = stored_ranking(ws, "c.png")
    assert c is not None and c.stamp == "v0"
    assert [r["check"] for r in c.data["reasons"]] == ["side", "area"]
    assert c.data["top_reason"] == "left lung lies on the other side"
    assert c.data["per_class"]["left lung"] == pytest.approx(0.97)
    assert stored_ranking(ws, "a.png").stamp == "v1"
    # a new ranking replaces the old one whole
    store_ranking(ws, RANKING[:1], stamps=stamps)
    assert set(suspicion_scores(ws)) == {"c.png"}


def test_labels_saved_again_after_the_ranking_are_named(ws: Workspace, dataset: Dataset) -> None:
    assert changed_since_ranking(ws, dataset) == []  # never ranked
    store_ranking(ws, RANKING, stamps=label_stamps(ws, IDS))
    assert changed_since_ranking(ws, dataset) == []
    ws.save_mask("c.png", np.ones((8, 8), np.uint8))
    ws.save_mask("a.png", np.ones((8, 8), np.uint8))
    assert changed_since_ranking(ws, dataset) == ["a.png", "c.png"]  # dataset order


def test_the_suspicion_queue_puts_the_most_suspicious_undecided_label_first(ws: Workspace, dataset: Dataset) -> None:
    assert STRATEGIES["suspicion"] == "Most suspicious label"
    assert metrics_key_for("suspicion") == SUSPICION_KEY
    assert metrics_key_for("uncertainty") == MODEL_METRICS_KEY
    assert metrics_key_for("disagreement", source_key="folder-key") == "folder-key"
    assert unavailable_reason("suspicion", source=SOURCE_FOLDER) is None  # model-free: works with any source
    store_ranking(ws, RANKING, stamps=label_stamps(ws, IDS))
    # the model's figures are not what this strategy reads
    ws.metrics.put("b.png", key=MODEL_METRICS_KEY, data={"uncertainty": 0.9}, suspicion=0.9)
    q = workspace_queue(ws, dataset, "suspicion")
    assert [i.sample_id for i in q] == ["c.png", "a.png", "b.png"]  # the unreadable label is not in it
    assert q[0].score == pytest.approx(0.97)
    assert q[0].reason == "suspicion 0.97: left lung lies on the other side"
    assert q[2].reason == "suspicion 0.00: no reason found"
    # decided samples leave it, whatever the decision
    ws.reviews.set("c.png", ReviewStatus.FLAGGED)
    ws.reviews.set("b.png", ReviewStatus.REJECTED)
    assert [i.sample_id for i in workspace_queue(ws, dataset, "suspicion")] == ["a.png"]


def test_review_queue_reads_the_score_and_the_top_reason_of_plain_entries() -> None:
    entries = [MetricsEntry(sample_id="x", key=SUSPICION_KEY, data={"top_reason": "speck"}, suspicion=0.3),
               MetricsEntry(sample_id="y", key=SUSPICION_KEY, data={"top_reason": "swap"}, suspicion=0.9),
               MetricsEntry(sample_id="z", key=SUSPICION_KEY, data={}, suspicion=None)]
    q = review_queue("suspicion", entries, statuses={"x": ReviewStatus.UNREVIEWED}, labelled=set())
    assert [(i.sample_id, i.reason) for i in q] == [("y", "suspicion 0.90: swap"), ("x", "suspicion 0.30: speck")]
