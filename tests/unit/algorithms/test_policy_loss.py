"""policy_loss and aggregate_loss against values computed by hand from the formulas.

The shared example (2 responses, 3 token slots; response 1's last slot is masked and holds NaN):
    ratios rho = [[1.1, 1.3, 0.7], [0.7, 1.5, -]],  advantages A = [+1, -2],  epsilon = 0.2 (clip to [0.8, 1.2])
    l = -min(rho * A, clip(rho) * A):
      response 0 (A = +1): -min(1.1, 1.1) = -1.1;  -min(1.3, 1.2) = -1.2;  -min(0.7, 0.8) = -0.7   (sum -3.0)
      response 1 (A = -2): -min(-1.4, -1.6) = 1.6; -min(-3.0, -2.4) = 3.0                          (sum 4.6)
"""

import math

import pytest
import torch

from grpo.algorithms import METRIC_NAMES, PolicyLossConfig, aggregate_loss, policy_loss
from common.errors import UserError

NAN = float("nan")
RATIOS = [[1.1, 1.3, 0.7], [0.7, 1.5, 1.0]]
MASK = torch.tensor([[True, True, True], [True, True, False]])
ADVANTAGES = torch.tensor([1.0, -2.0], dtype=torch.float64)


def example_logp():
    """(logp with grad, old_logp) such that logp - old_logp = log(RATIOS); the masked slot holds NaN in both."""
    old = torch.tensor([[-1.0, -2.0, -0.5], [-3.0, -1.5, NAN]], dtype=torch.float64)
    logp = (old + torch.tensor(RATIOS, dtype=torch.float64).log()).detach().requires_grad_(True)
    return logp, old


def run(config, **kwargs):
    logp, old = example_logp()
    inputs = dict(logp=logp, old_logp=old, advantages=ADVANTAGES, mask=MASK, config=config)
    inputs.update(kwargs)
    loss, metrics = policy_loss(**inputs)
    return loss, metrics, logp


@pytest.mark.parametrize("config, expected", [
    # grpo: mean per response then over responses: (-3.0 / 3 + 4.6 / 2) / 2 = 0.65
    (PolicyLossConfig(loss_type="grpo"), 0.65),
    # dapo: all tokens of the batch: (-3.0 + 4.6) / 5 = 0.32
    (PolicyLossConfig(loss_type="dapo"), 0.32),
    # dr_grpo: sum / (N * max_completion_length) = 1.6 / (2 * 4) = 0.2
    (PolicyLossConfig(loss_type="dr_grpo", max_completion_length=4), 0.2),
    # clip-higher, epsilon_high 0.28: token (0, 1) becomes -min(1.3, 1.28) = -1.28 -> (-3.08 / 3 + 2.3) / 2
    (PolicyLossConfig(epsilon_high=0.28), 0.6366666666666666),
    # dual clip 1.4, only for A < 0: token (1, 1) becomes min(3.0, 2 * 1.4) = 2.8 -> (-1.0 + 4.4 / 2) / 2 = 0.6
    (PolicyLossConfig(dual_clip=1.4), 0.6),
])  # fmt: skip
def test_clipped_surrogate_with_each_aggregation(config, expected):
    loss, metrics, _ = run(config)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    assert metrics["loss/policy"] == pytest.approx(expected)


def test_metrics_of_the_example():
    """Clip fractions over the 5 tokens, as TRL counts them: low = (rho < 0.8 and A < 0): token (1, 0) -> 1/5;
    high = (rho > 1.2 and A > 0): token (0, 1) -> 1/5. Ratios: min 0.7, max 1.5, mean 5.3 / 5 = 1.06.
    kl/old = mean of k3 for KL(old || new) = rho - 1 - log rho over the tokens:
      (0.0046898 + 0.0376357 + 0.0566749 + 0.0566749 + 0.0945349) / 5 = 0.0500421."""
    _, metrics, _ = run(PolicyLossConfig())
    assert list(metrics) == list(METRIC_NAMES)
    expected = {"clip_frac/low": 0.2, "clip_frac/high": 0.2, "clip_frac/dual": 0.0, "ratio/min": 0.7,
                "ratio/mean": 1.06, "ratio/max": 1.5, "kl/old": 0.05004206709949691, "kl/ref": 0.0,
                "entropy": 0.0, "tis/weight_mean": 0.0, "tis/clipped_frac": 0.0, "loss/kl": 0.0,
                "loss/entropy": 0.0}  # fmt: skip
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name
    assert all(isinstance(value, float) for value in metrics.values())


def test_dual_clip_fraction():
    """Dual clip 1.4 caps tokens with A < 0 and rho > 1.4: token (1, 1) (rho 1.5) -> 1/5."""
    _, metrics, _ = run(PolicyLossConfig(dual_clip=1.4))
    assert metrics["clip_frac/dual"] == pytest.approx(0.2)


def test_kl_term_weighted_by_beta():
    """ref_logp = logp + ln 2 at every token: k3 = 2 - 1 - ln 2 = 0.3068528 per token, so its grpo mean is the same.
    loss = 0.65 + 0.1 * 0.3068528 = 0.6806853; kl/ref = 0.3068528; loss/kl = 0.0306853."""
    logp, _ = example_logp()
    ref = logp.detach() + math.log(2)
    loss, metrics, _ = run(PolicyLossConfig(beta=0.1), ref_logp=ref)
    torch.testing.assert_close(loss, torch.tensor(0.6806852819440055, dtype=torch.float64))
    assert metrics["kl/ref"] == pytest.approx(0.3068528194400547)
    assert metrics["loss/kl"] == pytest.approx(0.03068528194400547)
    assert metrics["loss/policy"] + metrics["loss/kl"] == pytest.approx(loss.item())


def test_kl_is_reported_but_not_in_the_loss_when_beta_is_zero():
    """beta = 0: loss stays 0.65 even with ref_logp given; kl/ref is still the k3 mean 0.3068528."""
    logp, _ = example_logp()
    loss, metrics, _ = run(PolicyLossConfig(beta=0.0), ref_logp=logp.detach() + math.log(2))
    assert loss.item() == pytest.approx(0.65)
    assert metrics["kl/ref"] == pytest.approx(0.3068528194400547)
    assert metrics["loss/kl"] == 0.0


def test_entropy_bonus():
    """entropy H = [[0.5, 1.0, 1.5], [2.0, 3.0, -]], coef 0.01: grpo mean (1.0 + 2.5) / 2 = 1.75;
    loss = 0.65 - 0.01 * 1.75 = 0.6325; metric entropy = token mean 8.0 / 5 = 1.6."""
    entropy = torch.tensor([[0.5, 1.0, 1.5], [2.0, 3.0, NAN]], dtype=torch.float64)
    loss, metrics, _ = run(PolicyLossConfig(entropy_coef=0.01), entropy=entropy)
    assert loss.item() == pytest.approx(0.6325)
    assert metrics["entropy"] == pytest.approx(1.6)
    assert metrics["loss/entropy"] == pytest.approx(-0.0175)


def test_truncated_importance_sampling():
    """w = min(pi_old / pi_rollout, cap 2), pi_old / pi_rollout = [[1, 3, 0.5], [2.5, 1, -]] -> [[1, 2, 0.5], [2, 1]].
    l * w: response 0: -1.1, -2.4, -0.35 (mean -1.2833333); response 1: 3.2, 3.0 (mean 3.1).
    loss = (-1.2833333 + 3.1) / 2 = 0.9083333; tis/weight_mean = 6.5 / 5 = 1.3; tis/clipped_frac = 2 / 5."""
    _, old = example_logp()
    rollout = old - torch.tensor([[1.0, 3.0, 0.5], [2.5, 1.0, 1.0]], dtype=torch.float64).log()
    loss, metrics, _ = run(PolicyLossConfig(tis_cap=2.0), rollout_logp=rollout)
    assert loss.item() == pytest.approx(0.9083333333333333)
    assert metrics["tis/weight_mean"] == pytest.approx(1.3)
    assert metrics["tis/clipped_frac"] == pytest.approx(0.4)


def test_tis_statistics_without_cap_do_not_change_the_loss():
    """rollout_logp given, tis_cap None: loss stays 0.65; weight_mean = (1 + 3 + 0.5 + 2.5 + 1) / 5 = 1.6 (uncapped)."""
    _, old = example_logp()
    rollout = old - torch.tensor([[1.0, 3.0, 0.5], [2.5, 1.0, 1.0]], dtype=torch.float64).log()
    loss, metrics, _ = run(PolicyLossConfig(), rollout_logp=rollout)
    assert loss.item() == pytest.approx(0.65)
    assert metrics["tis/weight_mean"] == pytest.approx(1.6)
    assert metrics["tis/clipped_frac"] == 0.0


def test_gspo_sequence_level_ratio():
    """GSPO: rho_i = exp(mean_t log rho_{i,t}): rho_0 = (1.1 * 1.3 * 0.7)^(1/3) = 1.0003332,
    rho_1 = sqrt(0.7 * 1.5) = 1.0246951.
    A = [1, 2], epsilon 0.01: response 0 unclipped (-1.0003332 per token), response 1 clipped at 1.01 (-2.02 per token).
    grpo: (-1.0003332 - 2.02) / 2 = -1.5101666; clip_frac/high = 2 tokens / 5 = 0.4."""
    config = PolicyLossConfig(importance_sampling_level="sequence", epsilon=0.01)
    loss, metrics, _ = run(config, advantages=torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert loss.item() == pytest.approx(-1.5101666111419547)
    assert metrics["clip_frac/high"] == pytest.approx(0.4)
    assert metrics["ratio/max"] == pytest.approx(1.0246950765959597)


def test_per_token_advantages_equal_broadcast_ones():
    """A given per token as [[1, 1, 1], [-2, -2, NaN (masked)]] gives the same loss as A = [1, -2]: 0.65."""
    token_advantages = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, NAN]], dtype=torch.float64)
    loss, _, logp = run(PolicyLossConfig(), advantages=token_advantages)
    loss.backward()
    assert loss.item() == pytest.approx(0.65)
    assert torch.isfinite(logp.grad).all()


def test_on_policy_ratio_is_one():
    """old_logp None: rho = 1 everywhere, l = -A, grpo loss = -(1 + (-2)) / 2 = 0.5; ratios all 1, kl/old 0."""
    loss, metrics, _ = run(PolicyLossConfig(), old_logp=None)
    assert loss.item() == pytest.approx(0.5)
    assert (metrics["ratio/min"], metrics["ratio/max"], metrics["kl/old"]) == (1.0, 1.0, 0.0)


def test_masked_nan_slots_give_finite_gradient():
    """The masked slot (1, 2) holds NaN in logp, old_logp and ref_logp; loss and gradient stay finite, 0 there."""
    _, old = example_logp()
    loss, _, logp = run(PolicyLossConfig(beta=0.1), ref_logp=old - 0.5)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logp.grad).all() and logp.grad[1, 2] == 0


def test_total_loss_is_the_sum_of_its_reported_parts():
    logp, old = example_logp()
    config = PolicyLossConfig(beta=0.05, entropy_coef=0.02, epsilon_high=0.28, tis_cap=2.0)
    loss, metrics = policy_loss(logp, old, ADVANTAGES, MASK, config, ref_logp=old - 0.3,
                                rollout_logp=old + 0.1, entropy=torch.ones(2, 3, dtype=torch.float64))  # fmt: skip
    parts = metrics["loss/policy"] + metrics["loss/kl"] + metrics["loss/entropy"]
    assert parts == pytest.approx(loss.item())


@pytest.mark.parametrize("log_ratio", [50.0, -50.0, 100.0, -100.0])
@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_extreme_log_ratios_give_finite_loss_and_gradient(log_ratio, advantage):
    """log(pi_theta / pi_old), log(pi_ref / pi_theta) and log(pi_old / pi_rollout) of +-50 in fp32: all finite.
    (+-100 too: e^100 overflows fp32, so this also checks the clamp of the log-ratio before exp.)"""
    logp = torch.zeros(2, 4, requires_grad=True)
    far = torch.full((2, 4), -log_ratio)
    config = PolicyLossConfig(beta=0.1, tis_cap=2.0, dual_clip=3.0)
    loss, metrics = policy_loss(logp, far, torch.full((2,), advantage), torch.ones(2, 4, dtype=torch.bool), config,
                                ref_logp=-far, rollout_logp=2 * far)  # fmt: skip
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert all(math.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("rows", [0, 3])
def test_all_tokens_masked_or_empty_batch_gives_zero_loss_and_metrics(loss_type, rows):
    """No token counts (all masked, or 0 responses after dynamic sampling): loss 0 that backward() accepts,
    zero gradient, every metric 0 -- no NaN."""
    logp = torch.randn(rows, 4, requires_grad=True)
    config = PolicyLossConfig(loss_type=loss_type, max_completion_length=4, beta=0.1, entropy_coef=0.1, tis_cap=2.0)
    loss, metrics = policy_loss(logp, None, torch.ones(rows), torch.zeros(rows, 4, dtype=torch.bool), config,
                                ref_logp=torch.randn(rows, 4), rollout_logp=torch.randn(rows, 4),
                                entropy=torch.rand(rows, 4))  # fmt: skip
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logp.grad, torch.zeros(rows, 4))
    assert set(metrics.values()) == {0.0}


def test_aggregations_by_hand():
    """l = [[1, 2, 3], [4, 5, 6]], mask = [[1, 1, 0], [1, 0, 0]] (3 tokens):
    grpo: ((1 + 2) / 2 + 4 / 1) / 2 = 2.75; dapo: (1 + 2 + 4) / 3 = 7/3; dr_grpo (L = 5): 7 / (2 * 5) = 0.7."""
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert aggregate_loss(per_token, mask, "grpo").item() == pytest.approx(2.75)
    assert aggregate_loss(per_token, mask, "dapo").item() == pytest.approx(7 / 3)
    assert aggregate_loss(per_token, mask, "dr_grpo", max_completion_length=5).item() == pytest.approx(0.7)


@pytest.mark.parametrize("loss_type, expected", [
    ("grpo", 3.0),  # (2 + 4) / 2 over the one response that keeps tokens, not (3 + 0) / 2 = 1.5
    ("dapo", 3.0),  # (2 + 4) / 2 tokens
    ("dr_grpo", 1.5),  # (2 + 4) / (1 response * max_completion_length 4), not / (2 * 4)
])  # fmt: skip
def test_responses_without_tokens_are_not_counted(loss_type, expected):
    """loss [[2, 4], [9, 9]], mask [[1, 1], [0, 0]] (the second response masked, e.g. truncated)."""
    per_token = torch.tensor([[2.0, 4.0], [9.0, 9.0]])
    mask = torch.tensor([[True, True], [False, False]])
    assert aggregate_loss(per_token, mask, loss_type, max_completion_length=4).item() == expected


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_all_masked_batch_aggregates_to_exactly_zero(loss_type):
    per_token = torch.tensor([[2.0, NAN], [9.0, 9.0]], requires_grad=True)
    loss = aggregate_loss(per_token, torch.zeros(2, 2, dtype=torch.bool), loss_type, max_completion_length=4)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(per_token.grad, torch.zeros(2, 2))


@pytest.mark.parametrize("config", [
    PolicyLossConfig(loss_type="grpo", beta=0.04),
    PolicyLossConfig(loss_type="dapo", epsilon_high=0.28, entropy_coef=0.01),
    PolicyLossConfig(loss_type="dr_grpo", max_completion_length=6, dual_clip=3.0),
    PolicyLossConfig(loss_type="grpo", importance_sampling_level="sequence", epsilon=3e-4, epsilon_high=4e-4),
])  # fmt: skip
def test_micro_batches_with_global_normalisers_add_up_to_the_full_batch(config):
    """Summing the losses of micro-batches [0:3] and [3:5], each given the whole batch's response and token counts,
    gives the full batch's loss and gradient."""
    generator = torch.Generator().manual_seed(0)
    logp = (torch.randn(5, 6, generator=generator, dtype=torch.float64) * 0.1).requires_grad_(True)
    old = logp.detach() + torch.randn(5, 6, generator=generator, dtype=torch.float64) * 0.3
    ref = logp.detach() + torch.randn(5, 6, generator=generator, dtype=torch.float64) * 0.3
    entropy = torch.rand(5, 6, generator=generator, dtype=torch.float64)
    advantages = torch.randn(5, generator=generator, dtype=torch.float64)
    mask = torch.arange(6) < torch.tensor([[6], [2], [4], [1], [5]])

    def loss_of(rows, **normalisers):
        loss, _ = policy_loss(logp[rows], old[rows], advantages[rows], mask[rows], config, ref_logp=ref[rows],
                              entropy=entropy[rows], **normalisers)  # fmt: skip
        return loss

    full = loss_of(slice(0, 5))
    (full_grad,) = torch.autograd.grad(full, logp)
    normalisers = dict(num_responses_in_batch=5, num_tokens_in_batch=int(mask.sum()))
    summed = loss_of(slice(0, 3), **normalisers) + loss_of(slice(3, 5), **normalisers)
    (summed_grad,) = torch.autograd.grad(summed, logp)
    torch.testing.assert_close(summed, full)
    torch.testing.assert_close(summed_grad, full_grad)


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss_type="ppo"), "loss_type must be one of"),
    (dict(epsilon=0.0), r"epsilon must be in \(0, 1\)"),
    (dict(epsilon=1.0), r"epsilon must be in \(0, 1\)"),
    (dict(epsilon_high=-0.1), "epsilon_high must be > 0"),
    (dict(dual_clip=1.0), "dual_clip must be > 1"),
    (dict(importance_sampling_level="group"), "importance_sampling_level must be"),
    (dict(beta=-0.1), "beta must be >= 0"),
    (dict(kl_estimator="k4"), "kl_estimator must be one of"),
    (dict(entropy_coef=float("nan")), "entropy_coef must be a finite number"),
    (dict(loss_type="dr_grpo"), "max_completion_length, which must be a positive integer"),
    (dict(tis_cap=0.0), "tis_cap must be > 0"),
])  # fmt: skip
def test_bad_config_raises_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        PolicyLossConfig(**kwargs)


def test_missing_or_misshapen_inputs_raise_user_error():
    logp, old = example_logp()
    with pytest.raises(UserError, match="beta=0.1 puts the KL to the reference in the loss, but no ref_logp"):
        policy_loss(logp, old, ADVANTAGES, MASK, PolicyLossConfig(beta=0.1))
    with pytest.raises(UserError, match="tis_cap is set but no rollout_logp"):
        policy_loss(logp, old, ADVANTAGES, MASK, PolicyLossConfig(tis_cap=2.0))
    with pytest.raises(UserError, match="entropy_coef=0.01 needs the per-token entropy"):
        policy_loss(logp, old, ADVANTAGES, MASK, PolicyLossConfig(entropy_coef=0.01))
    with pytest.raises(UserError, match=r"old_logp has shape \(2, 2\), expected \(2, 3\)"):
        policy_loss(logp, old[:, :2], ADVANTAGES, MASK, PolicyLossConfig())
    with pytest.raises(UserError, match=r"advantages must be \[N\] or \[N, T\]"):
        policy_loss(logp, old, ADVANTAGES[:1], MASK, PolicyLossConfig())


def test_gspo_sequence_log_ratio_of_12_with_negative_advantage_is_bounded():
    """Every token's log(pi_theta / pi_old) is 12, so the sequence log-ratio is 12; A = -1, no dual clip.
    l = -min(rho * A, clip(rho) * A) = rho: the log-ratio is clamped at 10, so loss = e^10 = 22026.47 (not
    e^12 = 162754.79) with zero gradient; with dual clip 3 it is 3. The token level is clamped at 20 instead."""
    mask = torch.ones(1, 3, dtype=torch.bool)
    for config, expected in [(PolicyLossConfig(importance_sampling_level="sequence"), math.exp(10)),
                             (PolicyLossConfig(importance_sampling_level="sequence", dual_clip=3.0), 3.0),
                             (PolicyLossConfig(importance_sampling_level="token"), math.exp(12))]:  # fmt: skip
        logp = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        loss, _ = policy_loss(logp, torch.full((1, 3), -12.0, dtype=torch.float64), torch.tensor([-1.0]), mask, config)
        loss.backward()
        assert loss.item() == pytest.approx(expected, rel=1e-12)
        if expected != math.exp(12):
            assert torch.equal(logp.grad, torch.zeros(1, 3, dtype=torch.float64))
