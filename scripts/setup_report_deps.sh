#!/usr/bin/env bash
# System packages for the run report's browser test (tests/integration/test_report_chromium.py): Debian's
# chromium renders the report headless. Idempotent: returns at once when chromium is already installed.
# Needs root (apt-get); scripts/setup.sh calls it.
set -euo pipefail
if dpkg -s chromium >/dev/null 2>&1; then
  exit 0
fi
echo "setup: installing chromium (apt) for the report's browser test"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
