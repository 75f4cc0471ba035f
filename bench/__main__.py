"""Run the benchmarks and write bench/results.json.

Every ``bench/bench_*.py`` module defines functions ``bench_<name>() -> list[Figure]``. ``--only PREFIX`` runs
the functions whose figures start with PREFIX (matched against the module's ``PREFIX`` and each function's
name). A module with ``EXPLICIT_ONLY = True`` runs only when ``--only`` names it. Results merge into an existing
results.json, so a subset run updates only its own figures.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import Figure, merge_results  # noqa: E402


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from segstudio.engine.runtime import cpu_computes_bf16

    # the engine's CPU figures (step times, start-up to the first step) differ some 2x with the precision it picks
    precision = "bf16 CPU steps" if cpu_computes_bf16() else "float32 CPU steps (no AVX-512 BF16 / AMX)"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu or platform.processor()}, "
            f"{precision}, Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--only", default="", help="run only benchmarks whose figure names start with this prefix")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    figures: list[Figure] = []
    failed: list[str] = []
    for mod_path in sorted(HERE.glob("bench_*.py")):
        mod = importlib.import_module(f"bench.{mod_path.stem}")
        prefix = getattr(mod, "PREFIX", mod_path.stem.removeprefix("bench_"))
        if getattr(mod, "EXPLICIT_ONLY", False) and not (args.only and args.only.startswith(prefix)):
            continue  # minutes-long benchmarks (the installer build) run only when named
        for fname in sorted(n for n in dir(mod) if n.startswith("bench_")):
            full = f"{prefix}.{fname.removeprefix('bench_')}"
            if args.only and not (full.startswith(args.only) or prefix.startswith(args.only)):
                continue
            print(f"-- {full}", flush=True)
            try:
                figures.extend(getattr(mod, fname)())
            except Exception:
                traceback.print_exc()
                failed.append(full)

    merge_results(args.out, figures, machine=machine())

    print(f"\n{'figure':<52} {'value':>12} {'unit':<6} {'budget':>10}")
    misses = 0
    for f in figures:
        mark = ""
        if f.misses_budget:
            mark = "  MISSES BUDGET"
            misses += 1
        budget = "" if f.budget is None else f"{'<' if f.better == 'lower' else '>='} {f.budget:g}"
        print(f"{f.name:<52} {f.value:>12.4g} {f.unit:<6} {budget:>10}{mark}")
    print(f"\nwrote {args.out} ({len(figures)} figures this run, {misses} over budget, {len(failed)} failed)")
    for name in failed:
        print(f"FAILED: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
