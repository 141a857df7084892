"""Advantage estimators: rewards of G sampled responses per prompt -> one advantage per response (or token).

Layout convention used throughout grpo.algorithms: a flat reward tensor of length B*G is group-contiguous,
rows [b*G:(b+1)*G] are the G samples of prompt b. `as_groups` turns it into a [B, G] view.

Every estimator gives exactly 0 to a group whose rewards are all equal (no learning signal, and no 0/0),
and so also to a group of size 1: with a group baseline a lone sample is its own baseline. (verl instead
uses mean 0 / std 1 for singleton groups, i.e. the raw reward; TRL requires num_generations >= 2.) The one
exception is reinforce_pp_baseline in a batch that also holds groups with a signal: as published, its batch
whitening shifts every response by the batch mean.

A new estimator is one function with the AdvantageEstimator signature plus its entry in ADVANTAGE_ESTIMATORS;
the recipe schema's algorithm.advantage_estimator accepts every key of that registry.

Standard deviations are unbiased (Bessel-corrected, as torch.std, TRL and verl compute them).
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from common.errors import UserError

ScaleRewards = Literal["group", "batch", "none"]


def as_groups(values: Tensor, num_generations: int, name: str = "rewards") -> Tensor:
    """View a flat group-contiguous tensor [B*G, ...] as [B, G, ...].

    Raises UserError when num_generations is not a positive integer or does not divide the batch.
    """
    if isinstance(num_generations, bool) or not isinstance(num_generations, int) or num_generations < 1:
        raise UserError(f"num_generations must be a positive integer, got {num_generations!r}")
    if values.dim() < 1:
        raise UserError(f"{name} must have a batch dimension, got a 0-d tensor")
    if values.shape[0] % num_generations != 0:
        raise UserError(
            f"{name} has {values.shape[0]} rows, which is not a multiple of num_generations={num_generations} "
            f"(rows must be group-contiguous: G samples of each prompt in a row)"
        )
    return values.view(-1, num_generations, *values.shape[1:])


def _normalise_scale_rewards(scale_rewards: bool | str) -> ScaleRewards:
    # TRL accepts both the old booleans and the newer strings; True means per-group std.
    if scale_rewards is True:
        return "group"
    if scale_rewards is False:
        return "none"
    if scale_rewards in ("group", "batch", "none"):
        return scale_rewards  # type: ignore[return-value]
    raise UserError(f"scale_rewards must be true, false, 'group', 'batch' or 'none', got {scale_rewards!r}")


def _check_eps(eps: float) -> None:
    # eps > 0 keeps (r - mean) / (std + eps) finite even when rounding leaves std = 0 for unequal rewards.
    if not eps > 0:
        raise UserError(f"eps must be > 0, got {eps!r}")


def _batch_std(values: Tensor) -> Tensor:
    """Unbiased std of all values, 0 (not NaN) when there are fewer than 2 of them."""
    return values.std() if values.numel() >= 2 else values.new_zeros(())


def _group_centered(grouped: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Return (x - group mean, group std) for grouped values [B, K], over the entries where `valid` is true.

    Groups whose valid values are all equal (including groups with one valid value) get exactly 0 centred
    values and std 0, so rounding in the mean never leaks a tiny non-zero advantage. Invalid entries are 0.
    """
    if valid is None:
        valid = torch.ones_like(grouped, dtype=torch.bool)
    if grouped.shape[1] == 0:  # groups with no entries (e.g. no steps at all): nothing to centre
        return grouped, grouped.new_zeros(grouped.shape[0], 1)
    grouped = grouped.masked_fill(~valid, 0.0)  # padding may hold anything, NaN included
    weights = valid.to(grouped.dtype)
    count = weights.sum(dim=1, keepdim=True)
    mean = (grouped * weights).sum(dim=1, keepdim=True) / count.clamp(min=1)
    centered = (grouped - mean) * weights
    var = (centered**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    finfo = torch.finfo(grouped.dtype)
    group_max = grouped.masked_fill(~valid, finfo.min).amax(dim=1, keepdim=True)
    group_min = grouped.masked_fill(~valid, finfo.max).amin(dim=1, keepdim=True)
    uniform = (group_max == group_min) | (count < 2)
    centered = centered.masked_fill(uniform, 0.0)
    std = var.sqrt().masked_fill(uniform, 0.0)
    return centered, std


class AdvantageEstimator(Protocol):
    """Signature shared by the estimators in ADVANTAGE_ESTIMATORS: grouped rewards [B, G] -> [B, G].

    lengths [B, G]: how many tokens of each response count in the loss (float, >= 0), for estimators that
    weigh responses by their tokens. scale_rewards and eps: see compute_advantages.
    """

    def __call__(self, grouped: Tensor, *, lengths: Tensor, scale_rewards: ScaleRewards, eps: float) -> Tensor: ...


def grpo_advantages(grouped: Tensor, *, lengths: Tensor | None = None, scale_rewards: ScaleRewards = "group",
                    eps: float = 1e-4) -> Tensor:
    """GRPO outcome advantage (DeepSeekMath eq. in sec. 4.1.2):

        A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)

    scale_rewards "group" divides by the group's std (above), "batch" by the std of all rewards in the batch
    (TRL's scale_rewards="batch"), "none" not at all (Dr. GRPO, arXiv 2503.20783). Ignores lengths.
    """
    centered, group_std = _group_centered(grouped)
    if scale_rewards == "none":
        return centered
    std = group_std if scale_rewards == "group" else _batch_std(grouped)
    return centered / (std + eps)


def dr_grpo_advantages(grouped: Tensor, *, lengths: Tensor | None = None, scale_rewards: ScaleRewards = "none",
                       eps: float = 1e-4) -> Tensor:
    """Dr. GRPO advantage (arXiv 2503.20783): A_i = r_i - mean(r_1..r_G). Ignores the other arguments."""
    return _group_centered(grouped)[0]


def rloo_advantages(grouped: Tensor, *, lengths: Tensor | None = None, scale_rewards: ScaleRewards = "none",
                    eps: float = 1e-4) -> Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024, arXiv 2402.14740):

        A_i = r_i - (1 / (G - 1)) * sum_{j != i} r_j  =  G / (G - 1) * (r_i - mean(r))

    Ignores the other arguments. A group of one sample has no other sample to compare with: A = 0.
    """
    group_size = grouped.shape[1]
    centered = _group_centered(grouped)[0]
    return centered * (group_size / (group_size - 1)) if group_size > 1 else centered


def reinforce_pp_baseline_advantages(
    grouped: Tensor, *, lengths: Tensor, scale_rewards: ScaleRewards = "none", eps: float = 1e-4
) -> Tensor:
    """REINFORCE++-baseline as published (Hu et al., arXiv 2501.03262; verl's "reinforce_plus_plus_baseline",
    OpenRLHF's "reinforce_baseline"): the group mean is subtracted, then the result is whitened over every
    token of the batch, so a response weighs as many tokens as it has (L_i = lengths):

        x_i = r_i - mean(group of i)
        mu = sum_i L_i x_i / sum_i L_i;   sigma^2 = sum_i L_i (x_i - mu)^2 / (sum_i L_i - 1)   (unbiased, per token)
        A_i = (x_i - mu) / (sigma + eps)          (one value for all tokens of response i)

    verl adds its 1e-8 inside the square root; eps here is added to sigma, as in the other estimators.
    Fewer than 2 tokens in the batch give sigma 0. Ignores scale_rewards.
    """
    centered = _group_centered(grouped)[0]
    weights = lengths.to(centered.dtype)
    num_tokens = weights.sum()
    if num_tokens == 0:
        return centered
    mean = (weights * centered).sum() / num_tokens
    deviation = centered - mean
    var = (weights * deviation**2).sum() / (num_tokens - 1) if num_tokens >= 2 else num_tokens.new_zeros(())
    return deviation / (var.sqrt() + eps)


ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {
    "grpo": grpo_advantages,
    "dr_grpo": dr_grpo_advantages,
    "rloo": rloo_advantages,
    "reinforce_pp_baseline": reinforce_pp_baseline_advantages,
}


def _check_rewards(rewards: Tensor, name: str = "rewards") -> Tensor:
    if rewards.dim() != 1:
        raise UserError(f"{name} must be 1-d [B*G], got shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    bad = (~torch.isfinite(rewards)).nonzero().flatten()
    if bad.numel():
        raise UserError(f"{name} must be finite; non-finite values at rows {bad[:10].tolist()}")
    return rewards


def compute_advantages(
    rewards: Tensor,
    num_generations: int,
    estimator: str = "grpo",
    scale_rewards: bool | str = True,
    eps: float = 1e-4,
    lengths: Tensor | None = None,
) -> Tensor:
    """Outcome advantages for group-contiguous rewards [B*G] -> [B*G] (one advantage per response).

    estimator: a key of ADVANTAGE_ESTIMATORS. scale_rewards (used by "grpo" only): True/"group" divides by
    the group std, "batch" by the batch std, False/"none" not at all ("grpo" with False equals "dr_grpo").
    eps: added to the std (TRL's 1e-4; verl's 1e-6 turns rewards [0, 1e-4] into +-0.70, 1e-4 into +-0.29).
    lengths [B*G]: tokens of each response that count in the loss (0 for a masked one), used by
    "reinforce_pp_baseline"; None counts every response once, as if each were one token long.
    Integer or boolean rewards are cast to the default float dtype. An empty reward tensor (no groups left
    after dynamic sampling) gives an empty tensor.
    """
    if estimator not in ADVANTAGE_ESTIMATORS:
        raise UserError(f"unknown advantage estimator {estimator!r}; choose one of {sorted(ADVANTAGE_ESTIMATORS)}")
    _check_eps(eps)
    rewards = _check_rewards(rewards)
    grouped = as_groups(rewards, num_generations)
    scale = _normalise_scale_rewards(scale_rewards)
    if lengths is None:
        lengths = torch.ones_like(rewards)
    elif lengths.shape != rewards.shape or (lengths < 0).any():
        raise UserError(f"lengths must be [B*G] = {tuple(rewards.shape)} token counts >= 0, "
                        f"got shape {tuple(lengths.shape)}")
    weights = as_groups(lengths.to(rewards.dtype), num_generations, "lengths")
    return ADVANTAGE_ESTIMATORS[estimator](grouped, lengths=weights, scale_rewards=scale, eps=eps).reshape(-1)


def process_supervision_advantages(
    step_rewards: Tensor,
    step_ends: Tensor,
    step_mask: Tensor,
    num_generations: int,
    seq_len: int,
    scale_rewards: bool | str = True,
    eps: float = 1e-4,
) -> Tensor:
    """Process-supervision advantages (DeepSeekMath sec. 4.1.3) -> per-token advantages [N, seq_len].

    Response i has K_i steps; step j ends at completion token index(j) and has reward r_i^j. Rewards are
    normalised over all steps of all G responses in the group, then a token's advantage is the sum of the
    normalised rewards of the steps that end at or after it:

        r~_i^j = (r_i^j - mean(R)) / (std(R) + eps),   R = {r_i^j : every step of every response in the group}
        A_{i,t} = sum_{j : index(j) >= t} r~_i^j

    Inputs are padded to S steps per response (N = B*G rows, group-contiguous):
      step_rewards [N, S] float; step_ends [N, S] integer token index (0-based, < seq_len) of each step's
      last token; step_mask [N, S] bool, True for real steps. Padded steps are ignored whatever they hold.
    Tokens after a response's last step get 0. scale_rewards "group" (or True) divides by the group's std
    as above, "batch" by the std of every real step in the batch, "none" (or False) skips the division.
    """
    _check_eps(eps)
    scale = _normalise_scale_rewards(scale_rewards)
    if step_rewards.dim() != 2 or step_ends.shape != step_rewards.shape or step_mask.shape != step_rewards.shape:
        raise UserError(
            "step_rewards, step_ends and step_mask must all be [N, S]; got "
            f"{tuple(step_rewards.shape)}, {tuple(step_ends.shape)}, {tuple(step_mask.shape)}"
        )
    if step_ends.is_floating_point():
        raise UserError(f"step_ends must hold integer token positions, got dtype {step_ends.dtype}")
    step_mask = step_mask.bool()
    if not step_rewards.is_floating_point():
        step_rewards = step_rewards.to(torch.get_default_dtype())
    ends = step_ends.masked_fill(~step_mask, 0)
    out_of_range = ((ends < 0) | (ends >= seq_len)) & step_mask
    if out_of_range.any():
        row, col = out_of_range.nonzero()[0].tolist()
        raise UserError(
            f"step_ends[{row}, {col}] = {int(step_ends[row, col])} is outside the completion (seq_len={seq_len})"
        )
    if not torch.isfinite(step_rewards[step_mask]).all():
        raise UserError("step_rewards must be finite at every real step (step_mask True)")

    num_rows, num_steps = step_rewards.shape
    grouped = as_groups(step_rewards, num_generations, "step_rewards").reshape(-1, num_generations * num_steps)
    valid = step_mask.reshape(-1, num_generations * num_steps)
    centered, std = _group_centered(grouped, valid)
    if scale == "batch":
        std = step_rewards[step_mask].std(unbiased=True) if int(step_mask.sum()) > 1 else step_rewards.new_zeros(())
    normalised = centered if scale == "none" else centered / (std + eps)
    normalised = normalised.reshape(num_rows, num_steps)

    # Put each step's reward on its last token, then a reversed cumulative sum gives "steps at or after t".
    per_token = torch.zeros(num_rows, seq_len, dtype=normalised.dtype, device=normalised.device)
    per_token.scatter_add_(1, ends.long(), normalised.masked_fill(~step_mask, 0.0))
    return per_token.flip(1).cumsum(1).flip(1)


def scale_negative_advantages(advantages: Tensor, scale: float) -> Tensor:
    """Advantages with the negative ones multiplied by `scale` in [0, 1] (W-REINFORCE, arXiv 2506.01347).

    Pushing a wrong sample down moves its probability onto every other continuation, right or wrong, and
    raises entropy; a small model with few steps is then better served by pulling right samples up.
    """
    if not 0.0 <= scale <= 1.0:
        raise UserError(f"negative advantage scale must be in [0, 1], got {scale}")
    return torch.where(advantages < 0, advantages * scale, advantages)
