"""Advantage estimators against values computed by hand from their formulas (std is unbiased, eps = 1e-4)."""

import math

import pytest
import torch

from grpo.algorithms import (
    ADVANTAGE_ESTIMATORS,
    compute_advantages,
    process_supervision_advantages,
)
from common.errors import UserError


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def assert_close(actual, expected, atol=1e-9):
    torch.testing.assert_close(actual, t(expected), rtol=0, atol=atol)


def test_grpo_divides_centred_rewards_by_group_std():
    """A_i = (r_i - mean) / (std + 1e-4). Group [3, 1, 2, 6]: mean 3, deviations [0, -2, -1, 3],
    std = sqrt(14 / 3) = 2.1602469; A = deviation / 2.1603469."""
    advantages = compute_advantages(t([3, 1, 2, 6]), num_generations=4)
    assert_close(advantages, [0.0, -0.9257772446135025, -0.46288862230675126, 1.3886658669202538])


def test_grpo_binary_rewards_two_groups():
    """Group [1, 0, 0, 1]: mean 0.5, std = sqrt(1/3) = 0.5773503, A = +-0.5 / 0.5774503 = +-0.8658754.
    Group [1, 1, 1, 1]: all equal, A = 0."""
    advantages = compute_advantages(t([1, 0, 0, 1, 1, 1, 1, 1]), num_generations=4)
    a = 0.8658754297607016
    assert_close(advantages, [a, -a, -a, a, 0, 0, 0, 0])


def test_grpo_batch_scaling_uses_std_of_all_rewards():
    """scale_rewards='batch' (TRL): A_i = (r_i - group mean) / (std of all 8 rewards + 1e-4).
    Rewards [3, 1, 2, 6 | 1, 1, 0, 2]: mean 2, std = sqrt(24 / 7) = 1.8516402; centred [0, -2, -1, 3 | 0, 0, -1, 1]."""
    advantages = compute_advantages(t([3, 1, 2, 6, 1, 1, 0, 2]), 4, "grpo", scale_rewards="batch")
    b = 1.8516401995451028 + 1e-4
    assert_close(advantages, [0, -2 / b, -1 / b, 3 / b, 0, 0, -1 / b, 1 / b])


@pytest.mark.parametrize("call", [
    lambda r: compute_advantages(r, 4, "dr_grpo"),
    lambda r: compute_advantages(r, 4, "grpo", scale_rewards=False),
    lambda r: compute_advantages(r, 4, "grpo", scale_rewards="none"),
])  # fmt: skip
def test_dr_grpo_only_centres(call):
    """Dr. GRPO: A_i = r_i - mean(r). Group [3, 1, 2, 6]: mean 3 -> [0, -2, -1, 3].
    'grpo' without scaling is the same."""
    assert_close(call(t([3, 1, 2, 6])), [0, -2, -1, 3])


def test_rloo_uses_mean_of_the_others():
    """RLOO: A_i = r_i - mean_{j != i} r_j. Group [3, 1, 2, 6]:
    3 - 9/3 = 0, 1 - 11/3 = -8/3, 2 - 10/3 = -4/3, 6 - 6/3 = 4."""
    assert_close(compute_advantages(t([3, 1, 2, 6]), 4, "rloo"), [0, -8 / 3, -4 / 3, 4])


def test_reinforce_pp_baseline_whitens_group_centred_rewards_over_the_batch():
    """x_i = r_i - group mean; A = (x - mean(x)) / (std(x) + 1e-4) over the batch; lengths not given, so each
    response counts as one token. [3, 1, 2, 6 | 1, 1, 0, 2] -> x = [0, -2, -1, 3 | 0, 0, -1, 1], mean 0,
    std = sqrt(16 / 7) = 1.5118579."""
    advantages = compute_advantages(t([3, 1, 2, 6, 1, 1, 0, 2]), 4, "reinforce_pp_baseline")
    s = 1.5118578920369088 + 1e-4
    assert_close(advantages, [0, -2 / s, -1 / s, 3 / s, 0, 0, -1 / s, 1 / s])


def test_reinforce_pp_baseline_whitens_over_tokens():
    """As published: G = 2, rewards [1, 0], lengths [1, 3] -> x = [0.5, -0.5] on 1 and 3 tokens; token mean
    -0.25, token deviations [0.75, -0.25 x 3], unbiased token std sqrt(0.75 / 3) = 0.5 -> A = [1.5, -0.5]
    (eps 1e-4 makes them 0.75 / 0.5001 and -0.25 / 0.5001)."""
    lengths = torch.tensor([1, 3])
    advantages = compute_advantages(t([1, 0]), 2, "reinforce_pp_baseline", lengths=lengths, eps=1e-12)
    assert_close(advantages, [1.5, -0.5])
    advantages = compute_advantages(t([1, 0]), 2, "reinforce_pp_baseline", lengths=lengths)
    assert_close(advantages, [0.75 / 0.5001, -0.25 / 0.5001])


def test_reinforce_pp_baseline_ignores_responses_without_loss_tokens():
    """A response of length 0 (masked, e.g. truncated) is in its group's mean but not in the whitening:
    group [1, 0 | 2, 0] with lengths [1, 3 | 0, 5]: x = [0.5, -0.5 | 1, -1] over 1 + 3 + 5 tokens."""
    advantages = compute_advantages(t([1, 0, 2, 0]), 2, "reinforce_pp_baseline", lengths=torch.tensor([1, 3, 0, 5]))
    x = t([0.5, -0.5, 1.0, -1.0])
    tokens = x.repeat_interleave(torch.tensor([1, 3, 0, 5]))
    assert_close(advantages, ((x - tokens.mean()) / (tokens.std() + 1e-4)).tolist())


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("value", [0.1, 7.0, -1e6, 1 / 3])
def test_identical_rewards_give_exactly_zero_advantage(estimator, value):
    """A group of equal rewards has no signal: A = 0 exactly (mean(0.1, 0.1, 0.1) rounds, the guard must not)."""
    advantages = compute_advantages(torch.full((6,), value, dtype=torch.float64), 3, estimator)
    assert torch.equal(advantages, torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("scale_rewards", [True, False, "batch"])
def test_group_size_one_gives_zero_advantage_without_nan(estimator, scale_rewards):
    """G = 1: each sample is its own baseline, A = r - r = 0 (and no 0/0 from an unbiased std of one value)."""
    advantages = compute_advantages(t([1.0, 0.0, 5.0]), 1, estimator, scale_rewards=scale_rewards)
    assert torch.equal(advantages, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
def test_empty_batch_gives_empty_advantages(estimator):
    """No groups left (e.g. after dynamic sampling): an empty result, not a crash or NaN."""
    assert compute_advantages(torch.zeros(0), 4, estimator).shape == (0,)


def test_integer_rewards_are_accepted_as_floats():
    """Rewards [1, 0] as int64: mean 0.5, std = sqrt(0.5) = 0.7071068, A = +-0.5 / 0.7072068 = +-0.7070068."""
    advantages = compute_advantages(torch.tensor([1, 0]), 2)
    assert advantages.dtype == torch.get_default_dtype()
    torch.testing.assert_close(advantages, torch.tensor([0.7070067, -0.7070067]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rewards=torch.zeros(6), num_generations=4), "not a multiple of num_generations=4"),
    (dict(rewards=torch.zeros(6), num_generations=0), "num_generations must be a positive integer"),
    (dict(rewards=torch.zeros(6), num_generations=3, estimator="ppo"), "unknown advantage estimator 'ppo'"),
    (dict(rewards=torch.zeros(2, 3), num_generations=3), r"must be 1-d \[B\*G\]"),
    (dict(rewards=torch.tensor([1.0, float("nan"), 0.0]), num_generations=3), r"non-finite values at rows \[1\]"),
    (dict(rewards=torch.zeros(4), num_generations=2, eps=0.0), "eps must be > 0"),
    (dict(rewards=torch.zeros(4), num_generations=2, scale_rewards="std"), "scale_rewards must be"),
    (dict(rewards=torch.zeros(4), num_generations=2, lengths=torch.ones(3)), r"lengths must be \[B\*G\] = \(4,\)"),
    (dict(rewards=torch.zeros(2), num_generations=2, lengths=torch.tensor([1, -1])), "token counts >= 0"),
])  # fmt: skip
def test_bad_input_raises_user_error_naming_it(kwargs, message):
    with pytest.raises(UserError, match=message):
        compute_advantages(**kwargs)


# Process supervision. One group of G = 2 responses, completions of 6 tokens:
#   response 0: step A ends at token 1 (reward 1), step B ends at token 4 (reward 0); token 5 follows the last step
#   response 1: one step ends at token 2 (reward 1); its second step slot is padding (holds NaN, must be ignored)
STEP_REWARDS = t([[1.0, 0.0], [1.0, float("nan")]])
STEP_ENDS = torch.tensor([[1, 4], [2, 99]])
STEP_MASK = torch.tensor([[True, True], [True, False]])


def test_process_supervision_sums_normalised_rewards_of_later_steps():
    """All steps of the group R = {1, 0, 1}: mean 2/3, std = sqrt(1/3) = 0.5773503.
    r~ = (r - 2/3) / 0.5774503: step A and response 1's step: 0.5772503, step B: -1.1545006.
    A_{i,t} = sum of r~ of steps ending at or after t:
      response 0: t <= 1: 0.5772503 - 1.1545006 = -0.5772503; 2 <= t <= 4: -1.1545006; t = 5: 0
      response 1: t <= 2: 0.5772503; t >= 3: 0"""
    advantages = process_supervision_advantages(STEP_REWARDS, STEP_ENDS, STEP_MASK, num_generations=2, seq_len=6)
    up, down = 0.5772502865071344, -1.1545005730142688
    assert_close(advantages, [[up + down, up + down, down, down, down, 0], [up, up, up, 0, 0, 0]])


def test_process_supervision_without_scaling_only_centres():
    """scale_rewards=False: r~ = r - 2/3 -> step A 1/3, step B -2/3, response 1's step 1/3.
    response 0: [-1/3, -1/3, -2/3, -2/3, -2/3, 0]; response 1: [1/3, 1/3, 1/3, 0, 0, 0]."""
    advantages = process_supervision_advantages(STEP_REWARDS, STEP_ENDS, STEP_MASK, 2, 6, scale_rewards=False)
    assert_close(advantages, [[-1 / 3, -1 / 3, -2 / 3, -2 / 3, -2 / 3, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0]])


def test_process_supervision_scale_names_match_the_booleans():
    """The recipe's scale_rewards strings reach process supervision: "none" is False, "group" is True."""
    for name, flag in (("none", False), ("group", True)):
        assert_close(process_supervision_advantages(STEP_REWARDS, STEP_ENDS, STEP_MASK, 2, 6, scale_rewards=name),
                     process_supervision_advantages(STEP_REWARDS, STEP_ENDS, STEP_MASK, 2, 6, scale_rewards=flag).tolist())


def test_process_supervision_batch_scale_divides_by_the_std_of_every_step():
    """Groups as in the test below: centred per group [0, -, -1, 1]; batch steps {5, 2, 4}: std sqrt(7/3)."""
    advantages = process_supervision_advantages(
        t([[5.0, 0.0], [2.0, 4.0]]), torch.tensor([[0, 0], [0, 2]]), torch.tensor([[True, False], [True, True]]), 1, 3,
        scale_rewards="batch")
    r = 1 / (math.sqrt(7 / 3) + 1e-4)
    assert_close(advantages, [[0, 0, 0], [-r + r, r, r]])


def test_process_supervision_groups_are_normalised_separately():
    """Two groups of one response each (G = 1): a group with one step has no spread, so r~ = 0 everywhere;
    the second group has steps [2, 4] (mean 3, unbiased std sqrt(2)): r~ = -+1 / (1.4142136 + 1e-4)."""
    advantages = process_supervision_advantages(
        t([[5.0, 0.0], [2.0, 4.0]]), torch.tensor([[0, 0], [0, 2]]), torch.tensor([[True, False], [True, True]]), 1, 3
    )
    r = 1 / (math.sqrt(2) + 1e-4)
    assert_close(advantages, [[0, 0, 0], [-r + r, r, r]])


def test_process_supervision_rejects_step_end_outside_completion():
    with pytest.raises(UserError, match=r"step_ends\[1, 0\] = 6 is outside the completion \(seq_len=6\)"):
        process_supervision_advantages(STEP_REWARDS, torch.tensor([[1, 4], [6, 0]]), STEP_MASK, 2, 6)


def test_process_supervision_rejects_mismatched_shapes():
    with pytest.raises(UserError, match="must all be"):
        process_supervision_advantages(STEP_REWARDS, STEP_ENDS[:, :1], STEP_MASK, 2, 6)


def test_negative_advantages_are_scaled_and_positive_ones_kept():
    from grpo.algorithms.advantages import scale_negative_advantages

    advantages = torch.tensor([1.5, -0.5, 0.0, -2.0])
    torch.testing.assert_close(scale_negative_advantages(advantages, 0.1), torch.tensor([1.5, -0.05, 0.0, -0.2]))
    torch.testing.assert_close(scale_negative_advantages(advantages, 1.0), advantages)
    assert (scale_negative_advantages(advantages, 0.0) >= 0).all()
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        scale_negative_advantages(advantages, 1.5)
