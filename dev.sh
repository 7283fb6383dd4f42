#!/usr/bin/env bash
# kerasparse set-up and main jobs. Usage:
#   bash dev.sh quickstart   # install, then a short real training run (offline, embedded data)
#   bash dev.sh test         # install, then the whole test suite (jax, torch, tensorflow)
#   bash dev.sh install      # install only
# Installs into the active Python environment (activate a venv first if you want one).
#
# CPU machines get all three backends (CPU wheels) and tensorflow-datasets. A machine with an
# NVIDIA GPU gets ONE backend, as a CUDA build (Keras recommends one backend per environment on
# GPUs: their CUDA libraries conflict): KERASPARSE_BACKEND=jax (default), torch or tensorflow.
# There `quickstart` trains on the GPU (--device gpu: it stops if the backend sees none) and
# `test` runs the suite on that backend.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
BACKEND=${KERASPARSE_BACKEND:-jax}

has_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

cuda_major() {  # the CUDA version the driver supports, e.g. 13 (nvidia-smi's header)
  nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1
}

install() {
  if has_gpu; then
    local extra
    case "$BACKEND" in
      jax)
        if [ "$(cuda_major)" -ge 13 ] 2>/dev/null; then extra=jax-cuda13; else extra=jax-cuda12; fi ;;
      torch) extra=torch ;;  # PyPI's Linux wheel is a CUDA build
      tensorflow) extra=tensorflow-cuda,tfds ;;
      *) echo "KERASPARSE_BACKEND must be jax, torch or tensorflow (got '$BACKEND')" >&2; exit 2 ;;
    esac
    echo "GPU machine: installing the $BACKEND backend as a CUDA build (.[$extra]);" \
         "another backend: KERASPARSE_BACKEND=torch|tensorflow, in another environment"
    "$PY" -m pip install -q -e ".[$extra,test]"
  else
    # CPU-only machines. torch==2.13.0 first: PyPI's Linux wheel is a CUDA build (several GB);
    # the CPU wheel comes from https://download.pytorch.org/whl/cpu (set
    # TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu), and the project's machines have it
    # locally. tensorflow-cpu: the CPU-only TensorFlow (the tensorflow backend and tfds).
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
      "$PY" -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
    else
      "$PY" -m pip install -q "torch==2.13.0"
    fi
    "$PY" -m pip install -q "tensorflow-cpu>=2.17"
    "$PY" -m pip install -q -e ".[jax,torch,tfds,test]"
  fi
}

run_tests() {
  local report_dir status=0 backend backends
  if has_gpu; then backends=${KERASPARSE_TEST_BACKENDS:-$BACKEND}
  else backends=${KERASPARSE_TEST_BACKENDS:-jax torch tensorflow}; fi
  report_dir=$(mktemp -d)
  for backend in $backends; do
    echo "=== tests on backend: $backend"
    if ! KERAS_BACKEND=$backend "$PY" -m pytest -q -p no:cacheprovider \
        --junitxml="$report_dir/$backend.xml" "$@"; then
      status=1
    fi
  done
  "$PY" - "$report_dir" <<'PYEOF'
import sys, pathlib, xml.etree.ElementTree as ET
totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in totals}
    for k in totals:
        totals[k] += counts[k]
    bad = counts["failures"] + counts["errors"]
    print(f"{path.stem}: {counts['tests'] - bad - counts['skipped']} passed, {bad} failed, {counts['skipped']} skipped")
bad = totals["failures"] + totals["errors"]
print(f"all: {totals['tests'] - bad - totals['skipped']} passed, {bad} failed, {totals['skipped']} skipped")
PYEOF
  return $status
}

case "${1:-}" in
  install) install ;;
  test) shift; install; run_tests "$@" ;;
  quickstart)
    install
    out="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
    if has_gpu; then
      KERAS_BACKEND=$BACKEND kerasparse train --config configs/quickstart.toml --device gpu --out "$out"
    else
      kerasparse train --config configs/quickstart.toml --out "$out"
    fi
    ;;
  *) echo "usage: bash dev.sh {quickstart|test [pytest args]|install}" >&2; exit 2 ;;
esac
