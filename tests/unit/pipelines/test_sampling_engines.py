"""The vLLM workers of the sampling stages (eval, rejection_sampling, distill): a field the stage's
`rollout:` leaves out follows the recipe's RL stage, the stage's own value wins, and without an RL stage
the defaults hold (one GPU per worker where the cluster has GPUs). Pure: no engine is started."""

from __future__ import annotations

from grpo.config import Recipe
from grpo.rollout.actor import engine_worker_options as worker_options


def recipe(eval_rollout=None, rl_rollout=None, with_rl=True, dtype="bfloat16") -> Recipe:
    eval_stage = {"name": "eval", "type": "eval", "data": {"source": "task:arithmetic", "n": 4},
                  "rewards": [{"name": "exact_match"}], "sampling": {"max_completion_length": 512}}
    if eval_rollout is not None:
        eval_stage["rollout"] = eval_rollout
    stages = [eval_stage]
    if with_rl:
        stages.insert(0, {"name": "grpo", "type": "rl", "data": {"source": "task:arithmetic", "n": 4},
                          "rewards": [{"name": "exact_match"}],
                          "rollout": rl_rollout or {"num_workers": 2, "num_gpus_per_worker": 1, "max_model_len": 4096,
                                                    "dtype": "float16", "kv_cache_gib": 8}})
    return Recipe.model_validate({"name": "t", "model": {"path": "org/model", "dtype": dtype}, "stages": stages})


def test_eval_workers_follow_the_rl_stage_rollout():
    r = recipe()
    engines = r.sampling_engines(r.stages[1])
    assert (engines.num_workers, engines.num_gpus_per_worker, engines.max_model_len, engines.dtype,
            engines.kv_cache_gib) == (2, 1, 4096, "float16", 8)
    options = worker_options(engines)
    assert options == {"n": 2, "num_cpus_per_worker": 1.0, "num_gpus_per_worker": 1, "dtype": "float16",
                       "max_model_len": 4096, "kv_cache_gib": 8, "gpu_memory_utilization": 0.9}


def test_the_stage_own_rollout_wins_field_by_field():
    r = recipe(eval_rollout={"max_model_len": 8192, "dtype": "bfloat16", "num_gpus_per_worker": 0.5})
    engines = r.sampling_engines(r.stages[1])
    assert (engines.num_gpus_per_worker, engines.max_model_len, engines.dtype) == (0.5, 8192, "bfloat16")
    assert (engines.num_workers, engines.kv_cache_gib) == (2, 8)  # not named by the stage: the RL stage's


def test_without_an_rl_stage_the_model_dtype_and_the_machine_decide():
    r = recipe(with_rl=False, dtype="bfloat16")
    on_cpu, on_gpus = r.sampling_engines(r.stages[0]), r.sampling_engines(r.stages[0], gpus=True)
    assert (on_cpu.num_gpus_per_worker, on_cpu.max_model_len, on_cpu.dtype) == (0, 1024, "bfloat16")
    assert on_gpus.num_gpus_per_worker == 1
    # A value the recipe gives is kept on a GPU cluster too.
    r = recipe(with_rl=False, eval_rollout={"num_gpus_per_worker": 0})
    assert r.sampling_engines(r.stages[0], gpus=True).num_gpus_per_worker == 0


def test_the_rl_stage_unset_fields_do_not_override_the_machine():
    r = recipe(rl_rollout={"max_model_len": 2048})
    engines = r.sampling_engines(r.stages[1], gpus=True)
    assert (engines.max_model_len, engines.num_gpus_per_worker, engines.num_workers) == (2048, 1, 1)


def test_a_fractional_gpu_gets_its_share_of_the_gpu_memory():
    r = recipe(eval_rollout={"num_gpus_per_worker": 0.5})
    assert worker_options(r.sampling_engines(r.stages[1]))["gpu_memory_utilization"] == 0.45
    r = recipe(eval_rollout={"num_gpus_per_worker": 0.5, "gpu_memory_utilization": 0.3})
    assert worker_options(r.sampling_engines(r.stages[1]))["gpu_memory_utilization"] == 0.3
    r = recipe(eval_rollout={"num_gpus_per_worker": 0})
    assert worker_options(r.sampling_engines(r.stages[1]))["gpu_memory_utilization"] is None


def test_the_distill_student_is_scored_with_the_stage_sampling_in_its_dtype():
    from pipelines.distill import student_probe

    r = Recipe.model_validate({"name": "t", "model": {"path": "org/teacher", "dtype": "bfloat16"}, "stages": [{
        "name": "distill", "type": "distill", "student": {"path": "org/student", "dtype": "float16"},
        "data": {"source": "task:arithmetic", "n": 4}, "rewards": [{"name": "exact_match"}],
        "sampling": {"temperature": 0.6, "top_p": 0.95, "max_completion_length": 700}, "max_length": 1024,
        "eval_data": {"source": "task:arithmetic", "n": 4, "split": "test"},
        "rollout": {"max_model_len": 1024}}]})
    stage = r.stages[0]
    probe, engines = student_probe(stage, r.sampling_engines(stage))
    assert probe.sampling == stage.sampling  # not greedy 256 tokens
    assert (engines.dtype, engines.max_model_len) == ("float16", 1024)  # the student's dtype, the stage's length
    with_dtype = stage.model_copy(update={"rollout": stage.rollout.model_copy(update={"dtype": "float32"})})
    assert student_probe(with_dtype, r.sampling_engines(with_dtype))[1].dtype == "float32"
