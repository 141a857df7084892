"""KL estimators against hand-computed values. log r = log pi_ref - log pi_theta;
k1 = -log r, k2 = (log r)^2 / 2, k3 = r - 1 - log r."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo.algorithms import KL_ESTIMATORS, PolicyLossConfig, kl_estimate, policy_loss
from common.errors import UserError

# pi_theta = 0.5, pi_ref = 0.25: log r = -ln 2.  pi_theta = 0.2, pi_ref = 0.6: r = 3, log r = ln 3.
LOGP = torch.tensor([math.log(0.5), math.log(0.2)], dtype=torch.float64)
REF = torch.tensor([math.log(0.25), math.log(0.6)], dtype=torch.float64)


@pytest.mark.parametrize("kind, expected", [
    # k1 = -log r: ln 2, -ln 3
    ("k1", [0.6931471805599453, -1.0986122886681096]),
    # k2 = (log r)^2 / 2: (ln 2)^2 / 2, (ln 3)^2 / 2
    ("k2", [0.2402265069591007, 0.6034744804062908]),
    # k3 = r - 1 - log r: 0.5 - 1 + ln 2, 3 - 1 - ln 3
    ("k3", [0.1931471805599453, 0.90138771133189]),
])  # fmt: skip
def test_estimators_match_hand_values(kind, expected):
    torch.testing.assert_close(kl_estimate(LOGP, REF, kind), torch.tensor(expected, dtype=torch.float64))


def test_k3_gradient_is_one_minus_ratio():
    """d k3 / d log pi_theta = -r + 1: for r = 0.5 -> 0.5, for r = 3 -> -2."""
    logp = LOGP.clone().requires_grad_(True)
    kl_estimate(logp, REF, "k3").sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([0.5, -2.0], dtype=torch.float64))


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_equal_policies_give_zero(kind):
    """pi_theta = pi_ref: log r = 0, so every estimator is 0."""
    assert torch.equal(kl_estimate(LOGP, LOGP.clone(), kind), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_log_ratio_of_50_gives_finite_value_and_gradient(kind):
    """log r = +-50 in fp32 (e^50 = 5e21 and its square would overflow downstream): values and gradients are finite.
    k3 clamps log r to +-20: k3(+50) = e^20 - 21 = 485165174.4, k3(-50) = e^-20 + 19."""
    logp = torch.zeros(2, requires_grad=True)
    value = kl_estimate(logp, torch.tensor([50.0, -50.0]), kind)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(logp.grad).all()
    if kind == "k3":
        torch.testing.assert_close(value, torch.tensor([485165174.4097903, 19.000000002061153]))


def test_k3_is_bounded_at_10_with_zero_gradient_beyond():
    """logp 0, ref_logp 3: k3 = e^3 - 1 - 3 = 16.0855 with gradient 1 - e^3 = -19.0855 unbounded; bound 10 gives
    10 with gradient 0. A token inside the bound (ref_logp 1: e - 2 = 0.7183, gradient 1 - e) is unchanged."""
    ref = torch.tensor([3.0, 1.0], dtype=torch.float64)
    unbounded = (None, [16.085536923187668, 0.718281828459045], [-19.085536923187668, -1.718281828459045])
    for bound, value, grad in [unbounded, (10.0, [10.0, 0.718281828459045], [0.0, -1.718281828459045])]:
        logp = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        estimate = kl_estimate(logp, ref, "k3", bound)
        estimate.sum().backward()
        torch.testing.assert_close(estimate.detach(), torch.tensor(value, dtype=torch.float64))
        torch.testing.assert_close(logp.grad, torch.tensor(grad, dtype=torch.float64))


def test_the_loss_bounds_the_kl_by_default():
    """PolicyLossConfig's default kl_bound is 10: with logp 0 and ref_logp 30 at every token, loss/kl = beta * 10,
    not beta * (e^20 - 21), and no gradient comes from the KL term."""
    assert PolicyLossConfig().kl_bound == 10.0
    logp = torch.zeros(1, 3, requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, metrics = policy_loss(logp, None, torch.zeros(1), mask, PolicyLossConfig(beta=0.1),
                                ref_logp=torch.full((1, 3), 30.0))  # fmt: skip
    loss.backward()
    assert metrics["loss/kl"] == pytest.approx(1.0)
    assert torch.equal(logp.grad, torch.zeros(1, 3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=16), st.sampled_from(sorted(KL_ESTIMATORS)))
def test_bounded_estimates_and_gradients_for_any_log_ratio(log_ratios, kind):
    """With the bound 10, for any log r in fp32: |estimate| <= 10 and the gradient is finite and at most 12.7 in
    size (k3 <= 10 means r <= 13.7, so |1 - r| < 12.7; k2 <= 10 means |log r| <= 4.5; k1's is 1)."""
    logp = torch.zeros(len(log_ratios), requires_grad=True)
    estimate = kl_estimate(logp, torch.tensor(log_ratios), kind, bound=10.0)
    estimate.sum().backward()
    assert estimate.abs().max() <= 10.0
    assert torch.isfinite(logp.grad).all() and logp.grad.abs().max() <= 12.7


def test_unknown_estimator_and_mismatched_shapes_raise_user_error():
    with pytest.raises(UserError, match="unknown KL estimator 'k4'"):
        kl_estimate(LOGP, REF, "k4")
    with pytest.raises(UserError, match=r"logp \(2,\) and ref_logp \(1,\) must have the same shape"):
        kl_estimate(LOGP, REF[:1], "k3")
