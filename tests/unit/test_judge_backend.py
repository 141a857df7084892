"""The judge reward's default backend, vllm, lives above rewards (it needs the rollout engine) and is registered
in one place that every path to a judge reward reaches: the grpo package itself (grpo/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["pipelines.eval", "grpo.data.tasks"])
def test_importing_any_grpo_module_registers_the_vllm_judge_without_loading_the_engine(module):
    """A stage that scores rewards without the RL loop (eval), and a module far from the rollout."""
    check = (f"import sys, {module}; from rewards.judge import _HOSTS; "
             "assert 'vllm' in _HOSTS, sorted(_HOSTS); assert 'vllm' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", check], check=True, cwd=ROOT, env=env, timeout=120)


def test_the_vllm_judge_is_registered_from_one_place():
    importers = sorted(str(path.relative_to(ROOT)) for package in ("grpo", "pipelines")
                       for path in (ROOT / package).rglob("*.py")
                       if "grpo.rollout.judge" in path.read_text() or "rollout import judge" in path.read_text())
    assert importers == ["grpo/__init__.py"]
