"""KL estimators against hand-computed values. log r = log pi_ref - log pi_theta;
k1 = -log r, k2 = (log r)^2 / 2, k3 = r - 1 - log r."""

import math

import pytest
import torch

from grpo.algorithms import kl_estimate
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


def test_unknown_estimator_and_mismatched_shapes_raise_user_error():
    with pytest.raises(UserError, match="unknown KL estimator 'k4'"):
        kl_estimate(LOGP, REF, "k4")
    with pytest.raises(UserError, match=r"logp \(2,\) and ref_logp \(1,\) must have the same shape"):
        kl_estimate(LOGP, REF[:1], "k3")
