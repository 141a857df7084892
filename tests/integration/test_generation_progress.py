"""sample_completions (eval, rejection sampling, distill teacher): groups streamed from a Ray rollout worker
come back in prompt order, equal to one batched generate call with the same seeds, and the progress bar
counts the prompts (plain lines when the output is not a terminal)."""

from __future__ import annotations

import pytest

from common.errors import UserError
from grpo.config import ClusterConfig, EngineResources, SamplingOptions
from grpo.rollout.engine import SamplingConfig
from pipelines.generation import sample_completions

pytestmark = pytest.mark.slow

PROMPTS = ["What is 12 + 7?", "Hello", "Write a function that reverses a string.", "2 + 2 =", "Name a colour."]


def test_groups_come_back_in_prompt_order_with_a_bar_over_the_prompts(ray_session, tiny_qwen2_dir, qwen2_engine,
                                                                     capsys):
    sampling = SamplingOptions(temperature=1.0, max_completion_length=16)
    groups = sample_completions(tiny_qwen2_dir, PROMPTS, 3, sampling, seed=7, cluster=ClusterConfig(),
                                label="[eval] generate")
    batched = qwen2_engine.generate(PROMPTS, 3, SamplingConfig(temperature=1.0, max_tokens=16, seed=7))
    assert [[s.token_ids for s in g] for g in groups] == [[s.token_ids for s in g] for g in batched]
    lines = [line for line in capsys.readouterr().out.splitlines() if "[eval] generate prompts" in line]
    assert [line.split()[4] for line in lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"]


def test_the_stage_engines_are_the_workers_that_sample(ray_session, tiny_qwen2_dir, qwen2_engine):
    """Two workers of the stage's `rollout:` split the prompts and give the samples one engine gives."""
    sampling = SamplingOptions(temperature=1.0, max_completion_length=16)
    engines = EngineResources(num_workers=2, num_cpus_per_worker=1, max_model_len=256, kv_cache_gib=0.25)
    groups = sample_completions(tiny_qwen2_dir, PROMPTS, 2, sampling, seed=3, cluster=ClusterConfig(),
                                engines=engines)
    batched = qwen2_engine.generate(PROMPTS, 2, SamplingConfig(temperature=1.0, max_tokens=16, seed=3))
    assert [[s.token_ids for s in g] for g in groups] == [[s.token_ids for s in g] for g in batched]


def test_a_prompt_over_max_prompt_length_is_refused(qwen2_engine):
    ids = qwen2_engine.tokenizer.encode(PROMPTS[2])
    with pytest.raises(UserError, match=f"prompt 1 has {len(ids)} tokens, over max_prompt_length {len(ids) - 1}"):
        qwen2_engine.generate(["Hello", PROMPTS[2]], 1, SamplingConfig(max_tokens=4, max_prompt_tokens=len(ids) - 1))
