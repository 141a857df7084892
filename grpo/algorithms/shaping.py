"""Batch shaping around the loss: which groups to keep, reward penalties, which responses' tokens count,
and the statistics of the advantages. All pure tensor functions (rows group-contiguous, see advantages.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo.algorithms.advantages import as_groups
from grpo.algorithms.kl import kl_estimate
from common.errors import UserError


def uniform_groups(rewards: Tensor, num_generations: int) -> Tensor:
    """[B] bool: True for each group whose G rewards are all equal (so every estimator gives it zero advantage)."""
    grouped = as_groups(rewards, num_generations)
    return grouped.amax(dim=1) == grouped.amin(dim=1)


def dynamic_sampling_mask(rewards: Tensor, num_generations: int) -> tuple[Tensor, int]:
    """DAPO's dynamic sampling (arXiv 2503.14476, sec. 3.2): keep only groups whose rewards differ.

    rewards [B*G] group-contiguous -> (keep [B] bool over groups, num_dropped). A group whose rewards are all
    equal (all right or all wrong) has zero advantage, so it adds no gradient but dilutes the batch. Expand
    to rows with keep.repeat_interleave(num_generations). When every group is dropped, keep is all False and
    num_dropped == B: the caller reports it and samples more (DAPO) or skips the step; it is not an error.
    """
    if rewards.dim() != 1:
        raise UserError(f"rewards must be 1-d [B*G], got shape {tuple(rewards.shape)}")
    keep = ~uniform_groups(rewards, num_generations)
    return keep, int((~keep).sum())


def overlong_penalty(
    lengths: Tensor, max_completion_length: int, overlong_buffer_len: int, penalty_factor: float = 1.0
) -> Tensor:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), to be added to the rewards. With
    L_max = max_completion_length and L_cache = overlong_buffer_len:

        R(|y|) = 0                                   if |y| <= L_max - L_cache
                 ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
                 -1                                   if |y| > L_max
        penalty = penalty_factor * R(|y|)

    (verl's overlong_buffer.penalty_factor scales it the same way.) lengths [N]: completion lengths in tokens.
    """
    if not 0 < overlong_buffer_len <= max_completion_length:
        raise UserError(
            f"overlong_buffer_len must be in (0, max_completion_length={max_completion_length}], "
            f"got {overlong_buffer_len!r}"
        )
    if not penalty_factor >= 0:
        raise UserError(f"penalty_factor must be >= 0, got {penalty_factor!r}")
    expected = max_completion_length - overlong_buffer_len
    excess = lengths.to(torch.get_default_dtype()) - expected
    return penalty_factor * (-excess / overlong_buffer_len).clamp(min=-1.0, max=0.0)


def mask_truncated(mask: Tensor, truncated: Tensor) -> Tensor:
    """Drop every token of responses that hit the length limit: mask [N, T], truncated [N] bool -> mask.

    A truncated response's reward says nothing about its (unfinished) answer, so DAPO's "overlong filtering"
    and TRL's mask_truncated_completions exclude it from the loss. The dtype of mask is kept.
    """
    if truncated.shape != mask.shape[:1]:
        raise UserError(f"truncated must be [N] = [{mask.shape[0]}], got shape {tuple(truncated.shape)}")
    keep = ~truncated.bool().unsqueeze(-1)
    return mask & keep if mask.dtype == torch.bool else mask * keep.to(mask.dtype)


def kl_in_reward(rewards: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Fold the KL to the reference into the reward (k1, summed over the response, as in PPO-RLHF / InstructGPT):

        r'_i = r_i - beta * sum_t mask_{i,t} * (log pi_theta(o_t) - log pi_ref(o_t))

    rewards [N]; logp, ref_logp, mask [N, T]. The result is detached: rewards are constants of the loss.
    Advantages are then computed from r' as usual; use beta = 0 in the loss to not count the KL twice
    (verl's use_kl_in_reward does the same per token with its own kl_ctrl.kl_coef).
    """
    if logp.shape != mask.shape or ref_logp.shape != mask.shape or rewards.shape != mask.shape[:1]:
        raise UserError(
            f"kl_in_reward needs rewards [N] and logp, ref_logp, mask [N, T]; got {tuple(rewards.shape)}, "
            f"{tuple(logp.shape)}, {tuple(ref_logp.shape)}, {tuple(mask.shape)}"
        )
    if not beta >= 0:
        raise UserError(f"beta must be >= 0, got {beta!r}")
    mask = mask.bool()
    with torch.no_grad():
        per_token = kl_estimate(torch.where(mask, logp, 0.0), torch.where(mask, ref_logp, 0.0), "k1")
        return rewards - beta * per_token.sum(-1).to(rewards.dtype)


def advantage_stats(advantages: Tensor, rewards: Tensor, num_generations: int) -> dict[str, float]:
    """Statistics of one batch's outcome advantages [B*G] and rewards [B*G] (group-contiguous):

    "advantage/mean", "advantage/std" (unbiased; 0 with fewer than 2 values), "reward/mean", "reward/std",
    and "frac_zero_adv_groups": the fraction of groups whose rewards are all equal, i.e. whose advantages
    are all exactly 0 (no learning signal; DAPO's dynamic sampling removes them). An empty batch gives 0s.
    """
    if advantages.shape != rewards.shape or rewards.dim() != 1:
        raise UserError(
            f"advantages and rewards must both be [B*G]; got {tuple(advantages.shape)} and {tuple(rewards.shape)}"
        )
    zero_groups = uniform_groups(rewards, num_generations)
    advantages, rewards = advantages.float(), rewards.float()
    zero = rewards.new_zeros(())
    values = {
        "advantage/mean": advantages.mean() if advantages.numel() else zero,
        "advantage/std": advantages.std() if advantages.numel() >= 2 else zero,
        "reward/mean": rewards.mean() if rewards.numel() else zero,
        "reward/std": rewards.std() if rewards.numel() >= 2 else zero,
        "frac_zero_adv_groups": zero_groups.float().mean() if zero_groups.numel() else zero,
    }
    return dict(zip(values, torch.stack(list(values.values())).tolist()))
