"""Batch shaping: dynamic sampling, overlong penalty, truncation masking, KL in the reward, advantage statistics."""

import pytest
import torch

from grpo.algorithms import (
    PolicyLossConfig,
    advantage_stats,
    compute_advantages,
    dynamic_sampling_mask,
    kl_in_reward,
    mask_truncated,
    overlong_penalty,
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


def test_overlong_penalty_matches_dapo_piecewise_formula():
    """L_max = 20, L_cache = 5, so L_max - L_cache = 15. R = 0 for |y| <= 15, (15 - |y|) / 5 up to 20, -1 beyond.
    |y| = [10, 15, 16, 18, 20, 25] -> R = [0, 0, -0.2, -0.6, -1, -1]; penalty_factor 0.5 halves it."""
    penalty = overlong_penalty(torch.tensor([10, 15, 16, 18, 20, 25]), 20, 5, penalty_factor=0.5)
    torch.testing.assert_close(penalty, torch.tensor([0.0, 0.0, -0.1, -0.3, -0.5, -0.5]))


@pytest.mark.parametrize("buffer, factor, message", [
    (0, 1.0, r"overlong_buffer_len must be in \(0, max_completion_length=20\]"),
    (21, 1.0, r"overlong_buffer_len must be in \(0, max_completion_length=20\]"),
    (5, -1.0, "penalty_factor must be >= 0"),
])  # fmt: skip
def test_overlong_penalty_rejects_bad_options(buffer, factor, message):
    with pytest.raises(UserError, match=message):
        overlong_penalty(torch.tensor([10]), 20, buffer, factor)


@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.int64])
def test_mask_truncated_clears_truncated_rows_and_keeps_dtype(dtype):
    """Rows 0 and 2 truncated: their tokens stop counting; row 1 keeps its own mask [1, 1, 0]."""
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]).to(dtype)
    result = mask_truncated(mask, torch.tensor([True, False, True]))
    assert result.dtype == dtype
    assert result.tolist() == torch.tensor([[0, 0, 0], [1, 1, 0], [0, 0, 0]]).to(dtype).tolist()


def test_mask_truncated_rejects_wrong_length():
    with pytest.raises(UserError, match=r"truncated must be \[N\] = \[3\]"):
        mask_truncated(torch.ones(3, 2), torch.tensor([True, False]))


def test_kl_in_reward_subtracts_beta_times_summed_k1():
    """r' = r - beta * sum_t (logp - ref_logp) over unmasked tokens, beta = 0.1:
    response 0: k1 = [-1 + 1.5, -2 + 1] = [0.5, -1] (slot 2 masked, holds NaN) -> sum -0.5 -> r' = 1 + 0.05 = 1.05
    response 1: k1 = [0, 1, -0.5] -> sum 0.5 -> r' = 0 - 0.05 = -0.05."""
    nan = float("nan")
    logp = torch.tensor([[-1.0, -2.0, nan], [-0.5, -1.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, nan], [-0.5, -2.0, -0.5]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    shaped = kl_in_reward(torch.tensor([1.0, 0.0]), logp, ref, mask, beta=0.1)
    torch.testing.assert_close(shaped, torch.tensor([1.05, -0.05]))
    assert not shaped.requires_grad


def test_kl_in_reward_rejects_mismatched_shapes():
    with pytest.raises(UserError, match="kl_in_reward needs rewards"):
        kl_in_reward(torch.zeros(3), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 4), 0.1)


def test_advantage_stats_by_hand():
    """advantages [1, -1, 0, 0], rewards [1, 0, 2, 2], G = 2. advantage mean 0, unbiased std sqrt(2/3) = 0.8164966;
    reward mean 1.25, std sqrt(2.75 / 3) = 0.9574271; group [2, 2] has equal rewards -> frac_zero_adv_groups 1/2."""
    stats = advantage_stats(torch.tensor([1.0, -1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 2.0, 2.0]), 2)
    assert stats == pytest.approx({"advantage/mean": 0.0, "advantage/std": 0.816496580927726, "reward/mean": 1.25,
                                   "reward/std": 0.9574271077563381, "frac_zero_adv_groups": 0.5})  # fmt: skip
