"""Batch shaping: dynamic sampling and advantage statistics."""

import pytest
import torch

from grpo.algorithms import (
    PolicyLossConfig,
    advantage_stats,
    compute_advantages,
    dynamic_sampling_mask,
    policy_loss,
)
from common.errors import UserError


def test_dynamic_sampling_drops_groups_with_equal_rewards():
    """Groups (G = 3) [1, 1, 1], [0, 1, 0], [0, 0, 0], [0.5, 0.5, 0.5]: only the second has a spread.
    Keep it, drop 3."""
    rewards = torch.tensor([1.0, 1, 1, 0, 1, 0, 0, 0, 0, 0.5, 0.5, 0.5])
    keep, num_dropped = dynamic_sampling_mask(rewards, 3)
    assert keep.tolist() == [False, True, False, False]
    assert num_dropped == 3


def test_every_group_dropped_is_reported_and_the_rest_of_the_step_does_not_crash():
    """All groups uniform: keep is all False, num_dropped = B. The empty batch then flows through advantages,
    statistics and the loss: empty advantages, zero statistics, a zero loss that backward() accepts."""
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    keep, num_dropped = dynamic_sampling_mask(rewards, 2)
    assert (keep.tolist(), num_dropped) == ([False, False], 2)

    kept_rewards = rewards[keep.repeat_interleave(2)]
    advantages = compute_advantages(kept_rewards, 2)
    assert advantages.shape == (0,)
    assert set(advantage_stats(advantages, kept_rewards, 2).values()) == {0.0}
    logp = torch.zeros(0, 5, requires_grad=True)
    loss, metrics = policy_loss(logp, None, advantages, torch.ones(0, 5, dtype=torch.bool), PolicyLossConfig())
    loss.backward()
    assert loss.item() == 0.0 and set(metrics.values()) == {0.0}


def test_dynamic_sampling_rejects_bad_layout():
    with pytest.raises(UserError, match="not a multiple of num_generations=4"):
        dynamic_sampling_mask(torch.zeros(6), 4)


def test_advantage_stats_by_hand():
    """advantages [1, -1, 0, 0], rewards [1, 0, 2, 2], G = 2. advantage mean 0, unbiased std sqrt(2/3) = 0.8164966;
    reward mean 1.25, std sqrt(2.75 / 3) = 0.9574271; group [2, 2] has equal rewards -> frac_zero_adv_groups 1/2."""
    stats = advantage_stats(torch.tensor([1.0, -1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 2.0, 2.0]), 2)
    assert stats == pytest.approx({"advantage/mean": 0.0, "advantage/std": 0.816496580927726, "reward/mean": 1.25,
                                   "reward/std": 0.9574271077563381, "frac_zero_adv_groups": 0.5})  # fmt: skip
