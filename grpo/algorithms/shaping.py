"""Batch shaping around the loss: which groups to keep (dynamic sampling) and the statistics of the advantages.
All pure tensor functions (rows group-contiguous, see advantages.py). Reward shaping (DAPO's overlong penalty,
cosine length) is a reward (rewards/length.py); truncated responses leave the batch in the driver
(algorithm.mask_truncated_completions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo.algorithms.advantages import as_groups
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
