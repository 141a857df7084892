"""Sampling completions from a model directory with a vLLM rollout worker (eval, rejection sampling, distill)."""

from __future__ import annotations

import ray

from grpo.cluster import ensure_ray
from grpo.config import ClusterConfig, SamplingOptions
from grpo.rollout.actor import make_rollout_workers
from grpo.rollout.engine import SamplingConfig


def sample_completions(model_dir, prompts: list[str], num_samples: int, sampling: SamplingOptions, *,
                       seed: int, cluster: ClusterConfig, max_model_len: int = 1024):
    """num_samples completions per prompt (list of groups of rollout Samples, in prompt order)."""
    ensure_ray(cluster)
    config = SamplingConfig(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                            max_tokens=sampling.max_completion_length, seed=seed)
    (worker,) = make_rollout_workers(1, str(model_dir), 1.0, seed=seed, max_model_len=max_model_len)
    try:
        return ray.get(worker.generate.remote(prompts, num_samples, config, 0))
    finally:
        ray.kill(worker)


def repeat_columns(rows: list[dict], times: int) -> dict[str, list]:
    """Dataset columns with each row's value repeated for each of its `times` completions (reward input)."""
    return {key: [row.get(key) for row in rows for _ in range(times)] for key in rows[0]}
