"""tools/gpu_check.py, the engine's check for a CUDA machine, runs end to end on the CPU in its quick mode (its
recipe run, the held-out fold's evaluation, the bare-loop comparison and the JSON it writes), so that the script
a GPU session relies on is not first run there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_on_the_cpu(shared_datasets, montgomery, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "montgomery_cxr").symlink_to(montgomery.parent)
    (data / "ph2").symlink_to(shared_datasets / "ph2")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--only", "lungs-lr", "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["device"] == "cpu" and figures["quick"] is True
    assert figures["engine.gpu.lungs_epochs"] == 1
    assert 0 < figures["engine.gpu.lungs_epochs_share"] < 1
    assert 0 <= figures["engine.gpu.lungs_heldout_dice"] <= 1
    assert figures["engine.gpu.train_vs_bare_ratio"] > 0
    evaluated = json.loads((out / "evaluate-lungs-lr.json").read_text())
    assert evaluated["split"] == "val" and evaluated["samples"] == 8  # one fold of Montgomery's 40 images
    assert "engine.gpu.util_mean_pct" not in figures  # no nvidia-smi sampling on the CPU


def test_gpu_check_names_the_missing_data_folder(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--device", "cpu", "--data",
                           str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert "nowhere" in proc.stderr and "tools/gpu_pack.sh" in proc.stderr
