"""The neighbour prefetcher: background loads into a small thread-safe LRU keyed by sample id."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import DatasetError
from segstudio.core.types import ClassInfo, ClassSchema
from segstudio.datasets.base import Dataset, Sample
from segstudio.datasets.registry import open_dataset
from segstudio.workspace.prefetch import Prefetcher

SCHEMA = ClassSchema(classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "fg", (255, 0, 0))))


class Loader:
    """Image/GT readers that record calls and can be held at a gate (to test work still in flight)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.fail: set[str] = set()
        self._lock = threading.Lock()

    def image(self, _ds: Dataset, s: Sample) -> np.ndarray:
        with self._lock:
            self.calls.append(s.id)
        self.started.set()
        assert self.gate.wait(10)
        if s.id in self.fail:
            raise DatasetError("Image cannot be decoded", path=s.image)
        return np.full((4, 4), int(s.id[1:]), np.uint16)

    def gt(self, _ds: Dataset, s: Sample) -> np.ndarray:
        return np.full((4, 4), int(s.id[1:]) % 2, np.uint8)


def make(n: int = 8) -> tuple[Dataset, Loader]:
    loader = Loader()
    samples = [Sample(id=f"s{i}", image=Path(f"/nowhere/s{i}.png"), gt=i) for i in range(n)]
    ds = Dataset(root=Path("/nowhere"), format_name="test", schema=SCHEMA, samples=samples,
                 read_image=loader.image, read_gt=loader.gt)
    return ds, loader


@pytest.fixture
def pf_factory():
    made: list[Prefetcher] = []

    def build(ds: Dataset, **kw) -> Prefetcher:
        p = Prefetcher(ds, **kw)
        made.append(p)
        return p

    yield build
    for p in made:
        p.shutdown()


def test_request_then_get_returns_the_loaded_pair(pf_factory) -> None:
    ds, loader = make()
    pf = pf_factory(ds)
    assert pf.get("s3") is None
    pf.request(["s3", "s5", None, "unknown"])
    assert pf.wait_idle()
    image, gt = pf.get("s3")
    assert image.dtype == np.uint16 and int(image[0, 0]) == 3 and int(gt[0, 0]) == 1
    assert int(pf.get("s5")[0][0, 0]) == 5
    pf.request(["s3", "s5"])  # already cached: no second decode
    assert pf.wait_idle()
    assert sorted(loader.calls) == ["s3", "s5"]


def test_lru_evicts_the_least_recently_used(pf_factory) -> None:
    ds, loader = make()
    pf = pf_factory(ds, capacity=2)
    for sid in ("s0", "s1"):
        pf.request([sid])
        assert pf.wait_idle()
    assert pf.get("s0") is not None  # s0 is now the most recently used
    pf.request(["s2"])
    assert pf.wait_idle()
    assert pf.cached_ids() == ["s0", "s2"] and pf.get("s1") is None and len(pf) == 2
    with pytest.raises(ValueError):
        Prefetcher(ds, capacity=0)


def test_extra_loader_makes_triples(pf_factory) -> None:
    ds, _ = make()
    # the extra loader sees the decoded image and GT (e.g. to draw overlays in advance)
    pf = pf_factory(ds, extra=lambda sid, image, gt, side: (f"prediction of {sid}", image.shape, gt is None))
    pf.request(["s4"])
    assert pf.wait_idle()
    entry = pf.get("s4")
    assert entry is not None and len(entry) == 3
    assert entry[2] == ("prediction of s4", entry[0].shape, entry[1] is None)


def test_side_loader_runs_beside_decoding_and_feeds_extra(pf_factory) -> None:
    ds, _ = make()
    pf = pf_factory(ds, side=lambda sid: f"side of {sid}", extra=lambda sid, image, gt, side: side)
    pf.request(["s1"])
    assert pf.wait_idle()
    assert pf.get("s1")[2] == "side of s1"
    failing = pf_factory(ds, side=lambda sid: 1 / 0, extra=lambda sid, image, gt, side: type(side).__name__)
    assert failing.take("s2")[2] == "ZeroDivisionError"  # the extra loader sees the error and decides


def test_a_failed_load_is_not_cached_and_is_logged(pf_factory, caplog) -> None:
    ds, loader = make()
    loader.fail.add("s2")
    pf = pf_factory(ds)
    caplog.set_level(logging.INFO, logger="segstudio.workspace.prefetch")
    pf.request(["s2", "s3"])
    assert pf.wait_idle()
    assert pf.get("s2") is None and pf.get("s3") is not None
    assert any("s2" in r.getMessage() and "cannot be decoded" in r.getMessage() for r in caplog.records)


def test_get_can_wait_for_a_load_in_flight(pf_factory) -> None:
    ds, loader = make()
    loader.gate.clear()
    pf = pf_factory(ds)
    pf.request(["s6"])
    assert loader.started.wait(5)
    assert pf.get("s6") is None and pf.in_flight() == 1
    threading.Timer(0.05, loader.gate.set).start()
    entry = pf.get("s6", wait_s=5.0)
    assert entry is not None and int(entry[0][0, 0]) == 6
    assert loader.calls == ["s6"]


def test_invalidate_drops_a_stale_entry_even_while_it_loads(pf_factory) -> None:
    ds, loader = make()
    pf = pf_factory(ds, workers=1)
    pf.request(["s1"])
    assert pf.wait_idle() and pf.get("s1") is not None
    pf.invalidate("s1")
    assert pf.get("s1") is None
    loader.gate.clear()
    loader.started.clear()
    pf.request(["s1"])
    assert loader.started.wait(5)
    pf.invalidate("s1")  # e.g. the GT was corrected while the old one was being read
    loader.gate.set()
    assert pf.wait_idle()
    assert pf.get("s1") is None
    pf.put("s1", ("image", "gt"))
    assert pf.get("s1") == ("image", "gt")
    pf.clear()
    assert len(pf) == 0


def test_newest_request_cancels_queued_loads(pf_factory) -> None:
    ds, loader = make()
    loader.gate.clear()
    pf = pf_factory(ds, workers=1)
    pf.request(["s0", "s1", "s2"])  # s0 runs, s1 and s2 wait in the queue
    assert loader.started.wait(5)
    pf.request(["s5", "s0"])  # the user moved on: s1 and s2 are no longer wanted
    loader.gate.set()
    assert pf.wait_idle()
    assert sorted(loader.calls) == ["s0", "s5"]
    assert pf.get("s0") is not None and pf.get("s5") is not None


def test_concurrent_use_from_several_threads(pf_factory) -> None:
    ds, loader = make(20)
    pf = pf_factory(ds, capacity=4, workers=3)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(40):
                sid = f"s{(i + offset) % 20}"
                pf.request([sid, f"s{(i + offset + 1) % 20}"])
                entry = pf.get(sid, wait_s=2.0)
                if entry is not None:
                    assert int(entry[0][0, 0]) == int(sid[1:])
                if i % 7 == 0:
                    pf.invalidate(sid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and all(not t.is_alive() for t in threads)
    assert pf.wait_idle()
    assert len(pf) <= 4
    for sid in pf.cached_ids():
        assert int(pf.get(sid)[0][0, 0]) == int(sid[1:])


def test_prefetch_of_the_bundled_sample(pf_factory, sample_dataset_path: Path) -> None:
    ds = open_dataset(sample_dataset_path)
    pf = pf_factory(ds)
    ids = [s.id for s in ds.samples[1:3]]
    pf.request(ids)
    assert pf.wait_idle()
    for sid in ids:
        image, gt = pf.get(sid)
        assert np.array_equal(image, ds.load_image(sid)) and np.array_equal(gt, ds.load_gt(sid))
    pf.shutdown()
    pf.request([ds.samples[4].id])  # ignored after shutdown
    assert pf.in_flight() == 0 and pf.get(ds.samples[4].id) is None
