"""Which stages a rerun skips, continues or starts again (pipelines.runner.plan_stages), and the RL loop's
refusal to resume a checkpoint written with another config. No stage runs here: the plan is a function of
the recipe and the run state; tests/integration/test_force_resume.py runs it for real."""

from __future__ import annotations

import copy
import json

import pytest

from grpo.checkpoint import config_changes, config_fingerprint, describe_changes
from grpo.config import ClusterConfig
from grpo.driver import RLLoop
from common.errors import UserError
from grpo.recipe import validate_recipe
from pipelines.runner import plan_stages, stage_config, stage_inputs

DATA = {"source": "task:arithmetic", "n": 8}
REWARDS = [{"name": "format"}]
RAW = {"name": "plan", "model": {"make": "tiny-qwen2"}, "stages": [
    {"name": "cold_start", "type": "sft", "data": DATA},
    {"name": "grpo", "type": "rl", "data": DATA, "rewards": REWARDS, "steps": 2, "learner": {"lr": 1e-4}},
    {"name": "rs", "type": "rejection_sampling", "data": DATA, "rewards": REWARDS},
    {"name": "sft_rs", "type": "sft", "data": {"source": "@rs"}},
    {"name": "eval_base", "type": "eval", "model": "@base", "data": DATA, "rewards": REWARDS},
    {"name": "eval_cold", "type": "eval", "model": "@base", "models": ["@cold_start"], "data": DATA,
     "rewards": REWARDS},
]}


def _recipe(**grpo):
    raw = copy.deepcopy(RAW)
    for key, value in grpo.items():
        target = raw["stages"][1]
        *path, last = key.split("__")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return validate_recipe(raw)


def _finished(recipe) -> dict:
    """The run state after every stage of `recipe` finished."""
    return {"stages": {s.name: {"status": "finished", "config": stage_config(recipe, s)} for s in recipe.stages}}


def _actions(plan) -> dict[str, str]:
    return {name: action for name, (action, _) in plan.items()}


def test_stage_inputs_follow_the_default_model_and_each_reference():
    assert stage_inputs(_recipe()) == {
        "cold_start": set(), "grpo": {"cold_start"}, "rs": {"grpo"}, "sft_rs": {"grpo", "rs"},
        "eval_base": set(), "eval_cold": {"cold_start"}}


def test_a_finished_run_is_skipped_and_force_reruns_the_stage_and_its_readers():
    recipe = _recipe()
    state = _finished(recipe)
    assert set(_actions(plan_stages(recipe, state, [])).values()) == {"skip"}
    plan = plan_stages(recipe, state, ["grpo"])
    assert _actions(plan) == {"cold_start": "skip", "grpo": "restart", "rs": "restart", "sft_rs": "restart",
                              "eval_base": "skip", "eval_cold": "skip"}
    assert "--force: runs again from its start" in plan["grpo"][1]
    assert "reads the output of grpo" in plan["rs"][1]
    assert _actions(plan_stages(recipe, state, ["cold_start"]))["eval_cold"] == "restart"
    assert set(_actions(plan_stages(recipe, state, ["all"])).values()) == {"restart"}


def test_an_interrupted_stage_runs_and_reruns_its_finished_readers():
    recipe = _recipe()
    state = _finished(recipe)
    state["stages"]["grpo"]["status"] = "running"  # what a killed run leaves
    assert _actions(plan_stages(recipe, state, [])) == {
        "cold_start": "skip", "grpo": "run", "rs": "restart", "sft_rs": "restart", "eval_base": "skip",
        "eval_cold": "skip"}


def test_a_changed_finished_stage_is_refused_naming_what_changed():
    state = _finished(_recipe())
    with pytest.raises(UserError, match=r"stage 'grpo' changed since it finished: learner.lr 0.0001 -> 1e-05; "
                                        r"rerun with --force grpo to run it again"):
        plan_stages(_recipe(learner__lr=1e-5), state, [])
    assert _actions(plan_stages(_recipe(learner__lr=1e-5), state, ["grpo"]))["grpo"] == "restart"
    with pytest.raises(UserError, match=r"stage 'grpo' changed since it finished: input.model \"@cold_start\" "
                                        r"-> \"@base\""):
        plan_stages(_recipe(model="@base"), state, [])


def test_steps_may_grow_and_placement_may_change_on_a_finished_stage():
    state = _finished(_recipe())
    plan = plan_stages(_recipe(steps=4), state, [])
    assert _actions(plan)["grpo"] == "run" and "steps 2 -> 4: continues from its last checkpoint" in plan["grpo"][1]
    assert _actions(plan)["rs"] == "restart"  # it read the 2-step model
    assert _actions(plan_stages(_recipe(rollout__num_workers=2, learner__num_learners=2), state, []))["grpo"] == "skip"
    with pytest.raises(UserError, match="stage 'grpo' finished 2 steps; steps 1 would undo some"):
        plan_stages(_recipe(steps=1), state, [])


def test_force_names_an_existing_stage():
    with pytest.raises(UserError, match=r"--force gpro: no such stage \(stages: cold_start, grpo, rs"):
        plan_stages(_recipe(), {"stages": {}}, ["gpro"])


def test_config_changes_ignore_keys_one_side_lacks():
    changes = config_changes({"a": 1, "b": "x", "old": 0}, {"a": 2, "b": "x", "new": 0})
    assert changes == {"a": (1, 2)} and describe_changes(changes) == "a 1 -> 2"


def _loop(recipe, tmp_path) -> RLLoop:
    stage = recipe.stages[1]
    return RLLoop(stage, tmp_path / "model", tmp_path / "stage", seed=0, cluster=ClusterConfig(),
                  config=stage_config(recipe, stage))


def _checkpoint(tmp_path, recipe, step: int):
    config = stage_config(recipe, recipe.stages[1])
    path = tmp_path / "stage" / "checkpoints" / f"step-{step:06d}"
    path.mkdir(parents=True)
    (path / "state.json").write_text(json.dumps({"step": step, "config": config,
                                                 "fingerprint": config_fingerprint(config)}))
    return path


def test_resuming_a_checkpoint_of_another_config_is_refused(tmp_path):
    checkpoint = _checkpoint(tmp_path, _recipe(learner__lr=3e-5), 2)
    with pytest.raises(UserError, match=r"stage 'grpo' changed since its checkpoint step-000002: learner.lr "
                                        r"3e-05 -> 1e-05; rerun with --force grpo to start it again"):
        _loop(_recipe(learner__lr=1e-5), tmp_path)._check_resumable(checkpoint)
    assert _loop(_recipe(learner__lr=3e-5, steps=5, learner__token_budget=64), tmp_path)._check_resumable(
        checkpoint) == 2
    with pytest.raises(UserError, match="steps 1 is below its checkpoint's step 2"):
        _loop(_recipe(learner__lr=3e-5, steps=1), tmp_path)._check_resumable(checkpoint)


def test_a_resume_drops_the_log_lines_after_its_checkpoint(tmp_path):
    loop = _loop(_recipe(), tmp_path)
    (tmp_path / "stage").mkdir()
    lines = [json.dumps({"step": step, "reward/mean": 0.5}) + "\n" for step in (1, 2, 3)]
    (tmp_path / "stage" / "metrics.jsonl").write_text("".join(lines) + '{"step": 4, "rew')  # cut short by a kill
    loop._rewind_logs(2)
    assert (tmp_path / "stage" / "metrics.jsonl").read_text() == "".join(lines[:2])
