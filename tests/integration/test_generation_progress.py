"""sample_completions (eval, rejection sampling, distill teacher): groups streamed from a Ray rollout worker
come back in prompt order, equal to one batched generate call with the same seeds, and the progress bar
counts the prompts (plain lines when the output is not a terminal)."""

from __future__ import annotations

import pytest

from grpo.config import ClusterConfig, SamplingOptions
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
