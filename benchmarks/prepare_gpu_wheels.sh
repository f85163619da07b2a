#!/usr/bin/env bash
# Wheels for a GPU machine that has torch, Lightning, torchmetrics, scikit-image and OpenCV but
# cannot download anything (run this where pip reaches the package index):
#
#   bash benchmarks/prepare_gpu_wheels.sh [DIR] [PYTHON_VERSION]     # default .whl, 3.12
#
# It fetches, for CPython PYTHON_VERSION on manylinux x86-64, the packages ranksrgan needs that such
# a machine lacks, at the versions installed in this checkout's .venv (so that what the GPU runs is
# what the tests ran here), without their dependencies (each needed one is listed). A package
# published only as source (antlr4-python3-runtime) is built into a pure-Python wheel here.
# Then on the GPU machine:  bash benchmarks/gpu_check.sh --wheels DIR
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PYVER=${2:-3.12}
PY=${PYTHON:-.venv/bin/python}
PACKAGES=(hydra-core omegaconf antlr4-python3-runtime piq albumentations albucore simsimd stringzilla
  pydantic pydantic-core annotated-types typing-inspection kornia kornia-rs)
mkdir -p "$DIR"
PLATFORMS=()
for n in 17 24 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
  if [ -z "$version" ]; then echo "prepare_gpu_wheels.sh: $name is not installed in $PY; run make install first" >&2; exit 2; fi
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
      "${PLATFORMS[@]}" -d "$DIR" "$name==$version" 2>/dev/null; then
    "$PY" -m pip wheel -q --no-deps -w "$DIR" "$name==$version"   # source only: a pure-Python wheel
  fi
done
ls -1 "$DIR"
du -sh "$DIR"
