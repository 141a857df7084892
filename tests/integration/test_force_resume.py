"""`--force` runs a finished RL stage again from its start, a changed config is refused on resume, and a
grown `steps` continues a finished stage: real RL stages (vLLM, Ray, the learner) through the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import UserError
from grpo.metrics import read_metrics
from grpo.recipe import validate_recipe
from pipelines.runner import run_recipe

pytestmark = pytest.mark.slow


def _recipe(run_dir: Path, model_dir: Path, **grpo) -> dict:
    stage = {"name": "grpo", "type": "rl", "template": "plain",
             "data": {"source": "task:arithmetic", "n": 16, "seed": 2},
             "rewards": [{"name": "format"}], "steps": 2, "prompts_per_step": 2, "checkpoint_every": 1,
             "rollout": {"max_completion_length": 16, "kv_cache_gib": 0.5}, "algorithm": {"num_generations": 2},
             "learner": {"lr": 1e-4}}
    for key, value in grpo.items():
        section, _, field = key.rpartition("__")
        (stage[section] if section else stage)[field] = value
    return validate_recipe({"name": "force", "seed": 0, "output_dir": str(run_dir),
                            "model": {"path": str(model_dir)}, "stages": [stage]})


def _run(recipe, tmp_path, force=None) -> list[str]:
    lines: list[str] = []
    run_recipe(recipe, tmp_path / "recipe.yaml", force=force, echo=lines.append)
    return lines


def test_force_restarts_a_finished_rl_stage_and_resume_refuses_a_changed_config(ray_session, tiny_qwen2_dir,
                                                                                 tmp_path):
    run_dir = tmp_path / "run"
    stage_dir = run_dir / "stages" / "grpo"
    _run(_recipe(run_dir, tiny_qwen2_dir), tmp_path)
    first = read_metrics(stage_dir / "metrics.jsonl")
    assert [m["step"] for m in first] == [1, 2]

    lines = _run(_recipe(run_dir, tiny_qwen2_dir), tmp_path, force=["grpo"])
    assert any("[grpo] step 1/2" in line for line in lines)  # it trained from step 0, not from the checkpoint
    forced = read_metrics(stage_dir / "metrics.jsonl")
    assert [m["step"] for m in forced] == [1, 2]  # the new run's lines only
    assert min(m["time"] for m in forced) > max(m["time"] for m in first)
    assert any("[grpo] --force: runs again from its start" in line for line in lines)
    assert {json.loads(line)["step"] for line in (stage_dir / "samples.jsonl").read_text().splitlines()} == {1, 2}
    assert len(list((stage_dir / "tensorboard").iterdir())) == 1  # one event file: the new run's

    # A finished stage whose config changed is refused, before anything runs.
    with pytest.raises(UserError, match=r"stage 'grpo' changed since it finished: learner.lr 0.0001 -> 1e-05; "
                                        r"rerun with --force grpo"):
        _run(_recipe(run_dir, tiny_qwen2_dir, learner__lr=1e-5), tmp_path)
    # So is an interrupted one (a killed run leaves its stage "running"), by the RL loop from its checkpoint.
    state_path = run_dir / "run_state.json"
    finished = state_path.read_text()
    state = json.loads(finished)
    state["stages"]["grpo"]["status"] = "running"
    state_path.write_text(json.dumps(state))
    with pytest.raises(UserError, match=r"stage 'grpo' changed since its checkpoint step-000002: learner.lr "
                                        r"0.0001 -> 1e-05; rerun with --force grpo to start it again"):
        _run(_recipe(run_dir, tiny_qwen2_dir, learner__lr=1e-5), tmp_path)

    # steps may grow: the finished stage continues from its step-2 checkpoint.
    state_path.write_text(finished)
    lines = _run(_recipe(run_dir, tiny_qwen2_dir, steps=3), tmp_path)
    assert "[grpo] steps 2 -> 3: continues from its last checkpoint" in lines
    assert not any("[grpo] step 1/3" in line or "[grpo] step 2/3" in line for line in lines)
    assert any("[grpo] step 3/3" in line for line in lines)
    extended = read_metrics(stage_dir / "metrics.jsonl")
    assert [m["step"] for m in extended] == [1, 2, 3] and extended[:2] == forced
    assert json.loads(state_path.read_text())["stages"]["grpo"]["status"] == "finished"
