"""Per-token estimators of KL(pi_theta || pi_ref) from tokens sampled from pi_theta (Schulman, "Approximating
KL divergence", 2020). With log r = log pi_ref(o_t) - log pi_theta(o_t):

    k1 = -log r                  unbiased, high variance, can be negative
    k2 = (log r)^2 / 2           biased, low variance, >= 0
    k3 = (r - 1) - log r         unbiased, low variance, >= 0   (the estimator of DeepSeekMath's GRPO loss)

The same function estimates KL(p || q) for any pair when its first argument holds the log-probs of the
distribution the tokens were sampled from, e.g. KL(pi_old || pi_theta) = kl_estimate(old_logp, logp).
The loss clamps each token's estimate to +-KL_BOUND (algorithm.kl_bound); a new estimator is a function of
log r plus its entry in KL_ESTIMATORS.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from common.errors import UserError

# exp() of a log-ratio beyond this is clamped (verl clamps k3's log-ratio to [-20, 20] too): e^20 ~ 4.9e8
# keeps the value and its gradient finite in fp32/bf16, where e^89 would overflow. Beyond the clamp the
# gradient is 0: a token that far off is noise, not signal.
MAX_LOG_RATIO = 20.0

# The loss's default bound on each token's KL estimate (verl's low_var_kl clamps k3 to [-10, 10]). Without it
# one token where the reference is far likelier than the policy adds e^20 to the loss (logp 0, ref_logp 3
# already gives 16.09 with gradient -19.09) and decides the direction of the whole step.
KL_BOUND = 10.0


def k1(log_r: Tensor) -> Tensor:
    return -log_r


def k2(log_r: Tensor) -> Tensor:
    return 0.5 * log_r**2


def k3(log_r: Tensor) -> Tensor:
    log_r = log_r.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return torch.expm1(log_r) - log_r  # expm1: exact for the small log-ratios that dominate training


# The registry the recipe's algorithm.kl_estimator chooses from: name -> estimate as a function of log r.
KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {"k1": k1, "k2": k2, "k3": k3}


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str = "k3", bound: float | None = None) -> Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate, same shape as logp. See the module docstring for formulas.

    logp: log pi_theta(o_t) of the sampled tokens (gradients flow through it); ref_logp: log pi_ref(o_t).
    kind: a key of KL_ESTIMATORS. bound: clamp each estimate to [-bound, bound], with zero gradient beyond
    (the loss passes KL_BOUND by default); None leaves it unbounded. Only k3 exponentiates, so only k3
    clamps the log-ratio (to +-MAX_LOG_RATIO) whatever the bound.
    """
    if logp.shape != ref_logp.shape:
        raise UserError(f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} must have the same shape")
    if kind not in KL_ESTIMATORS:
        raise UserError(f"unknown KL estimator {kind!r}; choose one of {list(KL_ESTIMATORS)}")
    if bound is not None and not bound > 0:
        raise UserError(f"the KL bound must be > 0 (or None for unbounded), got {bound!r}")
    value = KL_ESTIMATORS[kind](ref_logp - logp)
    return value if bound is None else value.clamp(-bound, bound)
