"""The run's background writer: checkpoints and curves written off the training thread, in order, bounded, with
a failed write raised on the training thread and nothing the run had already saved lost."""

from __future__ import annotations

import errno
import threading

import pytest
import torch
from safetensors.torch import load_file

from segstudio.core.errors import DiskFullError
from segstudio.engine.checkpoint import WEIGHTS_FILE, load_checkpoint, snapshot_checkpoint
from segstudio.engine.events import CheckpointSaved, Finished
from segstudio.engine.models import build_model
from segstudio.engine.run_writer import BackgroundWriter
from segstudio.engine.task import resolve_task
from segstudio.engine.train import train

from .conftest import make_dataset, tiny_config


def test_jobs_run_in_order_on_another_thread_and_flush_waits_for_them():
    seen: list[tuple[int, str]] = []
    with BackgroundWriter(max_pending=3) as w:
        for i in range(6):
            w.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
        w.flush()
        assert [i for i, _ in seen] == list(range(6))
        assert all(name != threading.current_thread().name for _, name in seen)


def test_submit_blocks_while_the_queue_is_full():
    gate = threading.Event()
    with BackgroundWriter(max_pending=1) as w:
        w.submit(gate.wait)  # taken by the thread, blocks it
        w.submit(lambda: None)  # waits in the one slot
        third = threading.Thread(target=w.submit, args=(lambda: None,))
        third.start()
        third.join(0.3)
        assert third.is_alive()  # no slot: the training thread would wait here
        gate.set()
        third.join(5)
        assert not third.is_alive()
        w.flush()


def test_a_failed_job_is_raised_on_the_next_call_and_later_jobs_are_dropped():
    ran: list[int] = []

    def boom():
        raise OSError(errno.ENOSPC, "No space left on device")

    w = BackgroundWriter()
    try:
        w.submit(boom)
        w.submit(lambda: ran.append(1))
        with pytest.raises(OSError) as e:
            w.flush()
        assert e.value.errno == errno.ENOSPC
        assert ran == []
        w.flush()  # reported once
    finally:
        w.close()


def test_a_snapshot_does_not_see_later_training(tmp_path):
    ds = make_dataset(n=2)
    cfg = tiny_config()
    task = resolve_task(ds.schema, cfg.model.mode)
    model = build_model(cfg.model, out_channels=task.out_channels)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    commit = snapshot_checkpoint(tmp_path / "ck", model=model, config=cfg, task=task, schema=ds.schema)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the next epoch trains while the writer thread writes
    commit()
    written = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
    assert all(torch.equal(written[k], before[k]) for k in written)
    load_checkpoint(tmp_path / "ck")


def test_every_checkpoint_and_plot_is_on_disk_when_the_run_ends(tmp_path):
    events = list(train(tiny_config("epochs=3"), make_dataset(n=6), run_dir=tmp_path))
    assert isinstance(events[-1], Finished)
    for ev in events:
        if isinstance(ev, CheckpointSaved):
            load_checkpoint(ev.path)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert len((tmp_path / "curves.csv").read_text().splitlines()) == 4
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_full_disk_in_a_background_write_stops_the_run_and_keeps_the_saved_checkpoint(tmp_path, monkeypatch):
    from segstudio.engine import checkpoint as ck

    real_save_file = ck.save_file
    calls = {"n": 0}

    def fills_up(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # epoch 1's best, its last (weights + state) fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save_file(*a, **k)

    monkeypatch.setattr(ck, "save_file", fills_up)
    events = []
    with pytest.raises(DiskFullError) as e:
        for ev in train(tiny_config("epochs=4"), make_dataset(n=6), run_dir=tmp_path):
            events.append(ev)
    assert "checkpoint" in str(e.value)
    assert not any(isinstance(ev, Finished) for ev in events)
    last = load_checkpoint(tmp_path / "checkpoints" / "last")
    assert last.path.exists()
