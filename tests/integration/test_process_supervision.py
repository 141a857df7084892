"""Process supervision from a recipe, end to end on real components: a cold start on arithmetic working, then
an RL stage with `algorithm.supervision: process` and the `arithmetic_steps` step reward. Its steps are
found in the sampled text, mapped to the sampled tokens, and the per-token advantages vary along responses."""

from __future__ import annotations

import pytest

from grpo.metrics import read_metrics
from grpo.recipe import validate_recipe
from pipelines.runner import run_recipe

pytestmark = pytest.mark.slow

ACCURACY = {"name": "exact_match", "kwargs": {"extractor": "answer_tag"}}


def test_process_supervision_recipe_runs_and_its_advantages_vary_along_responses(ray_session, tiny_qwen2_dir,
                                                                                    tmp_path):
    stages = [
        {"name": "cold_start", "type": "sft", "template": "plain", "epochs": 3, "batch_size": 16,
         "data": {"source": "task:arithmetic", "n": 400, "seed": 1, "imperfections": {"forgotten_carries": 0.3}},
         "optim": {"lr": 3e-3}},
        {"name": "grpo", "type": "rl", "template": "plain", "data": {"source": "task:arithmetic", "n": 32, "seed": 2},
         "rewards": [ACCURACY, {"name": "format", "weight": 0.2}], "step_reward": {"name": "arithmetic_steps"}, "steps": 2, "prompts_per_step": 4,
         "rollout": {"max_completion_length": 64, "kv_cache_gib": 0.5},
         "algorithm": {"num_generations": 4, "supervision": "process"}, "learner": {"lr": 1e-4}},
    ]
    recipe = validate_recipe({"name": "process", "seed": 0, "output_dir": str(tmp_path / "run"),
                              "model": {"path": str(tiny_qwen2_dir)}, "stages": stages})
    state = run_recipe(recipe, tmp_path / "recipe.yaml", echo=lambda line: None)

    assert [s["status"] for s in state["stages"].values()] == ["finished", "finished"]
    history = read_metrics(tmp_path / "run" / "stages" / "grpo" / "metrics.jsonl")
    assert len(history) == 2
    for metrics in history:
        assert metrics["process/steps_per_sample"] > 0  # the cold-started model writes working to check
        assert metrics["process/token_advantage_spread"] > 0  # advantages differ within a response
        assert metrics["process/step_reward_errors"] == 0
        assert metrics["rollout/logprob_mismatch"] <= 1e-3
