#!/usr/bin/env bash
# The main job: set up (idempotent), then run the default tiny recipe end to end on this machine.
# Extra arguments go to `grpo run` (e.g. overrides: scripts/main.sh stages.grpo.steps=5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/grpo run recipes/tiny/r1.yaml "$@"
