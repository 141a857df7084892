#!/usr/bin/env bash
# System packages the code sandbox needs; called by scripts/setup.sh. Idempotent: when everything is there
# it only looks (well under a second) and installs nothing.
#
# The sandbox uses kernel interfaces only (namespaces, cgroup v1 memory+pids, Landlock, seccomp, setuid),
# reached through the Python standard library's ctypes. Its one run-time system dependency is libffi,
# which _ctypes loads; it is installed only if the dynamic loader cannot find it. No bubblewrap, no
# libseccomp: the seccomp filter and the Landlock rules are built in Python (sandbox/runtime/).
# Kernel features cannot be apt-installed: they are reported here, and `grpo sandbox check` shows what the
# fork server actually gets.
set -euo pipefail

if ! ldconfig -p 2>/dev/null | grep -q 'libffi\.so\.'; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_system: libffi is missing; install it (Debian: apt-get install libffi8)" >&2
    exit 1
  fi
  echo "setup_system: installing libffi (needed by Python's ctypes, which the sandbox uses)"
  apt-get update -qq
  package=$(apt-cache show libffi8 >/dev/null 2>&1 && echo libffi8 || echo libffi7)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package"
fi

for controller in memory pids; do
  if [[ ! -w /sys/fs/cgroup/$controller ]]; then
    echo "setup_system: note: no writable cgroup v1 '$controller' controller at /sys/fs/cgroup/$controller;" \
         "the sandbox will refuse to run unless allowed weaker isolation" >&2
  fi
done
echo "setup_system: ok"
