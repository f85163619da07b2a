#!/usr/bin/env bash
# The GPU check: CUDA correctness and the speed of the paper-setting training step, in one call.
#
#   bash benchmarks/gpu_check.sh [--dry] [--wheels DIR] [--ref FILE] [--logs DIR] [--archive FILE]
#                                [--budget SECONDS] [--only STEP,STEP,...]
#
# Steps, in this order (each with its own time limit, all within --budget, 420 s by default; the
# most important first, so a short lease still gives the main figures):
#   01 pytest -m gpu                      CUDA tests (imresize, NIQE, Ma, upscale, loaders, score)
#   02 bench_gan.py --full                the paper's step (batch 8, HR 296, x4) as it stands by
#                                         default: TF32 convolutions, synthetic and demo-data feeds,
#                                         without / with one / with two Rankers
#   03 the same, tuned                    bf16-mixed + channels_last + fused Adam; synthetic, worker
#                                         loader and on-device patch feeds; 0 / 1 / 2 Rankers
#   04 gpu_step_ref.py                    the plain eager reference step, for the ratio (--ref FILE)
#   05-07 one option less each            bf16 + channels_last (no fused Adam), bf16 (no
#                                         channels_last), TF32 with the loss networks in bf16:
#                                         what each option is worth alone (one Ranker, synthetic)
#   08 diagnostics of the tuned step      host synchronisations per iteration (torch's sync debug
#                                         mode, with the lines that cause them) and a profile: the
#                                         GPU's busy share of the wall time, the costliest kernels
#   09 the host's cost of an iteration    every layer of the paper's networks with almost no
#                                         arithmetic (bench_gan.py --overhead), with and without
#                                         Lightning: the rate the host allows without CUDA graphs
#   10 bench_niqe.py --device cuda        NIQE on the GPU, 1080p batched
#   11 bench_ranker.py --device cuda      Ranker training and rank-set labelling throughput
#   12 train.py experiment=smoke ...      a 200-iteration pipeline, trainer=gpu, bf16-mixed
# then a summary table (benchmarks/gpu_summary.py) with steps/s and peak GPU memory of each, and the
# ratios: tuned against default and against the reference, each option's gain, the Rankers' share.
#
# --dry (no CUDA needed, about a minute): every step runs at the smallest size on the CPU, the
#   reference script is only compiled, and the summary is printed: what the fast test suite runs.
# --wheels DIR: install the packages the GPU machine lacks from wheels made by
#   benchmarks/prepare_gpu_wheels.sh (into a temporary target folder on PYTHONPATH).
# --ref FILE: the reference step script (default: ../shared/reference/gpu_step_ref.py, else
#   .gpu_ref/gpu_step_ref.py in the repository); the step is skipped, and says so, without it.
# --logs DIR: where each step's log goes (default: a temporary folder); the summary reads them.
# --archive FILE: also pack the logs folder (every step's log, summary.md) into one .tar.gz
#   (default: $OUT/gpu_check_logs.tar.gz when the environment sets OUT, an output folder).
# --budget SECONDS: wall time for all steps together; a step gets at most what is left, and a step
#   with under 20 s left is skipped (recorded as skipped-budget).
# --only STEPS: run only these steps (comma-separated names, e.g. 02_gan_tf32,12_pipeline), to
#   rerun what failed; the others are recorded as skipped-not-selected.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DRY=0
WHEELS=""
REF=""
LOGS=""
ARCHIVE=${OUT:+$OUT/gpu_check_logs.tar.gz}
BUDGET=420
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) DRY=1 ;;
    --wheels) WHEELS="$2"; shift ;;
    --ref) REF="$2"; shift ;;
    --logs) LOGS="$2"; shift ;;
    --archive) ARCHIVE="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    --only) ONLY=",$2,"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
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
if [ -z "$LOGS" ]; then LOGS=$(mktemp -d); fi
mkdir -p "$LOGS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "$DRY" = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: no CUDA device; use --dry on a machine without one" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" \
  | tee "$LOGS/00_environment.log"

# step NAME LIMIT_SECONDS COMMAND...: run one step within what is left of the budget, log it, and
# record its status and seconds.
CHECK_START=$(date +%s)
skip() {  # skip NAME WHY
  echo "=== $1 skipped: $2"
  echo "$1 skipped-$2 0" >> "$LOGS/steps.txt"
}
step() {
  local name=$1 limit=$2
  shift 2
  local start end status left
  if [ -n "$ONLY" ] && [[ "$ONLY" != *",$name,"* ]]; then
    skip "$name" not-selected
    return
  fi
  start=$(date +%s)
  left=$((BUDGET - (start - CHECK_START)))
  if [ "$left" -lt 20 ]; then
    skip "$name" budget
    return
  fi
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  echo "=== $name (limit ${limit}s): $*"
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  status=$?
  end=$(date +%s)
  tail -n 3 "$LOGS/$name.log"
  echo "$name $status $((end - start))" >> "$LOGS/steps.txt"
}
: > "$LOGS/steps.txt"

PEAK="$PY benchmarks/peak_memory.py"
# gan NAME LIMIT FLAGS...: bench_gan.py at the paper's setting (on the CPU with --dry: the small
# setting, one timed iteration, the same flags).
if [ "$DRY" = 1 ]; then
  GAN_SIZE=(--device cpu --small --steps 1 --warmup 0 --workers 0)
else
  GAN_SIZE=(--device cuda --full --steps 30 --warmup 10 --workers 8)
fi
gan() {
  local name=$1 limit=$2
  shift 2
  step "$name" "$limit" "$PY" benchmarks/bench_gan.py "${GAN_SIZE[@]}" "$@"
}
TUNED=(--precision bf16 --channels-last --fused-adam)
ONE_RANKER=(--variants rank1 --feeds synthetic)

if [ "$DRY" = 1 ]; then
  step 01_pytest_gpu 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_resize.py tests/test_niqe.py
else
  step 01_pytest_gpu 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider
fi
gan 02_gan_tf32 120 --feeds synthetic data
gan 03_gan_tuned 150 "${TUNED[@]}"
if [ -z "$REF" ]; then
  skip 04_reference no-reference-script
elif [ "$DRY" = 1 ]; then
  step 04_reference 60 "$PY" -m py_compile "$REF"
else
  step 04_reference 150 env OUT="$LOGS" "$PY" "$REF" --budget 100 --iters 20
fi
gan 05_gan_bf16_cl 60 --precision bf16 --channels-last "${ONE_RANKER[@]}"
gan 06_gan_bf16 60 --precision bf16 "${ONE_RANKER[@]}"
gan 07_gan_tf32_bf16_losses 60 --loss-networks-bf16 "${ONE_RANKER[@]}"
if [ "$DRY" = 1 ]; then
  gan 08_gan_diagnostics 60 "${TUNED[@]}" --sync-debug --profile --variants rank2 --feeds device
  step 09_host_overhead 60 "$PY" benchmarks/bench_gan.py --device cpu --overhead --steps 2 --warmup 1 \
    "${TUNED[@]}" --plain --feeds synthetic
  step 10_niqe 120 "$PY" benchmarks/bench_niqe.py --device cpu --quick --smallest
  step 11_ranker_labelling 120 "$PY" benchmarks/bench_ranker.py --device cpu --steps 1 --warmup 0 --patch 32 --label-patch 200 --label-stride 1000
  step 12_pipeline 180 $PEAK train.py experiment=smoke trainer=cpu "paths.root=$WORK/runs" \
    ++stages.all.max_steps=2 ++stages.all.val_check_interval=2
else
  step 08_gan_diagnostics 60 "$PY" benchmarks/bench_gan.py --device cuda --full --steps 5 --warmup 3 --workers 8 \
    "${TUNED[@]}" --sync-debug --profile --variants rank2 --feeds device data
  step 09_host_overhead 60 "$PY" benchmarks/bench_gan.py --device cuda --overhead --steps 30 --warmup 10 \
    "${TUNED[@]}" --plain --feeds synthetic
  step 10_niqe 90 "$PY" benchmarks/bench_niqe.py --device cuda
  step 11_ranker_labelling 90 "$PY" benchmarks/bench_ranker.py --device cuda
  step 12_pipeline 180 $PEAK train.py experiment=smoke trainer=gpu trainer.precision=bf16-mixed "paths.root=$WORK/runs" \
    ++stages.all.max_steps=200 ++stages.all.val_check_interval=100
fi

"$PY" benchmarks/gpu_summary.py "$LOGS" | tee "$LOGS/summary.md"
echo "step logs in $LOGS"
if [ -n "$ARCHIVE" ]; then
  tar -czf "$ARCHIVE" -C "$LOGS" . && echo "logs packed into $ARCHIVE"
fi
! grep -qv " 0 [0-9]*$\| skipped" "$LOGS/steps.txt"
