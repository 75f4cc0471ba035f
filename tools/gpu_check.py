"""The engine's GPU check (issue 17): recipes, a held-out fold, the trainer against a bare loop, utilisation.

Run on a CUDA machine through ``tools/gpu_check.sh`` (which installs the carried wheels first); it also runs on
the CPU (``--device cpu --quick``) so that the script itself is tested where there is no GPU. Data come from a
folder prepared by ``tools/gpu_pack.sh`` (``--data``, default ``.gpu/data``): Montgomery's and PH2's images as
``../shared/datasets`` holds them.

For each recipe (``lungs-lr`` on Montgomery, ``lesion`` on PH2) it trains ``segstudio train --recipe R`` on
folds 2–5 of a 5-fold split (``--set folds=5 --set fold=0``) in a fresh process, times it from the start of the
process to its end, then scores its model (the SWA average, else the best checkpoint) on the held-out fold with ``segstudio evaluate --split val``
(the checkpoint's own hold-out: images that model never saw) and reads the epochs' own times from curves.csv.
Meanwhile ``nvidia-smi`` samples the GPU's utilisation and memory every second. Last it runs
``bench.bench_engine``'s bare-loop comparison on the device. Everything lands in one JSON (``--out``) and a
table on stdout:

- ``engine.gpu.lungs_recipe_wall_s`` (goal ≤ 30 s on one H200), ``engine.gpu.lesion_recipe_wall_s``
- ``engine.gpu.util_mean_pct`` (goal ≥ 50 %) and ``engine.gpu.util_max_pct``, ``engine.gpu.mem_max_mib``
- ``engine.gpu.train_vs_bare_ratio`` (≥ 0.95)
- per recipe: the held-out fold's mean Dice / IoU, epochs run, the epochs' share of the wall time
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = (("lungs-lr", "montgomery_cxr/data", "lungs"), ("lesion", "ph2", "lesion"))
QUICK = ("epochs=1", "image_size=64", "max_steps_per_epoch=2", "batch_size=2", "early_stopping=0")


class Sampler:
    """``nvidia-smi`` every second in a thread: utilisation (%) and memory used (MiB) while the runs go."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float]] = []
        self.available = shutil.which("nvidia-smi") is not None
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.available:
            return
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-l", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                self.rows.append((float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue

    def stop(self) -> dict[str, float]:
        if self._proc is None:
            return {}
        self._proc.terminate()
        self._proc.wait(10)
        if self._thread is not None:
            self._thread.join(5)
        if not self.rows:
            return {}
        util = [u for u, _ in self.rows]
        return {"engine.gpu.util_mean_pct": round(statistics.fmean(util), 1),
                "engine.gpu.util_max_pct": max(util),
                "engine.gpu.mem_max_mib": max(m for _, m in self.rows),
                "engine.gpu.samples": len(self.rows)}


def _segstudio(args: list[str], *, log: Path) -> float:
    """Run ``python -m segstudio ARGS`` in a fresh process; its seconds from start to end (raises on failure)."""
    t0 = time.perf_counter()
    err = log.with_suffix(".err")
    with open(log, "w", encoding="utf-8") as f, open(err, "w", encoding="utf-8") as e:
        proc = subprocess.run([sys.executable, "-m", "segstudio", *args], stdout=f, stderr=e,
                              cwd=REPO, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = err.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"segstudio {' '.join(args[:2])} failed ({proc.returncode}); log {log}:\n{tail}")
    return wall


def run_recipe(recipe: str, dataset: Path, key: str, *, out: Path, device: str, quick: bool) -> dict[str, float]:
    run = out / f"run-{recipe}"
    if run.exists():
        shutil.rmtree(run)
    sets = ["folds=5", "fold=0", f"device={device}", *(QUICK if quick else ())]
    wall = _segstudio(["train", str(dataset), "--recipe", recipe, *[a for s in sets for a in ("--set", s)],
                       "--out", str(run), "--progress", "none"], log=out / f"train-{recipe}.log")
    with open(run / "curves.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    epochs_s = sum(float(r["seconds"]) for r in rows)
    # the recipes average their weights (SWA): that model, which the held-out fold did not choose, else the best
    ckpt = next(run / "checkpoints" / n for n in ("swa", "best", "last") if (run / "checkpoints" / n).exists())
    score_json = out / f"evaluate-{recipe}.json"
    _segstudio(["evaluate", str(ckpt), str(dataset), "--split", "val", "--json", "--device", device,
                "--progress", "none"], log=score_json)
    scores = json.loads(score_json.read_text(encoding="utf-8"))
    return {f"engine.gpu.{key}_recipe_wall_s": round(wall, 1),
            f"engine.gpu.{key}_epochs": len(rows),
            f"engine.gpu.{key}_epochs_share": round(epochs_s / wall, 3),
            f"engine.gpu.{key}_heldout_dice": round(float(scores["dice"]), 4),
            f"engine.gpu.{key}_heldout_iou": round(float(scores["iou"]), 4)}


def bare_loop(device: str, quick: bool) -> dict[str, float]:
    os.environ["SEGSTUDIO_BENCH_DEVICE"] = device
    if quick:
        os.environ["SEGSTUDIO_BENCH_STEPS"] = "3"
    sys.path.insert(0, str(REPO))
    from bench import bench_engine

    figs = {f.name: f.value for f in bench_engine.bench_train_vs_bare_ratio()}
    return {"engine.gpu.train_vs_bare_ratio": figs["engine.train_vs_bare_ratio"],
            "engine.gpu.train_step_ms": figs["engine.train_step_ms"],
            "engine.gpu.bare_step_ms": figs["engine.bare_step_ms"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / ".gpu" / "data", help="folder from tools/gpu_pack.sh")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", REPO / ".gpu" / "out")))
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="one tiny epoch per recipe: checks the script, not the GPU")
    ap.add_argument("--only", choices=[r for r, _, _ in RECIPES], action="append", help="run these recipes only")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    missing = [d for _, d, _ in RECIPES if not (args.data / d).exists()]
    if missing:
        print(f"gpu_check: {args.data} lacks {', '.join(missing)}; run tools/gpu_pack.sh on a machine with "
              "../shared/datasets first and carry .gpu", file=sys.stderr)
        return 2
    import torch

    figures: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "device": args.device,
                                  "torch": torch.__version__, "quick": args.quick}
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("gpu_check: CUDA is not available on this machine; use --device cpu", file=sys.stderr)
            return 2
        figures["gpu"] = torch.cuda.get_device_name(0)
    sampler = Sampler() if args.device.startswith("cuda") else None
    if sampler is not None:
        sampler.start()
    try:
        for recipe, folder, key in RECIPES:
            if args.only and recipe not in args.only:
                continue
            figures |= run_recipe(recipe, args.data / folder, key, out=args.out, device=args.device, quick=args.quick)
            print(json.dumps({k: v for k, v in figures.items() if f".{key}_" in k}), flush=True)
    finally:
        if sampler is not None:
            figures |= sampler.stop()
    figures |= bare_loop(args.device, args.quick)
    (args.out / "gpu_check.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
