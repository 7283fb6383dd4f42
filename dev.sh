#!/usr/bin/env bash
# kerasparse set-up and main jobs. Usage:
#   bash dev.sh quickstart   # install, then a short real training run (offline, embedded data)
#   bash dev.sh test         # install, then the whole test suite on jax, torch and tensorflow
#   bash dev.sh install      # install only
# Installs into the active Python environment (activate a venv first if you want one).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

install() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # A GPU machine: the normal (CUDA-enabled) wheels of every backend.
    "$PY" -m pip install -q -e ".[all,test]"
  else
    # CPU-only machines: torch==2.13.0 first (a CPU wheel is available locally on the
    # project's machines; an unpinned torch would pull several GB of CUDA packages), and the
    # CPU-only TensorFlow distribution. Both satisfy the package's own ranges.
    "$PY" -m pip install -q "torch==2.13.0"
    "$PY" -m pip install -q "tensorflow-cpu>=2.17"
    "$PY" -m pip install -q -e ".[jax,torch,test]"
  fi
}

run_tests() {
  local report_dir status=0 backend
  report_dir=$(mktemp -d)
  for backend in jax torch tensorflow; do
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
    kerasparse train --config configs/quickstart.toml --out "$out"
    ;;
  *) echo "usage: bash dev.sh {quickstart|test [pytest args]|install}" >&2; exit 2 ;;
esac
