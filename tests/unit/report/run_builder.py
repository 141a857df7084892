"""Synthetic run directories in the runner's layout (pipelines/runner.py), for the report tests.

Metrics go through the real MetricsLogger, so metrics.jsonl and the TensorBoard event files are the ones
a real run writes; the curves are shaped like a learning run (reward and accuracy up, KL up, entropy down).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import yaml

from grpo.checkpoint import checkpoint_dir, write_json
from grpo.metrics import MetricsLogger

RL_STEPS = 12
FAIL_AFTER = 7  # the failed run's RL stage logs this many steps, then raises
TRACEBACK = """Traceback (most recent call last):
  File "/work/main/pipelines/runner.py", line 67, in run_recipe
    result = runners[stage.type](stage, ctx)
  File "/work/main/grpo/driver.py", line 124, in run
    metrics = self.step(step, sampler, composer, learners, workers, samples_log)
  File "/work/main/grpo/learner/learner.py", line 88, in train
    raise RuntimeError("loss is NaN at micro-batch 3")
RuntimeError: loss is NaN at micro-batch 3
"""


def rl_metrics(step: int) -> dict[str, float]:
    """Step `step` of a run that learns: the names of the driver (grpo/driver.py)."""
    progress = step / RL_STEPS
    return {
        "reward/mean": 0.2 + 0.6 * progress, "reward/std": 0.3, "reward/math_accuracy": 0.1 + 0.6 * progress,
        "reward/format": 0.5 + 0.4 * progress, "reward/errors": 0.0, "accuracy": 0.1 + 0.6 * progress,
        "length/mean": 120 + 10 * math.sin(step), "length/max": 256.0, "length/clipped_frac": 0.05 * progress,
        "kl/ref": 0.001 * step, "entropy": 1.5 - 0.5 * progress, "clip_frac/low": 0.01, "clip_frac/high": 0.02,
        "rollout/logprob_mismatch": 1e-6, "timing/generate": 2.0, "timing/reward": 0.2,
        "timing/learner": 1.5, "timing/sync": 0.1, "throughput/rollout_tokens_per_s": 550.0,
        "loss/policy": -0.01 * progress, "moe/max_load/layer0": 0.4, "frac_zero_adv_groups": 0.25,
    }


def build_run(root: Path, *, failed: bool = False) -> Path:
    """sft (finished) -> grpo (rl: finished, or failed after FAIL_AFTER steps) -> eval (finished or pending)."""
    run_dir = root / "tiny-r1"
    stages = [{"name": "sft", "type": "sft"}, {"name": "grpo", "type": "rl", "steps": RL_STEPS},
              {"name": "eval", "type": "eval"}]
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump({"name": "tiny-r1", "stages": stages}))
    now = time.time()
    state = {"recipe": "tiny-r1", "stages": {
        "sft": {"status": "finished", "type": "sft", "started": now - 60, "seconds": 12.5,
                "model": str(run_dir / "stages/sft/model"), "summary": {"loss first": 3.2, "loss last": 1.1}}}}

    grpo_dir = run_dir / "stages" / "grpo"
    logger = MetricsLogger(grpo_dir)
    steps = FAIL_AFTER if failed else RL_STEPS
    for step in range(1, steps + 1):
        logger.log(step, rl_metrics(step))
    logger.close()
    with (grpo_dir / "samples.jsonl").open("w") as f:
        for step in range(1, steps + 1):
            for which, reward in (("best", 1.0 + step / 100), ("worst", 0.0)):
                f.write(_sample_line(step, which, reward))
    for step in range(5, steps + 1, 5):
        (checkpoint_dir(grpo_dir / "checkpoints", step) / "model").mkdir(parents=True)

    if failed:
        state["stages"]["grpo"] = {"status": "failed", "type": "rl", "started": now - 40,
                                   "error": "RuntimeError: loss is NaN at micro-batch 3", "traceback": TRACEBACK}
    else:
        state["stages"]["grpo"] = {"status": "finished", "type": "rl", "started": now - 40, "seconds": 30.0,
                                   "model": str(grpo_dir / "model"), "summary": {}}
        eval_dir = run_dir / "stages" / "eval"
        eval_dir.mkdir(parents=True)
        results = {"current": {"pass@1": 0.45, "any_of_1": 0.45, "mean_length": 118.0},
                   "@base": {"pass@1": 0.12, "any_of_1": 0.12, "mean_length": 140.0}}
        write_json(eval_dir / "results.json", results)
        state["stages"]["eval"] = {"status": "finished", "type": "eval", "started": now - 5, "seconds": 4.0,
                                   "model": None, "summary": results}
        state["finished"] = now
    write_json(run_dir / "run_state.json", state)
    return run_dir


def _sample_line(step: int, which: str, reward: float) -> str:
    completion = f"<think>step {step}: 3 + 4 = 7</think> <answer>{7 if which == 'best' else 8}</answer>"
    return json.dumps({"step": step, "which": which, "prompt": f"What is 3 + 4? (step {step})",
                       "completion": completion, "reward": reward,
                       "components": {"math_accuracy": 1.0 if which == "best" else 0.0, "format": 1.0}}) + "\n"
