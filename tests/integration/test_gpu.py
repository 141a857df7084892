"""The CUDA paths, on one GPU: a rollout worker on the GPU and its weight sync (proven by log-prob parity),
a bf16 learner step, an eval stage whose worker takes the GPU by default, and a few RL steps with the rollout
worker and the learner sharing the device. `scripts/gpu_check.sh` runs this file and prints the figures each
test records (GPU_CHECK_FIGURES names the JSON-lines file they go to); without CUDA every test is skipped
(tests/conftest.py says why)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import ray
import torch
import yaml

from grpo.config import AlgorithmConfig, ClusterConfig, LearnerConfig, RLStage
from grpo.driver import RLLoop
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner
from grpo.learner.logprobs import SamplingDistribution
from grpo.metrics import read_metrics
from grpo.models.factory import make_model
from grpo.recipe import load_recipe
from grpo.rollout.actor import gather, make_rollout_workers
from grpo.rollout.engine import SamplingConfig

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

PARITY_TOLERANCE = 1e-3  # float32 engine and learner: the CPU parity bound (tests/integration/test_rollout_sync.py)
STALE_AT_LEAST = 0.05
PROMPTS = ["What is 12 + 7?", "Write a function that reverses a string.", "2 + 2 ="]
SAMPLING = SamplingConfig(temperature=1.0, max_tokens=32, seed=11)


def record(check: str, figure: str, value: float, unit: str = "") -> None:
    """One row of gpu_check.sh's table."""
    path = os.environ.get("GPU_CHECK_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"check": check, "figure": figure, "value": value, "unit": unit}) + "\n")


@pytest.fixture(scope="module")
def qwen2_24m_dir(tmp_path_factory) -> Path:
    return make_model("qwen2-24m", tmp_path_factory.mktemp("qwen2-24m"))


def mismatch(groups, learner: Learner) -> float:
    samples = [s for group in groups for s in group]
    recomputed = learner.compute_logprobs([TrainSample(s.prompt_token_ids, s.token_ids, 0.0) for s in samples])
    diffs = [abs(a - b) for r, s in zip(recomputed, samples) for a, b in zip(r, s.logprobs)]
    return sum(diffs) / len(diffs)


def test_cuda_rollout_worker_takes_the_learner_weights(ray_session, tiny_qwen2_dir):
    learner = Learner(tiny_qwen2_dir, LearnerConfig(num_gpus_per_learner=1), AlgorithmConfig(), total_steps=1,
                      sampling=SamplingDistribution(SAMPLING.temperature, SAMPLING.top_k, SAMPLING.top_p))
    assert learner.device.type == "cuda"
    t0 = time.perf_counter()
    (worker,) = make_rollout_workers(1, tiny_qwen2_dir, 1, num_gpus_per_worker=0.5, gpu_memory_utilization=0.3,
                                     max_model_len=512, kv_cache_gib=0.5, seed=0)
    record("rollout worker (tiny-qwen2, float32)", "engine start", time.perf_counter() - t0, "s")
    try:
        before = mismatch(gather([worker.generate.remote(PROMPTS, 4, SAMPLING)]), learner)
        with torch.no_grad():  # move every weight far, so a stale or half-updated engine cannot pass
            generator = torch.Generator(device="cuda").manual_seed(0)
            for p in learner.model.parameters():
                p.add_(torch.randn(p.shape, generator=generator, device=p.device) * p.std().clamp_min(1e-2))
        stats = ray.get(worker.update_weights.remote(learner.gather_full_state_dict_on_rank0(), 1))
        after = mismatch(gather([worker.generate.remote(PROMPTS, 4, SAMPLING)]), learner)
    finally:
        ray.kill(worker)
    record("rollout worker (tiny-qwen2, float32)", "log-prob mismatch before any update", before)
    record("rollout worker (tiny-qwen2, float32)", "log-prob mismatch after a sync", after)
    record("rollout worker (tiny-qwen2, float32)", "sync", stats["sync/seconds"], "s")
    assert before <= PARITY_TOLERANCE
    assert after <= PARITY_TOLERANCE, f"after the sync the engine is {after:.3g} off the learner"


def test_the_sync_is_needed_on_the_gpu(ray_session, tiny_qwen2_dir):
    """The parity above is not trivially met: an engine that did not take the moved weights is far off."""
    learner = Learner(tiny_qwen2_dir, LearnerConfig(num_gpus_per_learner=1), AlgorithmConfig(), total_steps=1,
                      sampling=SamplingDistribution(SAMPLING.temperature, SAMPLING.top_k, SAMPLING.top_p))
    (worker,) = make_rollout_workers(1, tiny_qwen2_dir, 1, num_gpus_per_worker=0.5, gpu_memory_utilization=0.3,
                                     max_model_len=512, kv_cache_gib=0.5, seed=0)
    try:
        with torch.no_grad():
            generator = torch.Generator(device="cuda").manual_seed(0)
            for p in learner.model.parameters():
                p.add_(torch.randn(p.shape, generator=generator, device=p.device) * p.std().clamp_min(1e-2))
        stale = mismatch(gather([worker.generate.remote(PROMPTS, 4, SAMPLING)]), learner)
    finally:
        ray.kill(worker)
    record("rollout worker (tiny-qwen2, float32)", "log-prob mismatch of a stale engine", stale)
    assert stale > STALE_AT_LEAST


def test_bf16_learner_step_on_one_gpu(qwen2_24m_dir):
    learner = Learner(qwen2_24m_dir, LearnerConfig(num_gpus_per_learner=1, precision="bf16", lr=1e-5),
                      AlgorithmConfig(), total_steps=2)
    generator = torch.Generator().manual_seed(0)
    samples = [TrainSample(prompt_ids=torch.randint(5, 1000, (64,), generator=generator).tolist(),
                           completion_ids=torch.randint(5, 1000, (448,), generator=generator).tolist(),
                           advantage=float(i % 3) - 1.0, rollout_logprobs=[-6.9] * 448) for i in range(32)]
    learner.train(samples)  # warm-up: CUDA kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    metrics = learner.train(samples)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(len(s.prompt_ids) + len(s.completion_ids) for s in samples)
    record("learner (qwen2-24m, bf16 autocast)", "update of 32 x 512 tokens", tokens / seconds, "tok/s")
    record("learner (qwen2-24m, bf16 autocast)", "peak GPU memory", torch.cuda.max_memory_allocated() / 2**30, "GiB")
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in learner.model.parameters())
    assert all(math.isfinite(v) for v in metrics.values())
    learner.close()
    torch.cuda.empty_cache()


def test_an_eval_stage_samples_on_a_gpu_worker(ray_session, tiny_qwen2_dir, tmp_path):
    from pipelines.runner import run_recipe

    recipe_path = tmp_path / "eval.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "name": "gpu-eval", "output_dir": str(tmp_path / "run"), "model": {"path": str(tiny_qwen2_dir)},
        "stages": [{"name": "eval", "type": "eval", "template": "plain",
                    "data": {"source": "task:arithmetic", "n": 64, "split": "test"},
                    "rewards": [{"name": "exact_match", "kwargs": {"extractor": "answer_tag"}}],
                    "num_samples": 4, "sampling": {"temperature": 1.0, "max_completion_length": 64},
                    "rollout": {"gpu_memory_utilization": 0.3, "kv_cache_gib": 1}}]}))
    recipe = load_recipe(recipe_path)
    engines = recipe.sampling_engines(recipe.stages[0], gpus=ray.cluster_resources().get("GPU", 0) > 0)
    assert engines.num_gpus_per_worker == 1  # nothing said: a GPU cluster's default
    t0 = time.perf_counter()
    state = run_recipe(recipe, recipe_path, echo=lambda line: None)
    record("eval stage (tiny-qwen2, 64 prompts x 4)", "stage time, engine start included",
           time.perf_counter() - t0, "s")
    assert state["stages"]["eval"]["status"] == "finished"
    results = json.loads((tmp_path / "run" / "stages" / "eval" / "results.json").read_text())
    assert results["current"]["mean_length"] > 0


def test_a_few_rl_steps_on_one_gpu(ray_session, qwen2_24m_dir, tmp_path):
    stage = RLStage.model_validate({
        "name": "rl", "type": "rl", "template": "plain",
        "data": {"source": "task:arithmetic", "n": 256, "seed": 3},
        "rewards": [{"name": "exact_match", "kwargs": {"extractor": "answer_tag"}}, {"name": "format", "weight": 0.5}],
        "steps": 4, "prompts_per_step": 16, "checkpoint_every": 4,
        "rollout": {"max_completion_length": 128, "num_gpus_per_worker": 0.5, "gpu_memory_utilization": 0.3,
                    "kv_cache_gib": 2},
        "algorithm": {"num_generations": 8},
        "learner": {"lr": 1e-4, "num_gpus_per_learner": 0.5},
    })
    t0 = time.perf_counter()
    RLLoop(stage, qwen2_24m_dir, tmp_path / "rl", seed=0, cluster=ClusterConfig()).run()
    seconds = time.perf_counter() - t0
    history = read_metrics(tmp_path / "rl" / "metrics.jsonl")
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    later = history[1:]  # step 1 has no earlier sync
    record("rl (qwen2-24m, 16 prompts x 8, 128 tokens)", "4 steps, engine and learner start included", seconds, "s")
    record("rl (qwen2-24m, 16 prompts x 8, 128 tokens)", "generate per step",
           sum(h["timing/generate"] for h in later) / len(later), "s")
    record("rl (qwen2-24m, 16 prompts x 8, 128 tokens)", "learner per step",
           sum(h["timing/learner"] for h in later) / len(later), "s")
    record("rl (qwen2-24m, 16 prompts x 8, 128 tokens)", "sync per step",
           sum(h["timing/sync"] for h in later) / len(later), "s")
    worst = max(h["rollout/logprob_mismatch"] for h in later)
    record("rl (qwen2-24m, 16 prompts x 8, 128 tokens)", "worst log-prob mismatch after a sync", worst)
    assert worst <= PARITY_TOLERANCE
