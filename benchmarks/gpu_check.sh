#!/usr/bin/env bash
# The GPU check: CUDA correctness and the speed of the paper-setting training step, in one call.
#
#   bash benchmarks/gpu_check.sh [--dry] [--wheels DIR] [--ref FILE] [--logs DIR]
#
# Steps (each with its own time limit; about 8 minutes in all on one H200):
#   1. pytest -m gpu                      CUDA tests (imresize, NIQE, Ma, upscale, loaders, score)
#   2. bench_gan.py --full                the paper's step (batch 8, HR 296, x4), synthetic and demo-data
#                                         feeds, without / with one / with two Rankers, in TF32 (torch's
#                                         default for convolutions), bf16, and bf16 + channels_last
#   3. gpu_step_ref.py                    the plain eager reference step, for the ratio (--ref FILE)
#   4. bench_niqe.py --device cuda        NIQE on the GPU, 1080p batched
#   5. bench_ranker.py --device cuda      Ranker training and rank-set labelling throughput
#   6. train.py experiment=smoke ...      a 200-iteration pipeline, trainer=gpu, bf16-mixed
# then a summary table (benchmarks/gpu_summary.py) with steps/s and peak GPU memory of each.
#
# --dry (no CUDA needed, seconds): every step runs at the smallest size on the CPU, the reference
#   script is only compiled, and the summary is printed: what the fast test suite runs.
# --wheels DIR: install the packages the GPU machine lacks from wheels made by
#   benchmarks/prepare_gpu_wheels.sh (into a temporary target folder on PYTHONPATH).
# --ref FILE: the reference step script (default: ../shared/reference/gpu_step_ref.py, else
#   .gpu_ref/gpu_step_ref.py in the repository); the step is skipped, and says so, without it.
# --logs DIR: where each step's log goes (default: $OUT/gpu_check if OUT is set, else a temporary
#   folder); the summary reads them.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=0
WHEELS=""
REF=""
LOGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) DRY=1 ;;
    --wheels) WHEELS="$2"; shift ;;
    --ref) REF="$2"; shift ;;
    --logs) LOGS="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-python3}
if [ -x "$ROOT/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then PY="$ROOT/.venv/bin/python"; fi
if [ -n "$WHEELS" ]; then
  SITE=$(mktemp -d)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    || { echo "gpu_check.sh: installing the wheels in $WHEELS failed" >&2; exit 2; }
  export PYTHONPATH="$SITE:${PYTHONPATH:-}"
fi
export PYTHONPATH="$ROOT/src:${PYTHONPATH:-}"
export WANDB_MODE=offline PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
if [ -z "$REF" ]; then
  for candidate in "$ROOT/../shared/reference/gpu_step_ref.py" "$ROOT/.gpu_ref/gpu_step_ref.py"; do
    if [ -f "$candidate" ]; then REF="$candidate"; break; fi
  done
fi
if [ -z "$LOGS" ]; then LOGS=${OUT:+$OUT/gpu_check}; LOGS=${LOGS:-$(mktemp -d)}; fi
mkdir -p "$LOGS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "$DRY" = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: no CUDA device; use --dry on a machine without one" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" \
  | tee "$LOGS/00_environment.log"

# step NAME LIMIT_SECONDS COMMAND...: run one step, log it, record status and seconds.
step() {
  local name=$1 limit=$2
  shift 2
  local start end status
  start=$(date +%s)
  echo "=== $name (limit ${limit}s): $*"
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  status=$?
  end=$(date +%s)
  tail -n 3 "$LOGS/$name.log"
  echo "$name $status $((end - start))" >> "$LOGS/steps.txt"
}
: > "$LOGS/steps.txt"

PEAK="$PY benchmarks/peak_memory.py"
if [ "$DRY" = 1 ]; then
  step 01_pytest_gpu 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_resize.py tests/test_niqe.py
  step 02_gan_tf32 120 "$PY" benchmarks/bench_gan.py --device cpu --small --steps 1 --warmup 0 --variants srgan rank1 --feeds synthetic
  step 03_gan_bf16_cl 120 "$PY" benchmarks/bench_gan.py --device cpu --small --steps 1 --warmup 0 --variants rank1 --feeds synthetic --precision bf16 --channels-last
  if [ -n "$REF" ]; then
    step 04_reference 60 "$PY" -m py_compile "$REF"
  else
    echo "04_reference skipped-no-reference-script 0" >> "$LOGS/steps.txt"
  fi
  step 05_niqe 120 "$PY" benchmarks/bench_niqe.py --device cpu --quick --smallest
  step 06_ranker_labelling 120 "$PY" benchmarks/bench_ranker.py --device cpu --steps 1 --warmup 0 --patch 32 --label-patch 200 --label-stride 1000
  step 07_pipeline 180 $PEAK train.py experiment=smoke trainer=cpu "paths.root=$WORK/runs" \
    ++stages.all.max_steps=2 ++stages.all.val_check_interval=2
else
  step 01_pytest_gpu 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider
  step 02_gan_tf32 150 "$PY" benchmarks/bench_gan.py --device cuda --full --steps 30 --warmup 10 --workers 8
  step 03_gan_bf16 90 "$PY" benchmarks/bench_gan.py --device cuda --full --steps 30 --warmup 10 --workers 8 --precision bf16 --feeds synthetic
  step 03_gan_bf16_cl 150 "$PY" benchmarks/bench_gan.py --device cuda --full --steps 30 --warmup 10 --workers 8 --precision bf16 --channels-last
  if [ -n "$REF" ]; then
    step 04_reference 150 env OUT="$LOGS" "$PY" "$REF" --budget 100 --iters 20
  else
    echo "04_reference skipped-no-reference-script 0" >> "$LOGS/steps.txt"
  fi
  step 05_niqe 90 "$PY" benchmarks/bench_niqe.py --device cuda
  step 06_ranker_labelling 90 "$PY" benchmarks/bench_ranker.py --device cuda
  step 07_pipeline 180 $PEAK train.py experiment=smoke trainer=gpu trainer.precision=bf16-mixed "paths.root=$WORK/runs" \
    ++stages.all.max_steps=200 ++stages.all.val_check_interval=100
fi

"$PY" benchmarks/gpu_summary.py "$LOGS" | tee "$LOGS/summary.md"
! grep -qv " 0 [0-9]*$\| skipped" "$LOGS/steps.txt"
