#!/usr/bin/env bash
# The engine's check on a CUDA machine (issue 17; docs/training.md "GPU check"). Prepare here with
# tools/gpu_pack.sh, then run this on the device machine with .gpu carried:
#   bash tools/gpu_check.sh            recipes on a held-out fold, utilisation, trainer vs bare loop (~8 min on an H200)
#   bash tools/gpu_check.sh --tests    also pytest tests/engine on that machine (no test assumes the device)
# Figures: $OUT/gpu_check.json (or .gpu/out/) and a table on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-.gpu/out}"
mkdir -p "$OUT"
if [ ! -d .gpu/whl ] || [ ! -d .gpu/data ]; then
  echo "gpu_check: .gpu/ is missing: run tools/gpu_pack.sh where ../shared/datasets is, and carry .gpu" >&2
  exit 2
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, segmentation_models_pytorch, albumentations; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
status=0
if [ "${1:-}" = "--tests" ]; then
  shift
  # the engine's tests, as on the CPU; a test that assumed the device would fail here
  SEGSTUDIO_SHARED="$PWD/.gpu/data" "$PY" -m pytest tests/engine -q -x -p no:cacheprovider 2>&1 | tee "$OUT/pytest_engine.log" | tail -15
  status=${PIPESTATUS[0]}
fi
"$PY" tools/gpu_check.py --data .gpu/data --out "$OUT" "$@" || status=$?
exit $status
