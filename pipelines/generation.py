"""Sampling completions from a model directory with vLLM rollout workers (eval, rejection sampling, distill).

The workers are those of the stage's `rollout:` section, its fields left out following the recipe's RL stage
(grpo.config.Recipe.sampling_engines): a sampling stage of a GPU recipe runs on the GPUs and with the
max_model_len the RL stage uses, not on one CPU worker.
"""

from __future__ import annotations


import ray

from grpo import progress
from grpo.cluster import ensure_ray
from grpo.config import ClusterConfig, EngineResources, SamplingOptions
from grpo.rollout.actor import engine_worker_options, finished_groups, make_rollout_workers, start_streams
from grpo.rollout.engine import SamplingConfig
from pipelines.context import StageContext


def stage_engines(stage, ctx: StageContext) -> EngineResources:
    """The engines `stage` samples with: the recipe's resolution, with a GPU per worker by default where the
    cluster has GPUs."""
    ensure_ray(ctx.recipe.cluster)
    return ctx.recipe.sampling_engines(stage, gpus=ray.cluster_resources().get("GPU", 0) > 0)


def sample_completions(model_dir, prompts: list[str], num_samples: int, sampling: SamplingOptions, *,
                       seed: int, cluster: ClusterConfig, engines: EngineResources | None = None,
                       label: str = "generate"):
    """num_samples completions per prompt (list of groups of rollout Samples, in prompt order), from the
    workers `engines` describes (default: one CPU worker), the prompts split over them.

    Groups are streamed as they finish (the same samples as one generate call), so the progress bar,
    "<label> prompts", moves with each prompt."""
    ensure_ray(cluster)
    workers = make_rollout_workers(model_dir=str(model_dir), seed=seed,
                                   **engine_worker_options(engines or EngineResources()))
    try:
        groups: list = [None] * len(prompts)
        with progress.progress(len(prompts), f"{label} prompts") as bar:
            streams = start_streams(workers, prompts, num_samples, SamplingConfig.from_options(sampling, seed))
            for index, group in finished_groups(streams):
                groups[index] = group
                bar.advance(1)
        return groups
    finally:
        for worker in workers:
            ray.kill(worker)
