"""The learner divides "grpo" and "dr_grpo" losses by the responses that keep a token, counted over the whole
mini-batch (all micro-batches, all ranks): responses without a token that counts change no gradient."""

import pytest
import torch

from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner


def _samples(empty: int) -> list[TrainSample]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for i in range(4 + empty):
        completion = torch.randint(5, 200, (2 + i % 3,), generator=generator).tolist() if i < 4 else []
        out.append(TrainSample(prompt_ids=[5 + i, 6, 7], completion_ids=completion, advantage=float(i % 2) - 0.5))
    return out


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_responses_without_tokens_leave_the_gradient_unchanged(tiny_qwen2_dir, loss_type):
    """4 responses, then the same 4 plus 2 with no completion token, in micro-batches of a few tokens: the
    summed gradients agree (dividing by all 6 responses would scale them by 4/6)."""
    grads = []
    for empty in (0, 2):
        learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=1e-2, token_budget=16, max_grad_norm=None),
                          AlgorithmConfig(loss_type=loss_type, tis_cap=None), total_steps=1)  # fmt: skip
        for group in learner.optimizer.param_groups:  # keep the weights: only the gradients are compared
            group["lr"] = 0.0
        learner.train(_samples(empty))
        grads.append({n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-7, rtol=1e-5)
