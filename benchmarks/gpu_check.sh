#!/usr/bin/env bash
# One command for a machine with a CUDA GPU and CuPy: the GPU tests, then CupyBackend against
# NumpyBackend through open_capture (benchmarks/bench_gpu_check.py).
#
#   python3 -m venv .venv && .venv/bin/pip install -e '.[test,gpu]' && benchmarks/gpu_check.sh
#
# Prints one verdict line per check (PASS|FAIL measure ours baseline ratio target) and exits
# non-zero when any check fails or cannot run. PYTHON overrides the interpreter
# (default: .venv/bin/python when it exists, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
failed=0

# Without a GPU the plugin would skip every GPU test: say why and stop instead.
if ! reason=$("$python" -c '
import sys
from pytest_replay.megakernel import gpu_available
ok, why = gpu_available()
print(why)
sys.exit(0 if ok else 1)
'); then
  echo "FAIL gpu_available no - - CuPy+GPU (${reason:-pytest_replay does not import})"
  exit 2
fi
echo "# $reason"

# The GPU tests, under the marker's new name (replay_gpu) where the plugin registers it, else
# its old one (gpu): --strict-markers refuses an unknown name even inside -m.
marker=gpu
if "$python" -m pytest --markers 2>/dev/null | grep -q '^@pytest.mark.replay_gpu'; then
  marker=replay_gpu
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$python" -m pytest tests -q -p no:randomly -m "$marker" -rs 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(tail -n 1 "$log")
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
if [ "$status" -eq 0 ] && [ "$passed" -gt 0 ] && ! grep -qE '[0-9]+ (skipped|xfailed)' <<<"$summary"; then
  echo "PASS gpu_tests $passed - - all-pass-none-skipped"
else
  echo "FAIL gpu_tests $passed - - all-pass-none-skipped (pytest: $summary)"
  failed=1
fi

"$python" benchmarks/bench_gpu_check.py "$@" || failed=1
exit "$failed"
