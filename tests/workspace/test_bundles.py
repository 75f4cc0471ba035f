"""Run bundles and run imports (ring 1): the bundle's files and values, its scripts checked by the shells and their
torchrun command line by torchrun's own parser, SLURM's template driven with a fake srun and scontrol, destination
folders refused with a fix; a finished run folder (or a bundle's run) imported into the run history as a copy, with
its status, best metric and training time, the source untouched, and every bad folder, a full disk, a stop and a
failed record leaving nothing half-imported."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from segstudio.core.errors import DiskFullError, SegstudioError
from segstudio.workspace import RunStatus, Workspace
from segstudio.workspace.bundles import (
    BUNDLE_FILE,
    CONFIG_NAME,
    DATASET_NAME,
    LAUNCH_NAME,
    README_NAME,
    SBATCH_NAME,
    DatasetRef,
    LaunchSpec,
    check_bundle_folder,
    read_bundle,
    write_bundle,
)
from segstudio.workspace.models import run_checkpoint
from segstudio.workspace.run_import import RunImport, import_run_folder, inspect_run_folder

CONFIG = {"model": {"architecture": "unet", "encoder": "resnet18"}, "epochs": 1, "max_steps_per_epoch": 2,
          "data": {"image_size": 64, "batch_size": 2}, "monitor": "dice", "device": "auto", "name": ""}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    p = tmp_path / "data sets" / "lungs 'v2'"  # a space and quotes: every value must reach the shell as one word
    (p / "cxr").mkdir(parents=True)
    return p


def _bundle(tmp_path: Path, dataset: Path, **launch: int) -> Path:
    ref = DatasetRef(path=dataset, format="class-folders", samples=40, classes=("background", "left lung"),
                     workspace=None)
    return write_bundle(tmp_path / "bundles" / "lungs", config=CONFIG, dataset=ref,
                        launch=LaunchSpec(**launch), name="lungs on the cluster").folder


def _fake(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    p.chmod(0o755)
    return p


def _recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for torchrun that writes its arguments (one a line) and OMP_NUM_THREADS to a file."""
    out = tmp_path / "torchrun.args"
    fake = _fake(tmp_path / "bin", "torchrun", f'printf "%s\\n" "$@" > "{out}"\necho "OMP=${{OMP_NUM_THREADS:-}}" '
                 f'> "{out}.env"\n')
    return fake, out


def _run_launch(bundle: Path, env: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake, out = _recorder(tmp_path)
    full = {"PATH": os.environ["PATH"], "TORCHRUN": str(fake), **env}
    proc = subprocess.run(["sh", str(bundle / LAUNCH_NAME)], env=full, capture_output=True, text=True, timeout=30,
                          check=False)
    args = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    return proc, args


def _torchrun(args: list[str]):  # noqa: ANN202 - torch's Namespace
    run = pytest.importorskip("torch.distributed.run")
    return run.get_args_parser().parse_args(args)


# writing a bundle ---------------------------------------------------------------------------------------------------

def test_a_bundle_holds_the_config_the_dataset_reference_the_scripts_and_a_readme(tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset, nproc_per_node=4, nnodes=2, gpus_per_node=4, cpus_per_node=32)
    assert sorted(p.name for p in b.iterdir()) == sorted(
        [BUNDLE_FILE, CONFIG_NAME, DATASET_NAME, LAUNCH_NAME, README_NAME, SBATCH_NAME])
    assert json.loads((b / CONFIG_NAME).read_text(encoding="utf-8")) == CONFIG  # the config exactly
    ds = json.loads((b / DATASET_NAME).read_text(encoding="utf-8"))
    assert ds["path"] == str(dataset) and ds["format"] == "class-folders" and ds["samples"] == 40
    assert ds["workspace"] is None and ds["corrections"] is False and "DATASET" in ds["note"]
    manifest = read_bundle(b)
    assert manifest is not None and manifest["name"] == "lungs on the cluster"
    assert (manifest["nproc_per_node"], manifest["nnodes"]) == (4, 2)
    assert os.stat(b / LAUNCH_NAME).st_mode & stat.S_IXUSR
    sbatch = (b / SBATCH_NAME).read_text(encoding="utf-8")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=32", "#SBATCH --time=04:00:00", "#SBATCH --job-name=segstudio-lungs-on-the-cluster",
                 "#SBATCH --output=", 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1', "srun ",
                 "NODE_RANK=$SLURM_NODEID", "export NNODES=$SLURM_NNODES", "EDIT"):
        assert line in sbatch, line
    readme = (b / README_NAME).read_text(encoding="utf-8")
    assert "Import Run Folder" in readme and "segstudio models import" in readme and "DATASET=" in readme
    assert not any(p.name.endswith(".tmp") for p in b.parent.iterdir())


def test_the_scripts_pass_the_shells_syntax_checks(tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset)
    for shell, script in (("sh", LAUNCH_NAME), ("bash", LAUNCH_NAME), ("bash", SBATCH_NAME)):
        if shutil.which(shell) is None:
            pytest.skip(f"no {shell}")
        proc = subprocess.run([shell, "-n", str(b / script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (shell, script, proc.stderr)


def test_one_node_runs_torchrun_standalone_with_the_values_as_one_word_each(tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset, nproc_per_node=3)
    proc, args = _run_launch(b, {}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    ns = _torchrun(args)
    assert ns.nproc_per_node == "3" and ns.standalone and ns.module and ns.training_script == "segstudio"
    assert ns.training_script_args == ["train", str(dataset), "--config", str(b / CONFIG_NAME), "--out",
                                       str(b / "run"), "--format", "class-folders"]
    # the environment wins over what was exported
    out = tmp_path / "elsewhere" / "run 1"
    proc, args = _run_launch(b, {"NPROC_PER_NODE": "1", "DATASET": str(tmp_path), "OUT": str(out),
                                 "DATASET_FORMAT": "", "WORKSPACE": str(tmp_path), "RESUME": "1"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    ns = _torchrun(args)
    assert ns.nproc_per_node == "1"
    assert ns.training_script_args == ["train", str(tmp_path), "--config", str(b / CONFIG_NAME), "--out", str(out),
                                       "--workspace", str(tmp_path), "--resume"]


def test_several_nodes_meet_at_the_rendezvous_endpoint_and_static_takes_the_node_rank(tmp_path: Path,
                                                                                    dataset: Path) -> None:
    b = _bundle(tmp_path, dataset, nproc_per_node=2)
    env = {"NNODES": "4", "RDZV_ENDPOINT": "node007:29400", "RDZV_ID": "job-42", "NODE_RANK": "3"}
    proc, args = _run_launch(b, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    ns = _torchrun(args)
    assert (ns.nnodes, ns.rdzv_backend, ns.rdzv_endpoint, ns.rdzv_id) == ("4", "c10d", "node007:29400", "job-42")
    assert not ns.standalone and ns.node_rank == 0  # c10d numbers the nodes itself: no --node-rank to ignore
    proc, args = _run_launch(b, {**env, "RDZV_BACKEND": "static"}, tmp_path)
    ns = _torchrun(args)
    assert ns.rdzv_backend == "static" and ns.node_rank == 3


def test_the_launch_script_says_what_is_missing_and_how_to_fix_it(tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset)
    proc, args = _run_launch(b, {"DATASET": str(tmp_path / "not here")}, tmp_path)
    assert proc.returncode == 2 and not args
    assert "not here" in proc.stderr and "Set DATASET" in proc.stderr
    proc, _ = _run_launch(b, {"WORKSPACE": str(tmp_path / "no ws")}, tmp_path)
    assert proc.returncode == 2 and "WORKSPACE" in proc.stderr
    proc = subprocess.run(["sh", str(b / LAUNCH_NAME)], env={"PATH": "/usr/bin:/bin", "TORCHRUN": "no-such-torchrun"},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Activate the Python environment" in proc.stderr


def test_the_slurm_template_starts_the_launch_script_on_every_node_with_the_head_node_endpoint(
        tmp_path: Path, dataset: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    b = _bundle(tmp_path, dataset, nproc_per_node=4, nnodes=2, cpus_per_node=32)
    fake, out = _recorder(tmp_path)
    bin_ = tmp_path / "bin"
    _fake(bin_, "scontrol", 'printf "gpu-a17\\ngpu-a18\\n"\n')
    # srun: leave its options out and run the command as the second node would
    _fake(bin_, "srun", 'while [ "${1#--}" != "$1" ]; do shift; done\nSLURM_NODEID=1 exec "$@"\n')
    env = {"PATH": f"{bin_}:{os.environ['PATH']}", "TORCHRUN": str(fake), "SLURM_JOB_NODELIST": "gpu-a[17-18]",
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "8812", "SLURM_SUBMIT_DIR": str(b), "SLURM_CPUS_PER_TASK": "32"}
    proc = subprocess.run(["bash", str(b / SBATCH_NAME)], env=env, capture_output=True, text=True, timeout=30,
                          check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ns = _torchrun(out.read_text(encoding="utf-8").splitlines())
    assert (ns.nnodes, ns.nproc_per_node, ns.rdzv_endpoint, ns.rdzv_id) == ("2", "4", "gpu-a17:29500", "8812")
    assert ns.training_script_args[:2] == ["train", str(dataset)] and str(b / "run") in ns.training_script_args
    assert Path(f"{out}.env").read_text(encoding="utf-8").strip() == "OMP=8"  # 32 CPUs over 4 processes
    proc = subprocess.run(["bash", str(b / SBATCH_NAME)], env={**env, "NPROC_PER_NODE": "gpu"}, capture_output=True,
                          text=True, timeout=30, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # torchrun's own "one per GPU": the threads cannot be shared out
    assert _torchrun(out.read_text(encoding="utf-8").splitlines()).nproc_per_node == "gpu"
    assert Path(f"{out}.env").read_text(encoding="utf-8").strip() == "OMP=1"


def test_a_folder_holding_a_bundle_a_run_or_other_files_is_refused_with_a_fix(tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset)
    with pytest.raises(SegstudioError, match="holds a run bundle already") as err:
        _bundle(tmp_path, dataset)
    assert err.value.fix and "lungs-2" in err.value.fix
    run = tmp_path / "a run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(SegstudioError, match="holds a training run") as err:
        check_bundle_folder(run)
    assert "Import Run Folder" in (err.value.fix or "")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    with pytest.raises(SegstudioError, match="not empty"):
        check_bundle_folder(tmp_path / "full")
    with pytest.raises(SegstudioError, match="is a file"):
        check_bundle_folder(tmp_path / "full" / "notes.txt")
    (tmp_path / "empty").mkdir()
    assert check_bundle_folder(tmp_path / "empty") == tmp_path / "empty"
    with pytest.raises(SegstudioError, match="time limit"):
        LaunchSpec(time_limit="four hours").check()
    assert (b / CONFIG_NAME).is_file()


def test_a_full_disk_while_writing_leaves_no_half_bundle(tmp_path: Path, dataset: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.core import atomic
    from segstudio.workspace import bundles

    calls = []

    def full_on_third(path: Path, text: str) -> Path:
        calls.append(path)
        if len(calls) == 3:
            raise atomic.io_error(OSError(errno.ENOSPC, "No space left on device"), Path(path))
        return atomic.atomic_write_text(path, text)

    monkeypatch.setattr(bundles, "atomic_write_text", full_on_third)
    with pytest.raises(DiskFullError):
        _bundle(tmp_path, dataset)
    assert list((tmp_path / "bundles").iterdir()) == []


# importing a run ----------------------------------------------------------------------------------------------------

def make_run(folder: Path, *, cancelled: bool = False, seconds: float = 1234.5, best: float | None = 0.87) -> Path:
    """A finished run folder as the trainer leaves it (a fake checkpoint: ring 1 does not load weights)."""
    (folder / "checkpoints" / "best").mkdir(parents=True)
    (folder / "checkpoints" / "last").mkdir(parents=True)
    for kind in ("best", "last"):
        (folder / "checkpoints" / kind / "config.json").write_text('{"format": "segstudio-checkpoint"}')
        (folder / "checkpoints" / kind / "model.safetensors").write_bytes(os.urandom(3000))
    (folder / CONFIG_NAME).write_text(json.dumps(CONFIG))
    (folder / "curves.csv").write_text("epoch,train_loss,dice\n0,0.9,0.5\n1,0.7,0.87\n")
    (folder / ".curves.csv.99999999.deadbeef.tmp").write_text("left by a killed writer")
    (folder / "run.json").write_text(json.dumps({"epochs_completed": 2, "train_seconds": seconds, "cancelled": cancelled,
                                                 "best_monitor": best, "monitor": "dice", "device": "cuda:0"}))
    return folder


def _digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def ws(tmp_path: Path):
    w = Workspace(tmp_path / "ws")
    yield w
    w.close()


def test_a_finished_run_is_copied_into_the_run_history_and_its_source_left_untouched(ws: Workspace,
                                                                                     tmp_path: Path) -> None:
    src = make_run(tmp_path / "cluster" / "lungs-ddp")
    before = _digest(src)
    seen = []
    ws.events.run_changed.connect(seen.append)
    rec = import_run_folder(ws.runs, src)
    assert _digest(src) == before
    assert rec.status is RunStatus.FINISHED and rec.name == "lungs-ddp (imported)"
    assert rec.best_metric == pytest.approx(0.87) and rec.best_metric_name == "dice"
    assert rec.duration_s == pytest.approx(1234.5) and rec.config == CONFIG
    assert rec.folder.parent == ws.runs.folder and "imported from" in rec.message and "cuda:0" in rec.message
    copied = {k for k in _digest(rec.folder)}
    assert copied == {k for k in before if not k.endswith(".tmp")} | {"config.json", "imported.json"}
    assert (rec.folder / "checkpoints" / "best" / "model.safetensors").read_bytes() == (
        src / "checkpoints" / "best" / "model.safetensors").read_bytes()
    assert ws.runs.all()[0].id == rec.id and seen and seen[-1].id == rec.id
    assert not [p for p in ws.runs.folder.iterdir() if p.name.startswith(".")]
    with pytest.raises(SegstudioError, match="own runs already"):
        import_run_folder(ws.runs, rec.folder)
    # promoted as any run: its best checkpoint, recorded in the model history with the run's id
    ev = ws.models.adopt(run_checkpoint(rec.folder), run_id=rec.id, reason="the cluster run")
    assert ws.models.current().run_id == rec.id and ev.checkpoint == rec.folder / "checkpoints" / "best"


def test_a_bundle_folder_imports_its_run_under_the_bundles_name_a_stopped_run_as_cancelled_and_only_once(
        ws: Workspace, tmp_path: Path, dataset: Path) -> None:
    b = _bundle(tmp_path, dataset)
    make_run(b / "run", cancelled=True, best=float("nan"))
    rec = import_run_folder(ws.runs, b)
    assert rec.name == "lungs on the cluster (imported)" and rec.status is RunStatus.CANCELLED
    assert rec.best_metric is None and rec.best_metric_name == ""
    # the same run again — by its own folder, or a copy of it elsewhere — is the one imported before
    shutil.copytree(b / "run", tmp_path / "copy of the run")
    for again in (b / "run", tmp_path / "copy of the run"):
        with pytest.raises(SegstudioError, match="in the run history already") as err:
            import_run_folder(ws.runs, again)
        assert rec.id in str(err.value.fix)
    assert [r.id for r in ws.runs.all()] == [rec.id]


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "does not exist"),
    ("not a run", "is not a segstudio run"),
    ("checkpoint folder", "choose the run folder two levels up"),
    ("in progress", "has not finished"),
    ("damaged run.json", "run.json is damaged"),
    ("run.json a list", "not a JSON object"),
    ("damaged config", "train_config.json is damaged"),
    ("no checkpoint", "has no checkpoint"),
    ("bundle not trained", "has no run in run/"),
])
def test_a_folder_that_cannot_be_imported_names_itself_and_the_fix(ws: Workspace, tmp_path: Path, dataset: Path,
                                                                    case: str, message: str) -> None:
    src = tmp_path / "src"
    if case != "missing":
        make_run(src)
    chosen = src
    if case == "not a run":
        (src / CONFIG_NAME).unlink()
    elif case == "checkpoint folder":
        chosen = src / "checkpoints" / "best"
    elif case == "in progress":
        (src / "run.json").unlink()
    elif case == "damaged run.json":
        (src / "run.json").write_text('{"epochs_completed": 2, "train_')
    elif case == "run.json a list":
        (src / "run.json").write_text("[1, 2]")
    elif case == "damaged config":
        (src / CONFIG_NAME).write_bytes(b"\xff\xfe{")
    elif case == "no checkpoint":
        shutil.rmtree(src / "checkpoints")
    elif case == "bundle not trained":
        chosen = _bundle(tmp_path, dataset)
    with pytest.raises(SegstudioError, match=message) as err:
        import_run_folder(ws.runs, chosen)
    assert err.value.path is not None and err.value.fix
    assert ws.runs.all() == []
    assert not ws.runs.folder.exists() or list(ws.runs.folder.iterdir()) == []


def test_a_full_disk_a_stop_or_a_failed_record_leave_nothing_half_imported(ws: Workspace, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from segstudio.workspace import run_import

    src = make_run(tmp_path / "src")

    def leftovers() -> list[str]:
        return sorted(p.name for p in ws.runs.folder.iterdir()) if ws.runs.folder.exists() else []

    # no room for it: refused before a byte is copied, naming the folder and the space needed
    monkeypatch.setattr(run_import, "free_bytes", lambda _p: 1000)
    with pytest.raises(DiskFullError, match="disk is full"):
        import_run_folder(ws.runs, src)
    monkeypatch.undo()
    # the disk fills up half-way
    n = []

    def copystat(a: object, b: object) -> None:
        n.append(a)
        if len(n) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_import.shutil, "copystat", copystat)
    with pytest.raises(DiskFullError):
        import_run_folder(ws.runs, src)
    monkeypatch.undo()
    assert leftovers() == [] and ws.runs.all() == []
    # stopped while copying
    job = RunImport(ws.runs, inspect_run_folder(src))
    progress = list(job.copy(cancelled=lambda: True))
    assert progress == [] and leftovers() == []
    with pytest.raises(SegstudioError, match="not copied"):
        job.commit()
    # the record cannot be written: the copied folder goes again
    monkeypatch.setattr(ws.runs, "add_existing", lambda *a, **k: (_ for _ in ()).throw(SegstudioError("db gone")))
    with pytest.raises(SegstudioError, match="db gone"):
        import_run_folder(ws.runs, src)
    assert leftovers() == []


def test_the_copy_reports_its_progress_and_a_killed_imports_temp_folder_is_swept_on_open(tmp_path: Path) -> None:
    src = make_run(tmp_path / "src")
    with Workspace(tmp_path / "ws") as w:
        job = RunImport(w.runs, inspect_run_folder(src))
        steps = list(job.copy())
        assert steps[-1].done == steps[-1].total > 6000 and all(a.done <= b.done for a, b in zip(steps, steps[1:], strict=False))
        rec = job.commit()
        assert rec.folder.is_dir()
        dead = w.runs.folder / ".20261205-000000-abcdef.999999999.0badf00d.tmp"  # an import a kill -9 cut short
        (dead / "checkpoints").mkdir(parents=True)
    with Workspace(tmp_path / "ws") as w:
        assert not dead.exists() and [r.id for r in w.runs.all()] == [rec.id]


def test_a_read_only_workspace_refuses_the_import(tmp_path: Path) -> None:
    src = make_run(tmp_path / "src")
    Workspace(tmp_path / "ws").close()
    with Workspace(tmp_path / "ws", read_only=True) as ro, pytest.raises(SegstudioError):
        import_run_folder(ro.runs, src)
    assert not (tmp_path / "ws" / "runs").exists() or list((tmp_path / "ws" / "runs").iterdir()) == []
