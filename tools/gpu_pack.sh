#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored) for tools/gpu_check.sh on a CUDA machine that cannot reach a package index:
#   .gpu/data/  Montgomery's and PH2's images, copied from ../shared/datasets (about 47 MB)
#   .gpu/whl/   the Python 3.12 wheels segstudio's engine needs that the machine's image lacks
# Then: device run with carry [".gpu"] and the command `bash tools/gpu_check.sh` (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SEGSTUDIO_SHARED:-../shared/datasets}"
PY="${PYTHON:-.venv/bin/python}"
rm -rf .gpu
mkdir -p .gpu/data .gpu/whl
cp -r "$SHARED/montgomery_cxr" "$SHARED/ph2" .gpu/data/
# the versions this checkout's venv has (one version of each, pins that agree), as Python 3.12 wheels without
# their dependencies: the machine's own torch, timm, numpy, scipy, opencv and huggingface_hub are used as they are
mapfile -t PINS < <("$PY" - <<'PY'
from importlib.metadata import version
for name in ("segmentation-models-pytorch", "albumentations", "albucore", "stringzilla", "simsimd", "pydantic",
             "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "pydicom", "psygnal",
             "platformdirs"):
    print(f"{name}=={version(name)}")
PY
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl "${PINS[@]}"
du -sh .gpu/data .gpu/whl
echo "carry .gpu: $(du -sm .gpu | cut -f1) MB of the 64 MiB a device call may send with the repo"
