"""Per-token estimators of KL(pi_theta || pi_ref) from tokens sampled from pi_theta (Schulman, "Approximating
KL divergence", 2020). With log r = log pi_ref(o_t) - log pi_theta(o_t):

    k1 = -log r                  unbiased, high variance, can be negative
    k2 = (log r)^2 / 2           biased, low variance, >= 0
    k3 = (r - 1) - log r         unbiased, low variance, >= 0   (the estimator of DeepSeekMath's GRPO loss)

The same function estimates KL(p || q) for any pair when its first argument holds the log-probs of the
distribution the tokens were sampled from, e.g. KL(pi_old || pi_theta) = kl_estimate(old_logp, logp).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from common.errors import UserError

KLEstimator = Literal["k1", "k2", "k3"]
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")

# exp() of a log-ratio beyond this is clamped (verl clamps k3's log-ratio to [-20, 20] too): e^20 ~ 4.9e8
# keeps the value and its gradient finite in fp32/bf16, where e^89 would overflow. Beyond the clamp the
# gradient is 0: a token that far off is noise, not signal.
MAX_LOG_RATIO = 20.0


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: KLEstimator = "k3") -> Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate, same shape as logp. See the module docstring for formulas.

    logp: log pi_theta(o_t) of the sampled tokens (gradients flow through it); ref_logp: log pi_ref(o_t).
    Only k3 exponentiates, so only k3 clamps the log-ratio (to +-MAX_LOG_RATIO).
    """
    if logp.shape != ref_logp.shape:
        raise UserError(f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} must have the same shape")
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        log_r = log_r.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
        return torch.expm1(log_r) - log_r  # expm1: exact for the small log-ratios that dominate training
    raise UserError(f"unknown KL estimator {kind!r}; choose one of {list(KL_ESTIMATORS)}")
