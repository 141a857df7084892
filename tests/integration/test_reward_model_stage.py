"""The `reward_model` pipeline stage trains a Bradley-Terry reward model on preference pairs from a recipe,
raises held-out pairwise accuracy, and writes a model the `reward_model` reward loads."""

from __future__ import annotations

import json
import random
from pathlib import Path

from grpo.recipe import load_recipe
from pipelines.runner import run_recipe
from rewards.compose import RewardComposer
from rewards.spec import RewardSpec


def write_pairs(path: Path, n: int, seed: int) -> None:
    """Sums where the preferred completion is right and says it checked; the rejected one is off."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            f.write(json.dumps({"prompt": f"What is {a} + {b}? ", "chosen": f"The answer is {a + b}. I checked it.",
                                "rejected": f"The answer is {a + b + rng.randint(1, 9)}. Whatever."}) + "\n")


def test_reward_model_stage(tiny_qwen2_dir, tmp_path):
    write_pairs(tmp_path / "train.jsonl", 64, seed=0)
    write_pairs(tmp_path / "held_out.jsonl", 32, seed=1)
    recipe_path = tmp_path / "rm.yaml"
    recipe_path.write_text(json.dumps({
        "name": "rm", "output_dir": str(tmp_path / "run"), "model": {"path": str(tiny_qwen2_dir)},
        "stages": [{"name": "rm", "type": "reward_model", "pairs": "train.jsonl", "eval_pairs": "held_out.jsonl",
                    "epochs": 3, "lr": 1e-3, "batch_size": 16, "max_length": 64}],
    }))
    state = run_recipe(load_recipe(recipe_path), recipe_path, echo=lambda _: None)
    summary = state["stages"]["rm"]["summary"]
    assert summary["held-out accuracy after"] >= 0.9 > summary["held-out accuracy before"]

    rm_dir = summary["reward_model"]
    with RewardComposer([RewardSpec(name="reward_model", kwargs={"model_path": rm_dir})]) as composer:
        scored = composer(["The answer is 5. I checked it.", "The answer is 9. Whatever."],
                          {"prompt": ["What is 2 + 3? "] * 2})
    good, bad = scored.components["reward_model"]
    assert good > bad
