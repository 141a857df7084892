"""Properties of the outcome advantage estimators, checked on random groups (hypothesis).

Rewards are drawn from the grid k / 4 (|k| <= 40) and shifts from the same grid, so adding a constant is exact in
float64 and the only rounding is in the mean and std: the comparisons can be tight without false alarms.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo.algorithms import compute_advantages

grid = st.integers(-40, 40).map(lambda k: k / 4)


@st.composite
def grouped_rewards(draw):
    """(rewards [B*G] float64, G) with 1 <= B <= 4 and 1 <= G <= 8."""
    num_generations = draw(st.integers(1, 8))
    num_groups = draw(st.integers(1, 4))
    values = draw(st.lists(grid, min_size=num_groups * num_generations, max_size=num_groups * num_generations))
    return torch.tensor(values, dtype=torch.float64), num_generations


ESTIMATORS = st.sampled_from(["grpo", "dr_grpo", "rloo"])
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


@PROPERTY_SETTINGS
@given(grouped_rewards(), ESTIMATORS)
def test_advantages_sum_to_zero_within_each_group(case, estimator):
    rewards, num_generations = case
    sums = compute_advantages(rewards, num_generations, estimator).view(-1, num_generations).sum(dim=1)
    torch.testing.assert_close(sums, torch.zeros_like(sums), rtol=0, atol=1e-9)


@PROPERTY_SETTINGS
@given(grouped_rewards(), ESTIMATORS, st.data())
def test_adding_a_constant_to_a_group_changes_nothing(case, estimator, data):
    rewards, num_generations = case
    num_groups = len(rewards) // num_generations
    shifts = torch.tensor(data.draw(st.lists(grid, min_size=num_groups, max_size=num_groups)), dtype=torch.float64)
    shifted = rewards + shifts.repeat_interleave(num_generations)
    torch.testing.assert_close(
        compute_advantages(shifted, num_generations, estimator),
        compute_advantages(rewards, num_generations, estimator),
        rtol=0,
        atol=1e-9,
    )


@PROPERTY_SETTINGS
@given(grouped_rewards(), st.data())
def test_grpo_is_invariant_to_scaling_a_group_by_a_positive_factor(case, data):
    """(c r - c mean) / (c std + eps) equals (r - mean) / (std + eps) only up to eps, so eps is taken tiny here."""
    rewards, num_generations = case
    num_groups = len(rewards) // num_generations
    factors = data.draw(st.lists(st.floats(0.01, 100.0), min_size=num_groups, max_size=num_groups))
    factors = torch.tensor(factors, dtype=torch.float64)
    scaled = rewards * factors.repeat_interleave(num_generations)
    torch.testing.assert_close(
        compute_advantages(scaled, num_generations, "grpo", eps=1e-12),
        compute_advantages(rewards, num_generations, "grpo", eps=1e-12),
        rtol=1e-9,
        atol=1e-9,
    )


@PROPERTY_SETTINGS
@given(grouped_rewards(), st.data())
def test_reinforce_pp_baseline_weighs_each_response_by_its_tokens(case, data):
    """Whitening over tokens: the advantages equal whitening the flat token vector, in which response i's
    group-centred reward (the dr_grpo advantage) appears lengths[i] times (torch's unbiased mean and std)."""
    rewards, num_generations = case
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, 6), min_size=len(rewards), max_size=len(rewards))))
    advantages = compute_advantages(rewards, num_generations, "reinforce_pp_baseline", lengths=lengths)
    centred = compute_advantages(rewards, num_generations, "dr_grpo")
    tokens = centred.repeat_interleave(lengths)
    if tokens.numel() == 0:
        expected = centred
    else:
        std = tokens.std() if tokens.numel() >= 2 else torch.zeros((), dtype=tokens.dtype)
        expected = (centred - tokens.mean()) / (std + 1e-4)
    torch.testing.assert_close(advantages, expected, rtol=1e-9, atol=1e-9)
