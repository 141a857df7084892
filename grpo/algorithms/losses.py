"""The GRPO policy loss: clipped surrogate (token- or sequence-level ratio), KL to the reference, entropy bonus,
truncated importance sampling against the rollout engine, and the three ways of averaging tokens.

Per token t of response i (DeepSeekMath eq. 3, with DAPO's clip-higher and verl's dual clip):

    rho_{i,t} = pi_theta(o_t) / pi_old(o_t)                       (token level)
    rho_i     = exp(mean_t log(pi_theta(o_t) / pi_old(o_t)))      (sequence level: GSPO, arXiv 2507.18071)
    l_{i,t}   = -min(rho * A, clip(rho, 1 - epsilon, 1 + epsilon_high) * A)
    dual clip (Ye et al. 2020, arXiv 1912.09729), only where A < 0:  l_{i,t} = min(l_{i,t}, -A * dual_clip)
    TIS (Yao et al. 2025, "off-policy RL in disguise"):  l_{i,t} *= min(pi_old(o_t) / pi_rollout(o_t), tis_cap)
    loss      = agg(l) + beta * agg(clamp(KL_t, -kl_bound, kl_bound)) - entropy_coef * agg(H_t)

Log-ratios are clamped before exp(), with zero gradient beyond: a token's at +-MAX_LOG_RATIO (20), a
sequence's at +-MAX_SEQUENCE_LOG_RATIO (10, verl's GSPO clamp). One sequence ratio multiplies every token of
its response, so with A < 0 and no dual clip a response whose tokens all drifted would otherwise add
e^20 * |A| per token.

Option names follow TRL's GRPOConfig (beta, epsilon, epsilon_high, loss_type, importance_sampling_level,
max_completion_length) and the aggregations match TRL's loss_type of the same name, except that a response
with no unmasked token is not counted (TRL divides by every response). The README's algorithm table lists
what each option matches in TRL and verl.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

from grpo.algorithms.kl import KL_BOUND, KL_ESTIMATORS, MAX_LOG_RATIO, kl_estimate
from common.errors import UserError

MAX_SEQUENCE_LOG_RATIO = 10.0

METRIC_NAMES: tuple[str, ...] = (
    "clip_frac/low", "clip_frac/high", "clip_frac/dual", "ratio/min", "ratio/mean", "ratio/max",
    "kl/ref", "kl/old", "entropy", "tis/weight_mean", "tis/clipped_frac", "loss/policy", "loss/kl",
    "loss/entropy",
)  # fmt: skip


@dataclass(frozen=True)
class PolicyLossConfig:
    """Options of `policy_loss` (TRL names where the concept is the same).

    loss_type: token aggregation, a key of LOSS_TYPES (see aggregate_loss). "grpo": mean over each
        response's tokens, then over responses (DeepSeekMath); "dapo": mean over all tokens of the batch
        (DAPO, arXiv 2503.14476); "dr_grpo": sum over all tokens / (number of responses *
        max_completion_length) (Dr. GRPO, arXiv 2503.20783). Responses count only if a token of theirs does.
    epsilon: lower clip range, ratio >= 1 - epsilon. epsilon_high: upper clip range, ratio <= 1 + epsilon_high
        (None: same as epsilon; DAPO's clip-higher uses 0.28). GSPO's sequence-level ratio wants far smaller
        ranges (its paper uses 3e-4 and 4e-4).
    dual_clip: for negative advantages, cap the per-token loss at -A * dual_clip (> 1; verl's clip_ratio_c,
        which verl applies with 3.0 by default). None (the default, as TRL and DeepSeekMath): no cap.
    importance_sampling_level: "token" (GRPO) or "sequence" (GSPO: one length-normalised ratio per response).
    beta: weight of the KL-to-reference term; 0 needs no reference log-probs.
    kl_estimator: a key of KL_ESTIMATORS: "k1", "k2" or "k3" (see grpo.algorithms.kl).
    kl_bound: each token's KL estimate is clamped to [-kl_bound, kl_bound], zero gradient beyond (verl's
        low_var_kl uses 10); None: unbounded.
    entropy_coef: weight of the entropy bonus (subtracted from the loss, so higher entropy lowers it).
    max_completion_length: the constant length divisor of "dr_grpo" (required for it).
    tis_cap: cap of the truncated importance weight pi_old / pi_rollout (None: no correction; verl and TRL
        default to 2).
    """

    loss_type: str = "grpo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    dual_clip: float | None = None
    importance_sampling_level: Literal["token", "sequence"] = "token"
    beta: float = 0.0
    kl_estimator: str = "k3"
    kl_bound: float | None = KL_BOUND
    entropy_coef: float = 0.0
    max_completion_length: int | None = None
    tis_cap: float | None = None

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise UserError(f"loss_type must be one of {list(LOSS_TYPES)}, got {self.loss_type!r}")
        if not 0 < self.epsilon < 1:
            raise UserError(f"epsilon must be in (0, 1) so that 1 - epsilon > 0, got {self.epsilon!r}")
        if self.epsilon_high is not None and not self.epsilon_high > 0:
            raise UserError(f"epsilon_high must be > 0 (or null for epsilon), got {self.epsilon_high!r}")
        if self.dual_clip is not None and not self.dual_clip > 1:
            raise UserError(f"dual_clip must be > 1 (or null to disable), got {self.dual_clip!r}")
        if self.importance_sampling_level not in ("token", "sequence"):
            raise UserError(
                f"importance_sampling_level must be 'token' or 'sequence', got {self.importance_sampling_level!r}"
            )
        if not self.beta >= 0:
            raise UserError(f"beta must be >= 0, got {self.beta!r}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise UserError(f"kl_estimator must be one of {list(KL_ESTIMATORS)}, got {self.kl_estimator!r}")
        if self.kl_bound is not None and not self.kl_bound > 0:
            raise UserError(f"kl_bound must be > 0 (or null for unbounded), got {self.kl_bound!r}")
        if not math.isfinite(self.entropy_coef):
            raise UserError(f"entropy_coef must be a finite number, got {self.entropy_coef!r}")
        if self.loss_type == "dr_grpo" and (
            isinstance(self.max_completion_length, bool)
            or not isinstance(self.max_completion_length, int)
            or self.max_completion_length < 1
        ):
            raise UserError(
                f"loss_type 'dr_grpo' divides by max_completion_length, which must be a positive integer; "
                f"got {self.max_completion_length!r}"
            )
        if self.tis_cap is not None and not self.tis_cap > 0:
            raise UserError(f"tis_cap must be > 0 (or null to disable), got {self.tis_cap!r}")

    @property
    def clip_high(self) -> float:
        """The upper clip range actually used: epsilon_high, or epsilon when that is None."""
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


@dataclass(frozen=True)
class BatchCounts:
    """What an aggregation divides by, counted over the whole (mini-)batch (see aggregate_loss)."""

    responses: int | Tensor  # responses with at least one unmasked token, >= 1
    tokens: int | Tensor  # unmasked tokens, >= 1
    max_completion_length: int | None


def grpo_aggregation(masked: Tensor, mask: Tensor, counts: BatchCounts) -> Tensor:
    """(1 / N') * sum_i (1 / |o_i|) * sum_t l_{i,t}: each response weighs the same (DeepSeekMath)."""
    return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / counts.responses


def dapo_aggregation(masked: Tensor, mask: Tensor, counts: BatchCounts) -> Tensor:
    """sum_{i,t} l_{i,t} / sum_i |o_i|: each token weighs the same (DAPO)."""
    return masked.sum() / counts.tokens


def dr_grpo_aggregation(masked: Tensor, mask: Tensor, counts: BatchCounts) -> Tensor:
    """sum_{i,t} l_{i,t} / (N' * max_completion_length): a constant divisor, no length bias (Dr. GRPO)."""
    length = counts.max_completion_length
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise UserError(f"loss_type 'dr_grpo' needs a positive max_completion_length, got {length!r}")
    return masked.sum() / (counts.responses * length)


# The registry the recipe's algorithm.loss_type chooses from: name -> aggregation of a masked per-token loss.
Aggregation = Callable[[Tensor, Tensor, BatchCounts], Tensor]
LOSS_TYPES: dict[str, Aggregation] = {"grpo": grpo_aggregation, "dapo": dapo_aggregation,
                                      "dr_grpo": dr_grpo_aggregation}  # fmt: skip


def aggregate_loss(
    per_token: Tensor,
    mask: Tensor,
    loss_type: str,
    max_completion_length: int | None = None,
    num_responses_in_batch: int | None = None,
    num_tokens_in_batch: int | None = None,
) -> Tensor:
    """Reduce a per-token loss [N, T] to a scalar over the tokens where mask [N, T] (bool) is True.
    With N' the responses that keep at least one unmasked token:

        "grpo":    (1 / N') * sum_i (1 / |o_i|) * sum_t l_{i,t}
        "dapo":    (1 / sum_i |o_i|) * sum_{i,t} l_{i,t}
        "dr_grpo": (1 / (N' * max_completion_length)) * sum_{i,t} l_{i,t}

    A response whose tokens are all masked contributes 0 and is not counted, so masking some responses does
    not scale the others' loss (TRL divides by every row); an all-masked or empty batch gives exactly 0 (still
    attached to the graph, so backward() works).

    Gradient accumulation: when a batch is split into micro-batches whose losses are summed (not averaged),
    pass the whole batch's N' as num_responses_in_batch ("grpo", "dr_grpo") and its number of unmasked tokens
    as num_tokens_in_batch ("dapo"); the micro-batch losses then add up to the whole batch's loss exactly.
    Left as None they default to this tensor's own counts.
    """
    if loss_type not in LOSS_TYPES:
        raise UserError(f"loss_type must be one of {list(LOSS_TYPES)}, got {loss_type!r}")
    normalisers = {"num_responses_in_batch": num_responses_in_batch, "num_tokens_in_batch": num_tokens_in_batch}
    for name, value in normalisers.items():
        if value is not None and not value >= 1:
            raise UserError(f"{name} must be >= 1 when given, got {value!r}")
    counts = BatchCounts(
        responses=num_responses_in_batch or mask.any(-1).sum().clamp(min=1),
        tokens=num_tokens_in_batch or mask.sum().clamp(min=1),
        max_completion_length=max_completion_length,
    )
    return LOSS_TYPES[loss_type](per_token.masked_fill(~mask, 0.0), mask, counts)


def _check_like(name: str, tensor: Tensor | None, shape: torch.Size) -> None:
    if tensor is not None and tensor.shape != shape:
        raise UserError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)} (the shape of logp)")


def _masked_mean(values: Tensor, mask: Tensor, count: Tensor) -> Tensor:
    return values.masked_fill(~mask, 0.0).sum() / count.clamp(min=1)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    config: PolicyLossConfig,
    ref_logp: Tensor | None = None,
    rollout_logp: Tensor | None = None,
    entropy: Tensor | None = None,
    num_responses_in_batch: int | None = None,
    num_tokens_in_batch: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The GRPO loss of one (micro-)batch and its metrics. Formulas: see the module docstring.

    logp [N, T]: the learner's log-probs of the sampled tokens (with grad). old_logp [N, T]: log-probs of the
    policy that sampled, as the learner computed them before this update; None means on-policy (one update
    per batch): logp.detach() is used, so every ratio is 1 and the gradient is REINFORCE's.
    advantages: [N] (one per response) or [N, T] (per token). mask [N, T]: True/1 where a token counts.
    ref_logp [N, T]: reference log-probs, needed when config.beta > 0 (also reported as "kl/ref" when given).
    rollout_logp [N, T]: the rollout engine's sampling log-probs, needed when config.tis_cap is set (the
    "tis/*" statistics are reported whenever it is given). entropy [N, T]: per-token policy entropy (with
    grad), needed when config.entropy_coef != 0.
    num_responses_in_batch / num_tokens_in_batch: gradient-accumulation normalisers, see aggregate_loss.

    Positions where mask is False may hold anything (NaN, -inf): they are zeroed before any arithmetic so
    they give neither NaN values nor NaN gradients. Log-ratios are clamped before exp() (module docstring).

    Returns (loss, metrics). Metrics (floats, keys METRIC_NAMES) are means over unmasked tokens, except the
    "loss/*" parts, which are the aggregated terms (they sum to the loss). "clip_frac/low" and "/high" count
    tokens whose gradient the clip removed (ratio < 1 - epsilon with A < 0; ratio > 1 + epsilon_high with
    A > 0, as TRL counts them); "clip_frac/dual" tokens capped by the dual clip; "kl/old" estimates
    KL(pi_old || pi_theta) with k3. With no unmasked token at all every metric is 0.
    """
    if logp.dim() != 2:
        raise UserError(f"logp must be [N, T], got shape {tuple(logp.shape)}")
    shape = logp.shape
    for name, tensor in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp),
                         ("rollout_logp", rollout_logp), ("entropy", entropy)):  # fmt: skip
        _check_like(name, tensor, shape)
    if advantages.shape not in (shape[:1], shape):
        raise UserError(f"advantages must be [N] or [N, T] = {tuple(shape)}, got {tuple(advantages.shape)}")
    if config.beta > 0 and ref_logp is None:
        raise UserError(f"beta={config.beta} puts the KL to the reference in the loss, but no ref_logp was given")
    if config.tis_cap is not None and rollout_logp is None:
        raise UserError("tis_cap is set but no rollout_logp was given (the rollout engine must return log-probs)")
    if config.entropy_coef != 0 and entropy is None:
        raise UserError(f"entropy_coef={config.entropy_coef} needs the per-token entropy, but none was given")

    mask = mask.bool()
    dtype = torch.promote_types(logp.dtype, torch.float32)  # bf16 log-probs: do the exp/clip math in fp32

    def clean(tensor: Tensor) -> Tensor:
        return torch.where(mask, tensor.to(dtype), 0.0)

    logp = clean(logp)
    old = logp.detach() if old_logp is None else clean(old_logp)
    adv = advantages.to(dtype)
    adv = adv.unsqueeze(-1).expand(shape) if adv.dim() == 1 else torch.where(mask, adv, 0.0)
    count = mask.sum()

    log_ratio = logp - old
    max_log_ratio = MAX_LOG_RATIO
    if config.importance_sampling_level == "sequence":
        log_ratio = log_ratio.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
        max_log_ratio = MAX_SEQUENCE_LOG_RATIO
    ratio = torch.exp(log_ratio.clamp(-max_log_ratio, max_log_ratio)).expand(shape)
    low, high = 1 - config.epsilon, 1 + config.clip_high
    per_token = -torch.minimum(ratio * adv, ratio.clamp(low, high) * adv)
    if config.dual_clip is not None:
        per_token = torch.where(adv < 0, torch.minimum(per_token, -adv * config.dual_clip), per_token)

    tis_weight = None
    if rollout_logp is not None:
        with torch.no_grad():
            raw_weight = torch.exp((old - clean(rollout_logp)).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
            tis_weight = raw_weight if config.tis_cap is None else raw_weight.clamp(max=config.tis_cap)
        if config.tis_cap is not None:
            per_token = per_token * tis_weight

    def aggregate(values: Tensor) -> Tensor:
        return aggregate_loss(values, mask, config.loss_type, config.max_completion_length,
                              num_responses_in_batch, num_tokens_in_batch)  # fmt: skip

    zero = logp.new_zeros(())
    loss_policy = aggregate(per_token)
    per_token_kl = None
    if ref_logp is not None:
        with torch.set_grad_enabled(config.beta > 0 and torch.is_grad_enabled()):
            per_token_kl = kl_estimate(logp, clean(ref_logp), config.kl_estimator, config.kl_bound)
    loss_kl = config.beta * aggregate(per_token_kl) if config.beta > 0 else zero
    loss_entropy = -config.entropy_coef * aggregate(clean(entropy)) if config.entropy_coef != 0 else zero
    loss = loss_policy + loss_kl + loss_entropy

    with torch.no_grad():
        ratio_masked_min = ratio.masked_fill(~mask, torch.inf).amin() if ratio.numel() else zero
        ratio_masked_max = ratio.masked_fill(~mask, -torch.inf).amax() if ratio.numel() else zero
        any_token = count > 0
        stats = {
            "clip_frac/low": _masked_mean(((ratio < low) & (adv < 0)).to(dtype), mask, count),
            "clip_frac/high": _masked_mean(((ratio > high) & (adv > 0)).to(dtype), mask, count),
            "clip_frac/dual": _masked_mean(((ratio > config.dual_clip) & (adv < 0)).to(dtype), mask, count)
            if config.dual_clip is not None
            else zero,
            "ratio/min": torch.where(any_token, ratio_masked_min, zero),
            "ratio/mean": _masked_mean(ratio, mask, count),
            "ratio/max": torch.where(any_token, ratio_masked_max, zero),
            "kl/ref": _masked_mean(per_token_kl, mask, count) if per_token_kl is not None else zero,
            "kl/old": _masked_mean(kl_estimate(old, logp.detach(), "k3"), mask, count),
            "entropy": _masked_mean(clean(entropy), mask, count) if entropy is not None else zero,
            "tis/weight_mean": _masked_mean(tis_weight, mask, count) if tis_weight is not None else zero,
            "tis/clipped_frac": _masked_mean((raw_weight > config.tis_cap).to(dtype), mask, count)
            if tis_weight is not None and config.tis_cap is not None
            else zero,
            "loss/policy": loss_policy,
            "loss/kl": loss_kl,
            "loss/entropy": loss_entropy,
        }
        # One device-to-host copy for all metrics instead of one sync per .item().
        values = torch.stack([stats[name].detach().to(dtype) for name in METRIC_NAMES]).tolist()
    return loss, dict(zip(METRIC_NAMES, values))
