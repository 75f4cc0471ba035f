"""Run folders (DESIGN §6): an existing run is never replaced unless resumed, and the folder is checked before
training starts.

The rule lives here, under ``engine.train.train``, so the command line and the app share it: a folder that
holds a run (its ``train_config.json``, ``run.json``, ``curves.csv`` or ``checkpoints/``) is refused unless
resuming, with a free name suggested; a path that is a file, or a folder that cannot be written, is our error
naming it. The app's workspace creates each run's folder with only its own ``config.json`` in it, which is no
run yet, so training into it is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from segstudio.core.atomic import (
    FileExistsSegstudioError,
    atomic_create_bytes,
    sweep_stale_temps,
    temp_path_for,
)
from segstudio.core.errors import SegstudioError, io_error

CONFIG_NAME = "train_config.json"
#: what makes a folder hold a run: any of these written by a trainer
RUN_MARKERS = (CONFIG_NAME, "run.json", "curves.csv", "checkpoints")


class RunFolderError(SegstudioError):
    """The run folder cannot be used (a file is in the way, or there is nothing to resume)."""


class RunExistsError(RunFolderError):
    """The run folder holds a run already; training into it without resuming would replace its model."""


def holds_run(folder: str | Path) -> bool:
    p = Path(folder)
    return p.is_dir() and any((p / m).exists() for m in RUN_MARKERS)


def free_run_dir(folder: str | Path) -> Path:
    """A sibling of ``folder`` that does not exist yet: ``NAME-2``, ``NAME-3``, ... (a ``-N`` already there is
    counted on from)."""
    p = Path(folder)
    m = re.fullmatch(r"(.*?)-(\d{1,6})", p.name)
    stem, n = (m[1], int(m[2]) + 1) if m and m[1] else (p.name, 2)
    for k in range(n, n + 10_000):
        cand = p.with_name(f"{stem}-{k}")
        if not cand.exists():
            return cand
    return p.with_name(f"{stem}-{os.getpid()}")


def check_run_dir(run_dir: Path, *, resume: bool) -> Path:
    """The run folder, checked and created: refused when it is a file, holds a run (unless ``resume``), has
    nothing to resume (with ``resume``) or cannot be written. On resume, what a killed writer left (temp files,
    a checkpoint moved aside mid-save) is tidied first."""
    p = Path(run_dir).expanduser()
    if p.exists() and not p.is_dir():
        raise RunFolderError(
            "The run folder path is a file, not a folder.",
            path=p,
            fix=f"Give --out a folder name that is not taken, e.g. {free_run_dir(p)}.",
        )
    if resume:
        last = p / "checkpoints" / "last"
        if p.is_dir():
            _tidy(p)
        if not (last / "config.json").is_file():
            raise RunFolderError(
                "There is no run to resume here (no checkpoints/last).",
                path=p,
                fix="Train without --resume into a new folder, or point --out to the run folder to continue.",
            )
    elif holds_run(p):
        raise RunExistsError(
            "This folder holds a trained run already; training into it would replace its checkpoints, config "
            "and curves.",
            path=p,
            fix=f"Continue that run with --resume, or train into a new folder, e.g. --out {free_run_dir(p)}.",
        )
    _check_writable(p)
    return p


def claim_run_dir(run_dir: Path, *, config: object, resume: bool) -> None:
    """Write the run's ``train_config.json`` create-only (a new run): a second trainer that checked the same
    empty folder a moment earlier loses here instead of mixing its files into the first one's run."""
    if resume:
        return
    to_json = getattr(config, "to_json", None)
    text = to_json() if callable(to_json) else "{}"
    try:
        atomic_create_bytes(run_dir / CONFIG_NAME, str(text).encode("utf-8"))
    except FileExistsSegstudioError:
        raise RunExistsError(
            "Another training run started in this folder a moment ago.",
            path=run_dir,
            fix=f"Train into a new folder, e.g. --out {free_run_dir(run_dir)}.",
        ) from None


def _check_writable(p: Path) -> None:
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise io_error(e, p, action="create the run folder") from e
    probe = temp_path_for(p / "write-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        raise io_error(e, p, action="write into the run folder") from e
    os.close(fd)
    try:
        probe.unlink()
    except OSError:
        pass


def _tidy(p: Path) -> None:
    """Before resuming: temp files of killed writers removed, checkpoints moved aside mid-save put back."""
    from segstudio.engine.checkpoint import recover_checkpoint

    sweep_stale_temps(p)
    ckpts = p / "checkpoints"
    try:
        names = {c.name for c in ckpts.iterdir() if c.is_dir()} if ckpts.is_dir() else set()
    except OSError:
        names = set()
    for name in names:
        if name.startswith(".") and name.endswith(".old"):
            name = name[1:-4]
        if not name.startswith("."):
            recover_checkpoint(ckpts / name)
