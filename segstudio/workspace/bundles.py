"""Run bundles: a training of the app's, packed to run elsewhere with ``torchrun`` — on this workstation with all
its GPUs, or on several nodes of a cluster — and brought back with Train → Import Run Folder… (``run_import``).

A bundle is a folder of plain files a person can read and edit before submitting it::

    bundle.json          what this is (kind, name, segstudio version, processes and nodes it was written for)
    train_config.json    the training config, exactly as the Training panel would train it (--config takes it)
    dataset.json         the dataset as it was opened: path, format, classes, the workspace of the corrections
    launch_torchrun.sh   POSIX sh: torchrun -m segstudio train "$DATASET" --config train_config.json --out "$OUT"
    segstudio.sbatch     a SLURM template: one torchrun per node, the rendezvous on the job's first node
    README.txt           how to run it, and how to bring the run back

The scripts read their settings from the environment (``DATASET``, ``OUT``, ``NPROC_PER_NODE``, ``NNODES``,
``RDZV_ENDPOINT`` …) with the exported values as defaults, so the same bundle runs on one machine or many without
editing. Nothing here imports torch: the bundle is written from the config's plain dict (``TrainConfig.to_dict``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segstudio import __version__
from segstudio.core.atomic import atomic_write_text, fsync_dir, temp_path_for
from segstudio.core.errors import SegstudioError, io_error
from segstudio.workspace.bundle_scripts import LAUNCH_TEMPLATE, README_TEMPLATE, SBATCH_TEMPLATE, Template
from segstudio.workspace.sweep_records import RUN_MARKERS

__all__ = ["BUNDLE_FILE", "BUNDLE_KIND", "CONFIG_NAME", "DATASET_NAME", "DEFAULT_OUT", "LAUNCH_NAME", "README_NAME",
           "SBATCH_NAME", "Bundle", "DatasetRef", "LaunchSpec", "check_bundle_folder", "is_bundle_folder",
           "dataset_json", "read_bundle", "torchrun_command", "write_bundle"]

BUNDLE_FILE = "bundle.json"
BUNDLE_KIND = "segstudio-run-bundle"
CONFIG_NAME = "train_config.json"
DATASET_NAME = "dataset.json"
LAUNCH_NAME = "launch_torchrun.sh"
SBATCH_NAME = "segstudio.sbatch"
README_NAME = "README.txt"
#: the run folder the scripts write when ``OUT`` is not set, inside the bundle
DEFAULT_OUT = "run"
#: SLURM's ``--time``: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS
_TIME = re.compile(r"\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+(:\d{2}){0,2}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_PROCESSES, MAX_NODES = 1024, 10_000


@dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """How the bundle is launched: ``nproc_per_node`` training processes (one per GPU) on each of ``nnodes``
    machines; ``gpus_per_node``, ``cpus_per_node`` and ``time_limit`` are what the SLURM template asks for
    (``gpus_per_node`` 0: a CPU cluster, no GPUs asked)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    gpus_per_node: int = 1
    cpus_per_node: int = 8
    time_limit: str = "04:00:00"
    rdzv_port: int = 29500

    def check(self) -> None:
        problems = [
            (1 <= self.nproc_per_node <= MAX_PROCESSES, f"processes per node must be 1..{MAX_PROCESSES}"),
            (1 <= self.nnodes <= MAX_NODES, f"nodes must be 1..{MAX_NODES}"),
            (0 <= self.gpus_per_node <= MAX_PROCESSES, f"GPUs per node must be 0..{MAX_PROCESSES}"),
            (1 <= self.cpus_per_node <= 65536, "CPUs per node must be at least 1"),
            (_TIME.fullmatch(self.time_limit.strip()) is not None,
             f"the time limit {self.time_limit!r} is not one SLURM reads (HH:MM:SS, D-HH:MM:SS or minutes)"),
            (1024 <= self.rdzv_port <= 65535, "the rendezvous port must be 1024..65535"),
        ]
        for ok, what in problems:
            if not ok:
                raise SegstudioError(f"Cannot write the run bundle: {what}.", fix="Change it in the dialog.")


@dataclass(frozen=True, kw_only=True)
class DatasetRef:
    """The dataset as the app opened it. ``workspace``: the workspace whose corrections train too (the Training
    panel's "Train on my corrections too"), None to train on the dataset's GT only."""

    path: Path
    format: str = ""
    format_options: Mapping[str, Any] = field(default_factory=dict)
    samples: int | None = None
    classes: tuple[str, ...] = ()
    workspace: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Bundle:
    folder: Path
    name: str
    launch: LaunchSpec
    dataset: DatasetRef

    @property
    def launch_script(self) -> Path:
        return self.folder / LAUNCH_NAME

    @property
    def sbatch(self) -> Path:
        return self.folder / SBATCH_NAME

    @property
    def run_folder(self) -> Path:
        """Where the run lands when ``OUT`` is not set."""
        return self.folder / DEFAULT_OUT


def is_bundle_folder(folder: str | Path) -> bool:
    return (Path(folder) / BUNDLE_FILE).is_file()


def read_bundle(folder: str | Path) -> dict[str, Any] | None:
    """A bundle's ``bundle.json`` (None when the folder holds none, or not one of ours)."""
    try:
        doc = json.loads((Path(folder) / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == BUNDLE_KIND else None


def _free_sibling(p: Path) -> Path:
    for k in range(2, 10_000):
        cand = p.with_name(f"{p.name}-{k}")
        if not cand.exists():
            return cand
    return p.with_name(f"{p.name}-{os.getpid()}")


def check_bundle_folder(folder: str | Path) -> Path:
    """``folder`` as a bundle's destination: new, or an empty folder. A bundle, a run, a file or a folder holding
    other files is refused with the fix (a free name beside it)."""
    p = Path(folder).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise SegstudioError("The bundle's folder is a file.", path=p,
                             fix=f"Choose a new folder, e.g. {_free_sibling(p)}.")
    if not p.is_dir():
        return p
    if is_bundle_folder(p):
        raise SegstudioError("This folder holds a run bundle already; segstudio never writes over one.", path=p,
                             fix=f"Export into a new folder, e.g. {_free_sibling(p)}; to train that bundle again, run "
                                 f"its {LAUNCH_NAME} with OUT set to a new run folder.")
    if any((p / m).exists() for m in RUN_MARKERS):
        raise SegstudioError("This folder holds a training run; a bundle beside it would mix their files.", path=p,
                             fix=f"Export into a new folder, e.g. {_free_sibling(p)}; to bring the run in, use "
                                 "Train → Import Run Folder….")
    try:
        others = sorted(c.name for c in p.iterdir())
    except OSError as e:
        raise io_error(e, p, action="read") from e
    if others:
        raise SegstudioError(f"This folder is not empty ({len(others)} item(s), e.g. {others[0]!r}): the bundle's "
                             "files would mix with them.", path=p,
                             fix=f"Choose a new or empty folder, e.g. {p / 'segstudio-bundle'}.")
    return p


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _slug(name: str) -> str:
    return _UNSAFE.sub("-", name).strip(".-") or "run"


def _values(bundle: Bundle, *, created: str) -> dict[str, str]:
    spec, ds = bundle.launch, bundle.dataset
    return {"name": bundle.name, "slug": _slug(bundle.name), "version": __version__, "created": created,
            "dataset": str(ds.path), "q_dataset": _q(ds.path), "q_format": _q(ds.format),
            "format": ds.format or "detected", "q_workspace": _q(ds.workspace or ""),
            "workspace": str(ds.workspace) if ds.workspace else "none: the dataset's GT only",
            "nproc": str(spec.nproc_per_node), "nnodes": str(spec.nnodes), "gpus": str(spec.gpus_per_node),
            "cpus": str(spec.cpus_per_node), "time": spec.time_limit.strip(), "port": str(spec.rdzv_port),
            "launch": LAUNCH_NAME, "sbatch": SBATCH_NAME, "config": CONFIG_NAME, "dataset_file": DATASET_NAME,
            "out": DEFAULT_OUT, "folder": str(bundle.folder)}


def _gpu_line(spec: LaunchSpec) -> str:
    if spec.gpus_per_node > 0:
        return f"#SBATCH --gpus-per-node={spec.gpus_per_node}"
    return "# CPU training: no GPUs asked (add #SBATCH --gpus-per-node=N for GPUs)"


def _texts(bundle: Bundle, config: Mapping[str, Any], *, created: str) -> dict[str, str]:
    vals = _values(bundle, created=created)
    vals["gpu_line"] = _gpu_line(bundle.launch)
    vals["corrections_line"] = textwrap.fill(
        f"The corrections of the workspace {bundle.dataset.workspace} train too; it is only read (WORKSPACE "
        "points elsewhere, WORKSPACE= leaves them out)." if bundle.dataset.workspace else
        "The dataset's GT trains: the corrections were left out when exporting (WORKSPACE=/path/to/workspace adds "
        "a workspace's).", width=114, subsequent_indent="  ")
    ds = bundle.dataset
    dataset_doc = {
        "version": 1, "path": str(ds.path), "format": ds.format, "format_options": dict(ds.format_options),
        "samples": ds.samples, "classes": list(ds.classes),
        "workspace": str(ds.workspace) if ds.workspace else None, "corrections": ds.workspace is not None,
        "note": ("The machines that train read the dataset at this path: it must be valid there (a shared file "
                 "system), or the scripts take it from the environment variable DATASET, with this path as its "
                 "default. Likewise WORKSPACE for the workspace whose corrections train too (empty: none)."),
    }
    spec = bundle.launch
    manifest = {"kind": BUNDLE_KIND, "version": 1, "name": bundle.name, "created": created,
                "segstudio_version": __version__, "nproc_per_node": spec.nproc_per_node, "nnodes": spec.nnodes,
                "gpus_per_node": spec.gpus_per_node, "cpus_per_node": spec.cpus_per_node,
                "time_limit": spec.time_limit.strip(), "rdzv_port": spec.rdzv_port, "out": DEFAULT_OUT}
    return {
        CONFIG_NAME: json.dumps(dict(config), indent=2) + "\n",
        DATASET_NAME: json.dumps(dataset_doc, indent=2, default=str) + "\n",
        LAUNCH_NAME: Template(LAUNCH_TEMPLATE).substitute(vals),
        SBATCH_NAME: Template(SBATCH_TEMPLATE).substitute(vals),
        README_NAME: Template(README_TEMPLATE).substitute(vals),
        BUNDLE_FILE: json.dumps(manifest, indent=2) + "\n",
    }


def write_bundle(folder: str | Path, *, config: Mapping[str, Any], dataset: DatasetRef, launch: LaunchSpec,
                 name: str = "") -> Bundle:
    """Write a run bundle into ``folder`` (new or empty; see :func:`check_bundle_folder`) from ``config`` (a
    ``TrainConfig.to_dict()``). The files are written into a temp folder beside it that is renamed into place, so
    a full disk or a crash leaves no half bundle. ``SegstudioError`` naming the folder and the fix otherwise."""
    target = check_bundle_folder(folder)
    launch.check()
    # the scripts run from anywhere: the dataset and the workspace as absolute paths
    dataset = replace(dataset, path=Path(dataset.path).expanduser().absolute(),
                      workspace=Path(dataset.workspace).expanduser().absolute() if dataset.workspace else None)
    if not isinstance(config, Mapping) or not config:
        raise SegstudioError("Cannot write the run bundle: the training config is empty.",
                             fix="Choose a recipe or settings in the Training panel first.")
    bundle = Bundle(folder=target, name=name.strip() or target.name, launch=launch, dataset=dataset)
    texts = _texts(bundle, config, created=time.strftime("%Y-%m-%d %H:%M"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise io_error(e, target.parent, action="create the folder of") from e
    tmp = temp_path_for(target)
    try:
        for file_name, text in texts.items():
            atomic_write_text(tmp / file_name, text)
        os.chmod(tmp / LAUNCH_NAME, 0o755)
        if target.is_dir():
            target.rmdir()  # checked empty above; a folder that filled since then makes this fail, untouched
        os.rename(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise io_error(e, target, action="write the run bundle into") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    return bundle


def dataset_json(folder: str | Path) -> dict[str, Any]:
    """A bundle's ``dataset.json`` ({} when missing or unreadable)."""
    try:
        doc = json.loads((Path(folder) / DATASET_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def torchrun_command(*, nproc_per_node: int, nnodes: int, rdzv_endpoint: str = "", dataset: str = "DATASET",
                     out: str = "OUT", extra: Sequence[str] = ()) -> list[str]:
    """The torchrun command the launch script runs for these settings (shown in the export dialog)."""
    cmd = ["torchrun", f"--nproc-per-node={nproc_per_node}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint or 'HEAD:29500'}",
                "--rdzv-id=JOB"]
    return [*cmd, "-m", "segstudio", "train", dataset, "--config", CONFIG_NAME, "--out", out, *extra]
