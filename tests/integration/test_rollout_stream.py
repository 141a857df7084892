"""Groups streamed as they finish (RolloutEngine.generate_stream, and through Ray: start_streams +
finished_groups) are the batched path's groups: same token ids, log-probs, texts and finish reasons for the
same seeds, each prompt exactly once. A stop string makes responses end at different lengths, so groups
finish at different engine steps."""

from __future__ import annotations

import pytest

from grpo.rollout.actor import finished_groups, gather, make_rollout_workers, split_prompts, start_streams
from grpo.rollout.engine import SamplingConfig

pytestmark = pytest.mark.slow

PROMPTS = ["What is 12 + 7?", "Write a function that reverses a string.", [5, 6, 7, 8, 9], "Hello", [9, 8, 7]]
SAMPLING = SamplingConfig(temperature=1.0, max_tokens=32, stop=["e"], seed=23)


def in_prompt_order(stream) -> list:
    got = dict(stream)
    return [got[i] for i in sorted(got)]


def test_engine_stream_equals_batched_generate(qwen2_engine):
    batched = qwen2_engine.generate(PROMPTS, 3, SAMPLING, prompt_offset=4)
    arrivals = list(qwen2_engine.generate_stream(PROMPTS, 3, SAMPLING, prompt_offset=4))
    assert sorted(i for i, _ in arrivals) == [4, 5, 6, 7, 8]  # indices in the caller's batch, each once
    assert in_prompt_order(arrivals) == batched  # Sample equality: ids, log-probs, text, finish reason, version
    lengths = {len(s.token_ids) for g in batched for s in g}
    assert len(lengths) > 1, "the stop string should end responses at different lengths"


def test_closing_a_stream_early_aborts_its_requests(qwen2_engine):
    stream = qwen2_engine.generate_stream(PROMPTS, 2, SAMPLING)
    next(stream)
    stream.close()
    assert not qwen2_engine.llm.llm_engine.has_unfinished_requests()
    # The engine goes on as before: a later call samples what it would have anyway.
    assert in_prompt_order(qwen2_engine.generate_stream(PROMPTS, 2, SAMPLING)) == qwen2_engine.generate(
        PROMPTS, 2, SAMPLING)


def test_ray_streams_from_two_workers_equal_gather(ray_cluster, tiny_qwen2_dir):
    import ray

    workers = make_rollout_workers(2, tiny_qwen2_dir, 0.5, max_model_len=512, kv_cache_gib=0.5, weights_version=3)
    try:
        batched = gather([w.generate.remote(shard, 2, SAMPLING, offset)
                          for w, (offset, shard) in zip(workers, split_prompts(PROMPTS, len(workers)))])
        streamed = list(finished_groups(start_streams(workers, PROMPTS, 2, SAMPLING)))
        assert sorted(i for i, _ in streamed) == list(range(len(PROMPTS)))
        assert in_prompt_order(streamed) == batched
        assert {s.weights_version for g in batched for s in g} == {3}  # the version the engines started at
    finally:
        for worker in workers:
            ray.kill(worker)
