"""Turning rollout samples into padded tensors, and splitting them into micro-batches by token budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class TrainSample:
    """One response as the learner sees it. Lists, not tensors, so it travels cheaply through Ray."""

    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float | list[float]  # one per response (outcome supervision) or one per token (process)
    rollout_logprobs: list[float] | None = None
    old_logprobs: list[float] | None = None  # filled by the learner when a batch gets more than one update
    ref_logprobs: list[float] | None = None  # filled by the learner when beta > 0
    truncated: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def rank_shards(samples: list, world_size: int) -> list[list]:
    """The batch dealt to the learner ranks: rank r gets samples[r::world_size]. `rank_mini_batches` relies on
    this order to find which of a rank's samples belong to which mini-batch."""
    return [samples[r::world_size] for r in range(world_size)]


def rank_mini_batches(local: list, parts: int, rank: int, world_size: int, global_count: int) -> list[list]:
    """This rank's share of each mini-batch of a batch of `global_count` samples dealt by `rank_shards`.

    The batch is cut into contiguous mini-batches of ceil(global_count / parts) samples, the same cut one
    rank makes of the whole batch, so the ranks together take the same optimizer steps as a single learner.
    Every rank returns the same number of parts, empty where it holds none of a mini-batch: all ranks then
    join every mini-batch's collectives (token counts, gradient reductions, FSDP2 gathers).
    """
    if not global_count:
        return []
    size = math.ceil(global_count / parts)
    shares: list[list] = [[] for _ in range(math.ceil(global_count / size))]
    for j, item in enumerate(local):
        position = rank + j * world_size  # its index in the whole batch
        if position >= global_count:
            raise ValueError(f"rank {rank} holds {len(local)} samples, more than its share of {global_count} "
                             f"over {world_size} ranks")
        shares[position // size].append(item)
    return shares


def pack_by_token_budget(samples: list[TrainSample], token_budget: int) -> list[list[int]]:
    """Indices of micro-batches whose padded size (rows x longest row) stays within `token_budget`.

    Samples are sorted by length first so rows of similar length share a micro-batch and little padding
    is computed; a single sample longer than the budget gets a micro-batch of its own. Deterministic.
    """
    order = sorted(range(len(samples)), key=lambda i: (samples[i].length, i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        length = samples[i].length
        if current and max(longest, length) * (len(current) + 1) > token_budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, L] right-padded prompt+completion
    attention_mask: torch.Tensor  # [B, L]
    prompt_lengths: list[int]
    completion_mask: torch.Tensor  # [B, T] 1 where the completion token counts
    advantages: torch.Tensor  # [B], or [B, T] when any sample has per-token advantages
    rollout_logprobs: torch.Tensor | None  # [B, T]
    old_logprobs: torch.Tensor | None
    ref_logprobs: torch.Tensor | None


def collate(samples: list[TrainSample], pad_id: int) -> MicroBatch:
    lengths = [s.length for s in samples]
    max_len = max(lengths)
    max_completion = max(len(s.completion_ids) for s in samples)
    input_ids = torch.full((len(samples), max_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), max_len), dtype=torch.long)
    completion_mask = torch.zeros((len(samples), max_completion), dtype=torch.float32)
    for row, s in enumerate(samples):
        ids = s.prompt_ids + s.completion_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        completion_mask[row, : len(s.completion_ids)] = 1.0

    def per_token(attr: str) -> torch.Tensor | None:
        values = [getattr(s, attr) for s in samples]
        if any(v is None for v in values):
            return None
        out = torch.zeros((len(samples), max_completion), dtype=torch.float32)
        for row, v in enumerate(values):
            out[row, : len(v)] = torch.tensor(v, dtype=torch.float32)
        return out

    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        prompt_lengths=[len(s.prompt_ids) for s in samples],
        completion_mask=completion_mask,
        advantages=_advantages(samples, max_completion),
        rollout_logprobs=per_token("rollout_logprobs"),
        old_logprobs=per_token("old_logprobs"),
        ref_logprobs=per_token("ref_logprobs"),
    )


def _advantages(samples: list[TrainSample], max_completion: int) -> torch.Tensor:
    """[B] when every advantage is one number; else [B, T], a per-response number repeated on its tokens."""
    if all(isinstance(s.advantage, (int, float)) for s in samples):
        return torch.tensor([float(s.advantage) for s in samples], dtype=torch.float32)
    out = torch.zeros((len(samples), max_completion), dtype=torch.float32)
    for row, s in enumerate(samples):
        if isinstance(s.advantage, (int, float)):
            out[row, : len(s.completion_ids)] = float(s.advantage)
        else:
            if len(s.advantage) != len(s.completion_ids):
                raise ValueError(f"sample {row}: {len(s.advantage)} per-token advantages for "
                                 f"{len(s.completion_ids)} completion tokens")
            out[row, : len(s.advantage)] = torch.tensor(s.advantage, dtype=torch.float32)
    return out
