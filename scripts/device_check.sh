#!/usr/bin/env bash
# The CUDA checks, as one script for a lent GPU machine (the device tool's `run`, carrying `.whl`).
# Build the wheel first, here: `pip wheel --no-deps . -w .whl`. Everything it writes lands in $OUT
# (at most 8 files). -P keeps the checkout's ibcheck/ from shadowing the installed package, whose
# ibcheck.baselines maps the top-level baselines/ folder.
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --force-reinstall .whl/ibcheck-*.whl > "$OUT/setup.log" 2>&1 || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__)"; } >> "$OUT/setup.log" 2>&1
{ time python3 -P -m pytest -p no:cacheprovider --run-gpu tests/test_gpu.py -q -rs; } > "$OUT/pytest_gpu.log" 2>&1
{ time python3 -P -m ibcheck validate --device cuda --quiet --out /tmp/validate-cuda --json "$OUT/validate_cuda.json"; } 2>&1 | tail -4 > "$OUT/validate_cuda.log"
PYTHONPATH=tests:tests/benchmarks python3 -P tools/device_timings.py --device cuda > "$OUT/timings.md" 2>&1
{ time python3 -P -m ibcheck train --preset smoke --out /tmp/runs/smoke --device cuda --quiet; } > "$OUT/train.log" 2>&1
{ time python3 -P -m ibcheck teacher --out /tmp/runs/teacher --device cuda --quiet; } >> "$OUT/train.log" 2>&1
# the paper preset, for as long as the budget allows: its records say how far it got
{ time timeout "${PAPER_SECONDS:-200}" python3 -P -m ibcheck train --out /tmp/runs/paper --teacher /tmp/runs/teacher \
    --device cuda --quiet; } >> "$OUT/train.log" 2>&1
cp /tmp/runs/paper/metrics.jsonl "$OUT/paper_metrics.jsonl" 2>/dev/null
echo done >> "$OUT/train.log"
