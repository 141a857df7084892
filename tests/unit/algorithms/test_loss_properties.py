"""Properties of policy_loss on random batches (hypothesis): bounded values and gradients for any log-ratio,
and responses whose tokens are all masked change nothing."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo.algorithms import PolicyLossConfig, policy_loss
from grpo.algorithms.kl import MAX_LOG_RATIO
from grpo.algorithms.losses import MAX_SEQUENCE_LOG_RATIO

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)
LOSS_TYPES = st.sampled_from(["grpo", "dapo", "dr_grpo"])
LEVELS = st.sampled_from(["token", "sequence"])


@st.composite
def batches(draw, max_log_ratio=5.0):
    """(logp, old_logp, advantages [N], mask [N, T]) in float64, N in 1..5, T in 1..6, every row with a token."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    floats = st.floats(-max_log_ratio, max_log_ratio)
    log_ratio = torch.tensor(draw(st.lists(floats, min_size=rows * cols, max_size=rows * cols)), dtype=torch.float64)
    lengths = torch.tensor(draw(st.lists(st.integers(1, cols), min_size=rows, max_size=rows)))
    advantages = torch.tensor(draw(st.lists(st.floats(-5, 5), min_size=rows, max_size=rows)), dtype=torch.float64)
    logp = -torch.rand(rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(rows * 7 + cols))
    return logp, logp - log_ratio.view(rows, cols), advantages, torch.arange(cols) < lengths.unsqueeze(-1)


def loss_and_grad(logp, old, advantages, mask, config, ref=None):
    logp = logp.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, old, advantages, mask, config, ref_logp=ref)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad


@PROPERTY_SETTINGS
@given(batches(max_log_ratio=1e3), LOSS_TYPES, LEVELS)
def test_loss_and_gradient_are_bounded_for_any_log_ratio(batch, loss_type, level):
    """Without dual clip a ratio rho gives |l| = rho * |A| at most, and rho <= e^20 (token) or e^10 (sequence):
    whatever the log-ratios, |loss| and every gradient entry stay within that bound times max |A|."""
    logp, old, advantages, mask = batch
    config = PolicyLossConfig(loss_type=loss_type, importance_sampling_level=level, max_completion_length=6)
    loss, grad = loss_and_grad(logp, old, advantages, mask, config)
    bound = math.exp(MAX_LOG_RATIO if level == "token" else MAX_SEQUENCE_LOG_RATIO) * advantages.abs().max().item()
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss.abs() <= bound * (1 + 1e-9) and grad.abs().max() <= bound * (1 + 1e-9)


@PROPERTY_SETTINGS
@given(batches(), LOSS_TYPES, LEVELS, st.integers(1, 3))
def test_appending_fully_masked_rows_changes_neither_loss_nor_gradient(batch, loss_type, level, extra):
    """Rows whose mask is all 0 (truncated responses, dropped groups) may hold anything, NaN included: the loss
    and the gradient of the other rows are the same with or without them, and theirs is 0."""
    logp, old, advantages, mask = batch
    config = PolicyLossConfig(loss_type=loss_type, importance_sampling_level=level, max_completion_length=6,
                              beta=0.05)  # fmt: skip
    ref = logp - 0.3
    rows, cols = mask.shape
    garbage = torch.full((extra, cols), float("nan"), dtype=torch.float64)
    loss, grad = loss_and_grad(logp, old, advantages, mask, config, ref)
    padded_loss, padded_grad = loss_and_grad(
        torch.cat([logp, garbage]), torch.cat([old, garbage]), torch.cat([advantages, torch.full((extra,), 3.0,
        dtype=torch.float64)]), torch.cat([mask, torch.zeros(extra, cols, dtype=torch.bool)]), config,
        torch.cat([ref, garbage]))  # fmt: skip
    torch.testing.assert_close(padded_loss, loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(padded_grad[:rows], grad, rtol=1e-12, atol=1e-12)
    assert torch.equal(padded_grad[rows:], torch.zeros(extra, cols, dtype=torch.float64))
