"""Log-probs of the distribution the rollout sampled from (grpo/learner/logprobs.py): temperature, top-k and
top-p against a direct per-row computation, through the chunked path, and RL's refusal of greedy decoding."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from grpo.config import EvalStage, RolloutConfig
from grpo.learner.batching import TrainSample, collate
from grpo.learner.logprobs import SamplingDistribution, completion_logprobs, sampled_logprobs

SETTINGS = [SamplingDistribution(0.7), SamplingDistribution(0.7, top_p=0.9), SamplingDistribution(1.3, top_k=5),
            SamplingDistribution(0.7, top_k=20, top_p=0.8), SamplingDistribution(1.0)]


def direct(logits: torch.Tensor, target: int, sampling: SamplingDistribution) -> tuple[float, float]:
    """One row by the definition: softmax(logits / T); the top_k most probable; then the most probable of
    those, in order, until their renormalised mass reaches top_p; renormalise; (log p(target), entropy)."""
    probs = torch.softmax(logits.double() / sampling.temperature, dim=-1)
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
    if 0 < sampling.top_k < len(order):
        order = order[: sampling.top_k]
    mass = sum(float(probs[i]) for i in order)
    kept, cumulative = [], 0.0
    for i in order:
        if cumulative >= sampling.top_p:
            break
        kept.append(i)
        cumulative += float(probs[i]) / mass
    kept = set(kept) | {target}
    total = sum(float(probs[i]) for i in kept)
    entropy = -sum(float(probs[i]) / total * math.log(float(probs[i]) / total) for i in kept)
    return math.log(float(probs[target]) / total), entropy


@pytest.mark.parametrize("sampling", SETTINGS, ids=str)
def test_sampled_logprobs_match_the_direct_computation(sampling):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 50, generator=generator) * 3
    targets = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
    logp, entropy = sampled_logprobs(logits, targets, sampling, want_entropy=True)
    for row in range(len(targets)):
        want_logp, want_entropy = direct(logits[row], int(targets[row]), sampling)
        assert logp[row].item() == pytest.approx(want_logp, abs=1e-5)
        assert entropy[row].item() == pytest.approx(want_entropy, abs=1e-5)
    plain, _ = sampled_logprobs(logits, targets, SamplingDistribution(), want_entropy=False)
    if sampling != SamplingDistribution():  # the settings change the numbers: the test can tell them apart
        assert (logp - plain).abs().max() > 1e-2


def test_a_target_outside_the_nucleus_stays_finite_and_gradients_are_finite():
    """A float near-tie at the top-p boundary may leave the sampled token out of the learner's kept set; it is
    kept all the same (the sampler drew it). Dropped tokens add no nan to the entropy's gradient."""
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0]], requires_grad=True)
    logp, entropy = sampled_logprobs(logits, torch.tensor([3]), SamplingDistribution(0.7, top_p=0.5), True)
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    (logp.sum() + entropy.sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2] == 0  # token 2 is neither kept nor the target: no gradient


@pytest.mark.parametrize("sampling", SETTINGS[:2], ids=str)
def test_chunked_completion_logprobs_apply_the_sampling_distribution(tiny_qwen2_dir, sampling):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, dtype=torch.float32).eval()
    prompts, completions = [[5, 6, 7], [9, 10]], [[11, 12, 13, 14], [15, 16]]
    mb = collate([TrainSample(p, c, 0.0) for p, c in zip(prompts, completions)], pad_id=0)
    with torch.no_grad():
        chunked, _ = completion_logprobs(model, mb.input_ids, mb.attention_mask, mb.prompt_lengths,
                                         mb.completion_mask.shape[1], chunk_size=3, sampling=sampling)
        for row, (p, c) in enumerate(zip(prompts, completions)):
            logits = model(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1 : -1]
            full, _ = sampled_logprobs(logits, torch.tensor(c), sampling, want_entropy=False)
            torch.testing.assert_close(chunked[row, : len(c)], full, atol=1e-5, rtol=0)


def test_rl_refuses_greedy_decoding_and_eval_allows_it():
    with pytest.raises(ValidationError, match="rollout.temperature 0.0 is greedy decoding"):
        RolloutConfig(temperature=0.0)
    with pytest.raises(ValueError, match="temperature 0 is greedy decoding"):
        SamplingDistribution(0.0)
    eval_stage = EvalStage.model_validate({"name": "e", "type": "eval", "data": {"source": "gsm8k"},
                                           "rewards": [{"name": "math_accuracy"}]})
    assert eval_stage.sampling.temperature == 0.0
