"""Sampling completions from a model directory with a vLLM rollout worker (eval, rejection sampling, distill)."""

from __future__ import annotations

import ray

from grpo import progress
from grpo.cluster import ensure_ray
from grpo.config import ClusterConfig, SamplingOptions
from grpo.rollout.actor import finished_groups, make_rollout_workers, start_streams
from grpo.rollout.engine import SamplingConfig


def sample_completions(model_dir, prompts: list[str], num_samples: int, sampling: SamplingOptions, *,
                       seed: int, cluster: ClusterConfig, max_model_len: int = 1024, label: str = "generate"):
    """num_samples completions per prompt (list of groups of rollout Samples, in prompt order).

    Groups are streamed as they finish (the same samples as one generate call), so the progress bar,
    "<label> prompts", moves with each prompt."""
    ensure_ray(cluster)
    config = SamplingConfig(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
                            max_tokens=sampling.max_completion_length, seed=seed)
    (worker,) = make_rollout_workers(1, str(model_dir), 1.0, seed=seed, max_model_len=max_model_len)
    try:
        groups: list = [None] * len(prompts)
        with progress.progress(len(prompts), f"{label} prompts") as bar:
            for index, group in finished_groups(start_streams([worker], prompts, num_samples, config)):
                groups[index] = group
                bar.advance(1)
        return groups
    finally:
        ray.kill(worker)
