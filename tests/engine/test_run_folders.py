"""Issue 13, case 3: a trained model is never overwritten. ``train`` into a folder that holds a run is refused
unless resuming (engine rule, shared by the command line and the app); a file or an unwritable folder as
``--out`` is our error naming it."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from segstudio.core.errors import FileIOError
from segstudio.engine.rundir import RunExistsError, RunFolderError, free_run_dir, holds_run
from segstudio.engine.train import train

from .conftest import make_dataset, tiny_config


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    list(train(tiny_config(), make_dataset(n=4), run_dir=run))
    assert holds_run(run)
    return run


def test_training_into_a_run_folder_is_refused_and_nothing_changes(trained):
    before = _digest(trained)
    with pytest.raises(RunExistsError) as e:
        train(tiny_config("epochs=2"), make_dataset(n=4), run_dir=trained)
    msg = str(e.value)
    assert str(trained) in msg and "--resume" in msg and str(trained.with_name("run-2")) in msg
    assert _digest(trained) == before  # best checkpoint, config and curves untouched


def test_the_command_line_refuses_too_with_exit_2(trained, monkeypatch, capsys):
    from segstudio import cli

    before = _digest(trained)
    monkeypatch.setattr("segstudio.datasets.registry.open_dataset", lambda path, format=None: make_dataset(n=4))
    rc = cli.main(["train", "ds", "--set", "model.encoder=resnet18", "--set", "image_size=32", "--out", str(trained)])
    err = capsys.readouterr().err
    assert rc == 2 and "holds a trained run" in err and "--resume" in err and "Traceback" not in err
    assert _digest(trained) == before


def test_free_name_suggestion_counts_on(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    assert free_run_dir(tmp_path / "run") == tmp_path / "run-3"
    assert free_run_dir(tmp_path / "exp-7") == tmp_path / "exp-8"


def test_an_empty_folder_or_the_apps_run_folder_is_accepted(tmp_path):
    """The app's workspace creates each run's folder first, holding only its own config.json (read-only check
    of that path here: RunStore.create, then train into run.folder as gui/training.py does)."""
    from segstudio.workspace.workspace import Workspace

    empty = tmp_path / "empty"
    empty.mkdir()
    assert not holds_run(empty)
    ws = Workspace(tmp_path / "ws", dataset_root=tmp_path)
    try:
        run = ws.runs.create(tiny_config().to_dict(), name="t")
        assert (run.folder / "config.json").is_file() and not holds_run(run.folder)
        events = list(train(tiny_config(), make_dataset(n=4), run_dir=run.folder))
        assert (run.folder / "checkpoints" / "last" / "model.safetensors").is_file()
        assert events[-1].last_checkpoint is not None
    finally:
        ws.close()


def test_out_that_is_a_file_is_our_error(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(RunFolderError) as e:
        train(tiny_config(), make_dataset(n=4), run_dir=f)
    assert str(f) in str(e.value) and "Fix:" in str(e.value)
    assert f.read_text() == "mine"


def test_out_below_a_file_is_our_error(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(FileIOError) as e:
        train(tiny_config(), make_dataset(n=4), run_dir=f / "run")
    assert "notes.txt" in str(e.value) and "Fix:" in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_our_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(FileIOError) as e:
            train(tiny_config(), make_dataset(n=4), run_dir=ro)
        assert str(ro) in str(e.value) and "writable" in str(e.value)
    finally:
        ro.chmod(0o700)


def test_read_only_out_is_our_error_simulated(tmp_path, monkeypatch):
    """The same check where the tests run as root: the write probe is refused as a read-only folder would."""
    real_open = os.open

    def refusing(path, flags, *a, **k):
        if "write-probe" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(FileIOError) as e:
        train(tiny_config(), make_dataset(n=4), run_dir=tmp_path / "ro")
    assert str(tmp_path / "ro") in str(e.value) and "writable" in str(e.value)


def test_resume_without_a_run_is_our_error(tmp_path):
    with pytest.raises(RunFolderError, match="no run to resume"):
        train(tiny_config(), make_dataset(n=4), run_dir=tmp_path / "nothing", resume=True)


def test_resume_sweeps_what_a_killed_writer_left(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    dead = 2**22 + 12345  # beyond pid_max on this machine: no live process has it
    stale_file = run / f".curves.csv.{dead}.0badc0de.tmp"
    stale_file.write_text("torn")
    stale_dir = run / "checkpoints" / f".last.{dead}.0badc0de.tmp"
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"torn")
    # a save killed between moving the last checkpoint aside and renaming the new one in
    (run / "checkpoints" / "last").rename(run / "checkpoints" / ".last.old")
    events = list(train(tiny_config("epochs=2"), make_dataset(n=4), run_dir=run, resume=True))
    assert events[-1].epochs_completed == 2
    assert not stale_file.exists() and not stale_dir.exists()
    assert not (run / "checkpoints" / ".last.old").exists()
    assert not list(run.rglob("*.tmp"))

