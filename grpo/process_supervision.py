"""Process supervision in the RL loop: step rewards (rewards/steps.py) -> per-token advantages.

A step reward gives each completion's steps as character offsets in its text with a score. Here those
offsets are mapped to the sampled tokens by decoding prefixes of the sampled token ids (the token ids are
never re-encoded, so the learner still trains on exactly what was sampled), the outcome reward is added as
the reward of a final step ending at the last token, and grpo.algorithms.advantages.process_supervision_advantages
normalises every step of a group and gives each token the sum of the normalised rewards of the steps at or
after it (DeepSeekMath sec. 4.1.3).
"""

from __future__ import annotations

from typing import Any

import torch

from grpo.algorithms.advantages import process_supervision_advantages
from rewards.steps import StepScore


def step_token_indices(tokenizer: Any, token_ids: list[int], char_ends: list[int]) -> list[int]:
    """For each character offset into the decoding of `token_ids` (special tokens skipped, as vLLM's text),
    the index of the token whose decoding reaches it: the token that completes the step. Offsets past the
    text map to the last token."""
    if not token_ids:
        return []

    def decoded_length(k: int) -> int:
        return len(tokenizer.decode(token_ids[:k], skip_special_tokens=True))

    indices = []
    for end in char_ends:
        low, high = 1, len(token_ids)  # smallest k with decoded_length(k) >= end, by bisection
        while low < high:
            middle = (low + high) // 2
            if decoded_length(middle) >= end:
                high = middle
            else:
                low = middle + 1
        indices.append(low - 1)
    return indices


def process_advantages(tokenizer: Any, completions: list[list[int]], steps: list[list[StepScore]],
                       outcome: torch.Tensor, num_generations: int, scale_rewards: bool | str = True,
                       eps: float = 1e-4) -> list[list[float]]:
    """Per-token advantages (one list per completion, of its length) of group-contiguous completions.

    `steps[i]` are completion i's scored steps (character offsets into its text), `outcome[i]` its outcome
    reward, which becomes the reward of a last step at its last token. An empty completion gets no tokens."""
    rows = []
    for token_ids, scored in zip(completions, steps):
        ends = step_token_indices(tokenizer, token_ids, [s.end for s in scored])
        rows.append(list(zip(ends, (s.score for s in scored))))
    for row, token_ids, reward in zip(rows, completions, outcome.tolist()):
        if token_ids:
            row.append((len(token_ids) - 1, reward))
    width = max(1, max(len(row) for row in rows))
    seq_len = max(1, max(len(ids) for ids in completions))
    step_rewards = torch.zeros(len(rows), width)
    step_ends = torch.zeros(len(rows), width, dtype=torch.long)
    step_mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        for j, (end, reward) in enumerate(row):
            step_ends[i, j], step_rewards[i, j], step_mask[i, j] = end, reward, True
    per_token = process_supervision_advantages(step_rewards, step_ends, step_mask, num_generations, seq_len,
                                               scale_rewards=scale_rewards, eps=eps)
    return [per_token[i, : len(ids)].tolist() for i, ids in enumerate(completions)]
