#!/usr/bin/env bash
# The GPU paths in one command, for a CUDA machine (aimed at one H100, at most 8 minutes in all):
#   1. scripts/setup.sh: .venv with the regular (CUDA) vllm wheel, chosen because nvidia-smi answers
#   2. tests/integration/test_gpu.py (marker `gpu`): a CUDA rollout worker and its weight sync, proven by
#      log-prob parity with the learner (and a stale engine shown to fail it), a bf16 learner step on the
#      GPU, an eval stage whose vLLM worker takes the GPU by default, and 4 RL steps with the rollout worker
#      and the learner sharing the GPU
#   3. one table of the figures those tests record
# Usage: bash scripts/gpu_check.sh            (exit status: the tests'; 2 without a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no CUDA device (nvidia-smi is missing or sees no GPU); run this on a GPU machine" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

timeout 240 bash scripts/setup.sh
setup_s=$(( $(date +%s) - started ))

figures=$(mktemp -t gpu-check-XXXXXX.jsonl)
trap 'rm -f "$figures"' EXIT
status=0
# What is left of the 8 minutes, less 20 s for the table.
budget=$(( 480 - setup_s - 20 ))
(( budget > 60 )) || { echo "gpu_check: setup took ${setup_s}s, too little time is left for the tests" >&2; exit 1; }
GPU_CHECK_FIGURES=$figures timeout "$budget" .venv/bin/python -m pytest -q -rs -m gpu -p no:cacheprovider \
  tests/integration/test_gpu.py || status=$?

.venv/bin/python - "$figures" "$setup_s" "$(( $(date +%s) - started ))" "$status" <<'PY'
import json
import sys

import torch
import vllm

path, setup_s, total_s, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(line) for line in open(path)]
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"\ngpu_check on {device}, vllm {vllm.__version__}, torch {torch.__version__}")
rows += [{"check": "setup", "figure": "scripts/setup.sh", "value": setup_s, "unit": "s"},
         {"check": "total", "figure": "wall time", "value": total_s, "unit": "s"}]
width = max(len(r["check"]) for r in rows)
fwidth = max(len(r["figure"]) for r in rows)
print(f"{'check':<{width}}  {'figure':<{fwidth}}  value")
for r in rows:
    value = r["value"]
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    print(f"{r['check']:<{width}}  {r['figure']:<{fwidth}}  {text} {r['unit']}".rstrip())
print("tests: passed" if status == 0 else f"tests: FAILED (pytest exit status {status}; 124: out of time)")
PY
exit $status
