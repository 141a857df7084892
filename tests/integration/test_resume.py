"""Kill a run with SIGKILL in the middle of RL training, resume it with `grpo run --resume`, and compare
its final weights with an uninterrupted run of the same deterministic config. Both runs are real `grpo run`
processes joining the test session's external Ray cluster (started with `ray start --head`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def recipe_file(tmp_path: Path, model_dir: Path, address: str) -> Path:
    recipe = {
        "name": "resume",
        "seed": 5,
        "model": {"path": str(model_dir)},
        "cluster": {"address": address},
        "stages": [{
            "name": "grpo", "type": "rl",
            "data": {"source": "task:arithmetic", "n": 64, "seed": 4},
            "rewards": [{"name": "exact_match", "kwargs": {"extractor": "answer_tag"}},
                        {"name": "format", "weight": 0.5}],
            "steps": 4, "prompts_per_step": 4, "checkpoint_every": 1,
            "rollout": {"max_completion_length": 24, "kv_cache_gib": 0.5},
            "algorithm": {"num_generations": 4},
            "learner": {"lr": 5e-3},
        }],
    }
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def grpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def test_sigkill_mid_training_then_resume_matches_uninterrupted(ray_cluster, tiny_qwen2_dir, tmp_path):
    recipe = recipe_file(tmp_path, tiny_qwen2_dir, ray_cluster)
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    subprocess.run(grpo("run", str(recipe), f"output_dir={run_a}"), check=True, timeout=600, cwd=tmp_path)

    proc = subprocess.Popen(grpo("run", str(recipe), f"output_dir={run_b}"), cwd=tmp_path, start_new_session=True)
    ckpt = run_b / "stages" / "grpo" / "checkpoints" / "step-000002"
    deadline = time.time() + 600
    while not ckpt.exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_b / "stages" / "grpo" / "model").exists()  # it really stopped mid-stage

    resumed = subprocess.run(grpo("run", str(recipe), f"output_dir={run_b}", "--resume"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps_logged = [line for line in resumed.stdout.splitlines() if "[grpo] step" in line]
    assert steps_logged and not any("step 1/4" in line for line in steps_logged)  # it did not start over

    a = load_file(str(run_a / "stages" / "grpo" / "model" / "model.safetensors"))
    b = load_file(str(run_b / "stages" / "grpo" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() == 0, key  # bitwise: same data, seeds, kernels and order

    rerun = subprocess.run(grpo("run", str(recipe), f"output_dir={run_b}"), cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0
    assert "[grpo] finished earlier, skipped" in rerun.stdout
