#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole suite (unit, integration with real vLLM and Ray,
# adversarial sandbox, end to end). Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
# --real-model: the SmolLM2 tests (tests/integration/test_real_model.py) run on the real model, installed here.
bash scripts/setup.sh --real-model
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q -rs --durations=15 "$@"
