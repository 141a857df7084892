"""Rollout workers: RolloutEngines in Ray actors, and splitting a step's prompts across them.

Each actor process exists only to host its engine, so the engine runs in the actor's process by default
(`in_process=True`, see engine.py): one process per worker instead of three, which matters on a machine
with few cores, and a faster engine start; Ray sets the OMP_NUM_THREADS that mode needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from grpo.rollout.engine import RolloutEngine, Sample, SamplingConfig


class RolloutWorker:
    """A RolloutEngine behind Ray's actor interface (made remote by make_rollout_workers)."""

    def __init__(self, model_dir: str, **engine_kwargs: Any):
        self.engine = RolloutEngine(model_dir, **engine_kwargs)

    def generate(self, prompts: list[str] | list[list[int]], num_generations: int, sampling: SamplingConfig,
                 prompt_offset: int = 0) -> list[list[Sample]]:
        """See RolloutEngine.generate; `prompt_offset` is this shard's offset from split_prompts."""
        return self.engine.generate(prompts, num_generations, sampling, prompt_offset)

    def generate_stream(self, prompts: list[str] | list[list[int]], num_generations: int, sampling: SamplingConfig,
                        prompt_offset: int = 0) -> Iterator[tuple[int, list[Sample]]]:
        """See RolloutEngine.generate_stream; called as a Ray streaming generator (start_streams)."""
        yield from self.engine.generate_stream(prompts, num_generations, sampling, prompt_offset)

    def update_weights(self, source: Mapping[str, torch.Tensor] | str | Path, version: int) -> dict[str, float]:
        return self.engine.update_weights(source, version)

    def prompt_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        return self.engine.prompt_logprobs(prompt_ids, completion_ids)

    def weights_version(self) -> int:
        return self.engine.weights_version

    def close(self) -> None:
        self.engine.close()



def engine_worker_options(engines, default_dtype: str = "float32") -> dict[str, Any]:
    """make_rollout_workers' arguments (besides the model, seed and weights version) for a recipe's engine
    section (grpo.config.EngineResources: an RL stage's rollout, a sampling stage's resolved one); `dtype`
    falls back to `default_dtype` (the model's) where the section leaves it out."""
    return {"n": engines.num_workers, "num_cpus_per_worker": engines.num_cpus_per_worker,
            "num_gpus_per_worker": engines.num_gpus_per_worker, "dtype": engines.dtype or default_dtype,
            "max_model_len": engines.max_model_len, "kv_cache_gib": engines.kv_cache_gib,
            "gpu_memory_utilization": engines.gpu_memory_share()}

def make_rollout_workers(n: int, model_dir: str | Path, num_cpus_per_worker: float, *,
                         num_gpus_per_worker: float = 0.0, **engine_kwargs: Any) -> list:
    """Start `n` RolloutWorker actors over `model_dir` (RolloutEngine keyword arguments in `engine_kwargs`)
    and wait until their engines are up, so a bad model or argument fails here, with the actor's error."""
    import ray

    if n < 1:
        raise UserError(f"number of rollout workers must be at least 1, got {n}")
    engine_kwargs.setdefault("in_process", True)
    actor_class = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker)(RolloutWorker)
    workers = [actor_class.remote(str(model_dir), **engine_kwargs) for _ in range(n)]
    try:
        ray.get([w.weights_version.remote() for w in workers])
    except Exception:
        for worker in workers:
            ray.kill(worker)
        raise
    return workers


def split_prompts(prompts: list, num_workers: int) -> list[tuple[int, list]]:
    """Contiguous shards, one per worker (sizes differ by at most one; some may be empty), each with the
    offset of its first prompt: pass it to `generate` so seeds follow the prompt, not the worker."""
    if num_workers < 1:
        raise UserError(f"number of rollout workers must be at least 1, got {num_workers}")
    base, extra = divmod(len(prompts), num_workers)
    shards, start = [], 0
    for rank in range(num_workers):
        size = base + (rank < extra)
        shards.append((start, list(prompts[start:start + size])))
        start += size
    return shards


def gather(futures: list) -> list[list[Sample]]:
    """The groups of all shards' `generate` futures (in split_prompts order), in the original prompt order."""
    import ray

    return [group for shard in ray.get(list(futures)) for group in shard]


def start_streams(workers: list, prompts: list, num_generations: int, sampling: SamplingConfig) -> list:
    """Start generating `prompts` now, split over `workers` as split_prompts does, each worker's share as a
    Ray streaming generator (one object per finished group); read them with finished_groups."""
    return [w.generate_stream.options(num_returns="streaming").remote(shard, num_generations, sampling, offset)
            for w, (offset, shard) in zip(workers, split_prompts(prompts, len(workers))) if shard]


def finished_groups(streams: list) -> Iterator[tuple[int, list[Sample]]]:
    """(prompt index, its G samples) from all `streams`, as each group reaches this process, whichever
    worker it comes from; the same groups `gather` returns, in finishing order."""
    import ray

    streams = list(streams)
    while streams:
        ready, _ = ray.wait(streams, num_returns=1)
        for stream in ready:
            try:
                ref = next(stream)
            except StopIteration:  # that worker's share is done
                streams.remove(stream)
                continue
            yield ray.get(ref)
