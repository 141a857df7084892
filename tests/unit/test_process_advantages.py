"""Process supervision glue: step offsets mapped to the sampled tokens without re-tokenising, per-token
advantages as DeepSeekMath defines them, and those advantages reaching the learner's loss unchanged."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

import grpo.learner.learner as learner_module
from grpo.config import AlgorithmConfig, LearnerConfig, RLStage
from grpo.learner.batching import TrainSample, collate
from grpo.learner.learner import Learner
from grpo.process_supervision import process_advantages, step_token_indices
from rewards.steps import StepScore


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2_dir):
    return AutoTokenizer.from_pretrained(tiny_qwen2_dir)


def test_step_ends_map_to_the_token_that_completes_them(tokenizer):
    text = "37+48: 7+8=15, write 5 carry 1. 3+4+1=8. So 85."
    ids = tokenizer.encode(text, add_special_tokens=False)
    ends = [text.index(".") + 1, text.index("8.") + 2, len(text)]
    for end, k in zip(ends, step_token_indices(tokenizer, ids, ends)):
        assert len(tokenizer.decode(ids[: k + 1])) >= end > len(tokenizer.decode(ids[:k]))
    assert step_token_indices(tokenizer, ids, [10**6]) == [len(ids) - 1]  # past the text: the last token
    assert step_token_indices(tokenizer, [], [3]) == []


def test_process_advantages_by_hand(tokenizer):
    """G = 2. Response a: one step (reward 1) at its first token, outcome 1 at its last; response b: one step
    (reward 0) at its first token, outcome 0. The four step rewards [1, 1, 0, 0] normalise to +-s with
    s = 1 / (std + 1e-4), std = 0.5774 (unbiased); a token's advantage sums the steps at or after it."""
    a = tokenizer.encode("7+8=15. So 15.", add_special_tokens=False)
    b = tokenizer.encode("7+8=14. So 14.", add_special_tokens=False)
    first_a = len(tokenizer.decode(a[:1]))
    first_b = len(tokenizer.decode(b[:1]))
    steps = [[StepScore(first_a, 1.0)], [StepScore(first_b, 0.0)]]
    out = process_advantages(tokenizer, [a, b], steps, torch.tensor([1.0, 0.0]), num_generations=2)
    s = 0.5 / (torch.tensor([1.0, 1.0, 0.0, 0.0]).std().item() + 1e-4)
    assert len(out[0]) == len(a) and len(out[1]) == len(b)
    assert out[0][0] == pytest.approx(2 * s, rel=1e-5) and out[1][0] == pytest.approx(-2 * s, rel=1e-5)
    assert out[0][1:] == pytest.approx([s] * (len(a) - 1), rel=1e-5)
    assert out[1][1:] == pytest.approx([-s] * (len(b) - 1), rel=1e-5)


def test_collate_keeps_per_token_advantages_and_repeats_per_response_ones():
    samples = [TrainSample([1, 2], [3, 4, 5], advantage=[0.5, -1.0, 2.0]), TrainSample([1], [6], advantage=0.25)]
    mb = collate(samples, pad_id=0)
    assert mb.advantages.tolist() == [[0.5, -1.0, 2.0], [0.25, 0.0, 0.0]]
    assert collate(samples[1:], pad_id=0).advantages.tolist() == [0.25]
    with pytest.raises(ValueError, match="2 per-token advantages for 3 completion tokens"):
        collate([TrainSample([1], [3, 4, 5], advantage=[1.0, 2.0])], pad_id=0)


def test_per_token_advantages_reach_the_loss_unchanged(tiny_qwen2_dir, monkeypatch):
    seen = []
    real = learner_module.policy_loss

    def recording(logp, old_logp, advantages, mask, *args, **kwargs):
        seen.append((advantages.detach().clone(), mask.detach().clone()))
        return real(logp, old_logp, advantages, mask, *args, **kwargs)

    monkeypatch.setattr(learner_module, "policy_loss", recording)
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(5):
        completion = torch.randint(5, 200, (2 + i,), generator=g).tolist()
        per_token = torch.randn(len(completion), generator=g).tolist()
        samples.append(TrainSample(prompt_ids=[7, 8, 9], completion_ids=completion, advantage=per_token,
                                   rollout_logprobs=[-1.0] * len(completion)))
    learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=1e-3, token_budget=24), AlgorithmConfig(), total_steps=1, seed=0)
    learner.train(samples)
    got = sorted(tuple(round(v, 6) for v, m in zip(adv.tolist(), mask.tolist()) if m)
                 for advantages, masks in seen for adv, mask in zip(advantages, masks))
    want = sorted(tuple(round(v, 6) for v in s.advantage) for s in samples)
    assert len(seen) > 1 and got == want  # several micro-batches, every token's advantage as given


def test_recipe_validation_of_process_supervision():
    base = {"name": "rl", "type": "rl", "data": {"source": "task:arithmetic", "n": 4}, "rewards": [{"name": "exact_match"}]}
    stage = RLStage.model_validate({**base, "algorithm": {"supervision": "process"},
                                    "step_reward": {"name": "arithmetic_steps"}})
    assert stage.step_reward.name == "arithmetic_steps"
    for extra, message in [({"algorithm": {"supervision": "process"}}, "needs a step_reward"),
                           ({"step_reward": {"name": "arithmetic_steps"}}, "set algorithm.supervision: process"),
                           ({"algorithm": {"supervision": "process"}, "step_reward": {"name": "format"}},
                            "does not score steps"),
                           ({"algorithm": {"supervision": "process", "advantage_estimator": "rloo"},
                             "step_reward": {"name": "arithmetic_steps"}}, "advantage_estimator grpo")]:
        with pytest.raises(ValueError, match=message):
            RLStage.model_validate({**base, **extra})
