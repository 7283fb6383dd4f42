#!/usr/bin/env bash
# The prepared GPU check (issue 11, item 6): run from the repository root on an OFFLINE GPU
# machine, writes OUTDIR/gpu_check.json and OUTDIR/gpu_check.log.
#
#   bash benchmarks/gpu_check.sh OUTDIR                 # the real check, < 8 minutes on an H200
#   GPU_CHECK_SMALL=1 bash benchmarks/gpu_check.sh OUT  # a reduced dry run (CPU is fine)
#
# What the machine must have (nothing is installed from the network):
#   - python3 (3.12) with torch (CUDA build) and jax with its CUDA plugin, scipy, matplotlib,
#     rich, typer, h5py, ml-dtypes, absl-py, numpy, packaging, pygments (the device image);
#   - in .whl/ of this checkout (git-ignored; carried with the working tree), the wheels that
#     image lacks, installed with pip --no-index --no-deps into a temporary folder:
#       keras-3.15.1, namex-0.1.0, optree-0.20.0 (cp312)  <- /work/shared/device-wheels
#       pytest-9.2.0, pluggy-1.7.0, iniconfig-2.3.1      <- pip download --no-deps
#         --only-binary=:all: --python-version 3.12 -d .whl pytest==9.2.0 pluggy iniconfig
#     (a wheel is used only when its module is not importable already).
#
# Steps (each under a timeout, so one hang cannot eat the budget):
#   1. each backend (jax, torch) must see the GPU (kerasparse info --backend B --json);
#   2. the layer / top-k / callback tests on jax and on torch, on the GPU (both at once:
#      correctness only, XLA_PYTHON_CLIENT_PREALLOCATE=false lets them share the GPU), while
#      the CPU writes a generated CIFAR-shaped set (50,000 + 10,000 images, CIFAR-10 python
#      batches, read back through the real CIFAR-10 reader);
#   3. the input pipeline alone (kerasparse bench --input-pipeline: 1..16 threads), then
#      benchmarks/gpu_topk_bench.py: WRN-28-4 training steps, batch 128, mixed_bfloat16,
#      ReLU and r = 1, 0.5, 0.2, 0.05 interleaved (two compiled models: the keep ratio is a
#      variable), one process per backend, backends one after the other;
#   4. two epochs of `kerasparse train --model wrn28-4 --device gpu` on that set, per backend.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/gpu_check.log"
exec > >(tee "$LOG") 2>&1
PY=${PYTHON:-python3}
SMALL=${GPU_CHECK_SMALL:-0}
BACKENDS=${GPU_CHECK_BACKENDS:-jax torch}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3 XLA_PYTHON_CLIENT_PREALLOCATE=false
START=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PARTS="$OUT/parts"
mkdir -p "$PARTS"

if [ "$SMALL" = 1 ]; then
  # float32: bfloat16 is emulated, and very slow, on CPUs without bf16 instructions
  MODEL=wrn16-1; BATCH=16; STEPS=2; WARMUP=1; N_TRAIN=256; DEVICE=auto; PRECISION=float32
  SLOW=4  # step time limits x4: a shared 2-core CPU, not a GPU
  TESTS="tests/test_layers.py"
  echo "=== GPU_CHECK_SMALL=1: reduced sizes, no GPU required (a dry run of the script)"
else
  MODEL=wrn28-4; BATCH=128; STEPS=10; WARMUP=3; N_TRAIN=50000; DEVICE=gpu
  PRECISION=mixed_bfloat16; SLOW=1
  TESTS="tests/test_layers.py tests/test_rms_norm.py tests/test_topk.py tests/test_topk_fastpath.py tests/test_callbacks.py"
fi
TESTS=$(for f in $TESTS; do [ -f "$f" ] && echo -n "$f "; done)
step() { echo; echo "=== [$(( $(date +%s) - START )) s] $*"; }
# Every step runs under a timeout capped by what is left of the budget (the report is written
# inside 8 minutes even if a step hangs): GPU_CHECK_BUDGET_S, default 460 s (2400 s when small).
BUDGET=${GPU_CHECK_BUDGET_S:-$([ "$SMALL" = 1 ] && echo 2400 || echo 460)}
cap() {
  local want=$(( $1 * SLOW )) left=$(( BUDGET - ($(date +%s) - START) ))
  [ "$left" -lt "$want" ] && want=$left
  [ "$want" -lt 5 ] && want=5
  echo "$want"
}

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  | tee "$PARTS/nvidia_smi.txt" || echo "nvidia-smi: not available" | tee "$PARTS/nvidia_smi.txt"
"$PY" --version

step "wheels (.whl/ -> $WORK/site, offline)"
NEED=()
for pair in keras:keras namex:namex optree:optree pytest:pytest pluggy:pluggy iniconfig:iniconfig; do
  module=${pair%%:*}; dist=${pair##*:}
  if "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$module') is None)"; then
    echo "$module: already there ($("$PY" -c "import importlib.metadata as m; print(m.version('$dist'))" 2>/dev/null))"
  else
    wheel=$(ls .whl/${dist}-*.whl 2>/dev/null | head -n 1)
    if [ -z "$wheel" ]; then
      echo "MISSING: $module is not importable and no .whl/${dist}-*.whl is there (see this script's header)"
    else
      NEED+=("$wheel")
    fi
  fi
done
if [ ${#NEED[@]} -gt 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "${NEED[@]}" \
    || echo "pip could not install: ${NEED[*]}"
fi
export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
KERAS_BACKEND=${BACKENDS%% *} "$PY" -c "import keras; print('keras', keras.__version__)" \
  || { echo "keras cannot be imported: stop"; exit 1; }

step "devices each backend sees"
for b in $BACKENDS; do
  timeout "$(cap 90)" "$PY" -m kerasparse.cli info --backend "$b" --json > "$PARTS/info_$b.json" \
    || echo "{\"backend\": \"$b\", \"error\": \"kerasparse info failed\"}" > "$PARTS/info_$b.json"
  cat "$PARTS/info_$b.json"; echo
done

step "tests on the GPU ($TESTS) and the CIFAR-shaped set, at the same time"
DATA="$WORK/cifar"
( timeout "$(cap 200)" "$PY" -m kerasparse.data write-cifar10 "$DATA" "$N_TRAIN" > "$PARTS/data.txt" 2>&1
  echo "rc=$?" >> "$PARTS/data.txt" ) &
data_pid=$!
pids=()
for b in $BACKENDS; do
  ( KERAS_BACKEND=$b timeout "$(cap 200)" "$PY" -m pytest -v -p no:cacheprovider $TESTS \
      --junitxml="$PARTS/tests_$b.xml" > "$PARTS/tests_$b.txt" 2>&1
    echo "rc=$?" >> "$PARTS/tests_$b.txt" ) &
  pids+=($!)
done
wait "${pids[@]}" "$data_pid"
for b in $BACKENDS; do echo "--- $b:"; grep -E "FAILED|ERROR" "$PARTS/tests_$b.txt" | head -n 20; tail -n 2 "$PARTS/tests_$b.txt"; done
cat "$PARTS/data.txt"

step "input pipeline alone on this machine's cores (CIFAR-shaped, batch 128, crop + flip)"
KERAS_BACKEND=${BACKENDS%% *} timeout "$(cap 90)" "$PY" -m kerasparse.cli bench --input-pipeline \
  --dataset cifar10 --data-dir "$DATA" --batch-size 128 --augment --json \
  > "$PARTS/input_pipeline.json" || echo "input-pipeline bench failed"
tail -c 600 "$PARTS/input_pipeline.json"; echo

step "bench $MODEL, batch $BATCH, $PRECISION: ReLU and r = 1, 0.5, 0.2, 0.05 (interleaved)"
for b in $BACKENDS; do
  KERAS_BACKEND=$b timeout "$(cap 240)" "$PY" benchmarks/gpu_topk_bench.py --model "$MODEL" \
    --batch-size "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --precision "$PRECISION" \
    --keep-ratios 1,0.5,0.2,0.05 > "$PARTS/bench_$b.json" || echo "bench on $b failed or timed out"
  cat "$PARTS/bench_$b.json"; echo
done

step "2 epochs of kerasparse train --model $MODEL on the CIFAR-shaped set"
for b in $BACKENDS; do
  KERAS_BACKEND=$b timeout "$(cap 200)" "$PY" -m kerasparse.cli train --backend "$b" --model "$MODEL" \
    --dataset cifar10 --data-dir "$DATA" --epochs 2 --batch-size "$BATCH" \
    --precision "$PRECISION" --controller mult --device "$DEVICE" --quiet \
    --out "$OUT/train_$b" --overwrite || echo "train on $b failed (exit $?)"
  [ -f "$OUT/train_$b/history.csv" ] && cat "$OUT/train_$b/history.csv" | cut -c1-200
done

step "report"
"$PY" benchmarks/gpu_check_report.py "$OUT" "$SMALL" "$START" "$BACKENDS" "$N_TRAIN"
step "done: $OUT/gpu_check.json, $LOG"
