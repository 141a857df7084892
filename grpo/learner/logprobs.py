"""Per-token log-probs of completions under a causal LM, without materialising batch x seq x vocab logits.

The backbone runs once; the LM head, log-softmax and gather run over chunks of positions, each chunk under
activation checkpointing, so the peak extra memory is one chunk's logits (chunk_size x vocab) in the forward
and in the backward pass alike (top-k / top-p add a sort of the chunk: a few more chunk-sized tensors).

The log-probs are those of the distribution the rollout sampled from (`SamplingDistribution`): the policy
gradient and the importance ratio refer to the sampling policy, as TRL and verl do for the temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack and the LM head of a transformers causal LM (also through a peft wrapper)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


@dataclass(frozen=True)
class SamplingDistribution:
    """How the sampler turns logits into the distribution it draws from, in vLLM's order: divide by
    `temperature`, keep the `top_k` largest logits (0 or -1: all; ties with the k-th are kept), then keep the
    most probable tokens until their mass reaches `top_p` (the token that crosses it included), and
    renormalise over what is kept. vLLM reports these log-probs with logprobs_mode "processed_logprobs".
    Greedy decoding (temperature 0) is no distribution: it is refused."""

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive for sampled log-probs, got {self.temperature} "
                             "(temperature 0 is greedy decoding, which has no log-probs to train on)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def kept_tokens(logits: torch.Tensor, sampling: SamplingDistribution) -> torch.Tensor | None:
    """Boolean [N, V]: the tokens top-k and top-p keep of temperature-scaled `logits` [N, V] (None: all).

    The same arithmetic as vLLM's apply_top_k_top_p_pytorch (vllm/v1/sample/ops/topk_topp_sampler.py) so that
    the kept sets agree at the boundary: an ascending sort, the cumulative softmax of the top-k-masked
    logits, drop where it is <= 1 - top_p, the largest always kept."""
    vocab = logits.shape[-1]
    top_k = sampling.top_k if 0 < sampling.top_k < vocab else None
    if top_k is None and sampling.top_p >= 1.0:
        return None
    with torch.no_grad():
        keep = torch.ones_like(logits, dtype=torch.bool)
        if top_k is not None:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            keep = logits >= kth
        if sampling.top_p < 1.0:
            masked = logits.masked_fill(~keep, float("-inf"))
            ascending, order = masked.sort(dim=-1)
            cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative <= 1 - sampling.top_p
            drop[:, -1] = False
            keep = keep & ~torch.zeros_like(drop).scatter_(-1, order, drop)
    return keep


def sampled_logprobs(logits: torch.Tensor, targets: torch.Tensor, sampling: SamplingDistribution,
                     want_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of `targets` [N] and entropies under the sampling distribution of raw `logits` [N, V].

    The target is always kept: the sampler drew it, so it was in the kept set (a float near-tie at the
    top-p boundary could otherwise drop it and give -inf)."""
    logits = logits.float()
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    keep = kept_tokens(logits, sampling)
    if keep is not None:
        keep = keep.scatter(-1, targets.unsqueeze(-1), True)
        logits = logits.masked_fill(~keep, float("-inf"))
    logz = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    if not want_entropy:
        return logp, torch.zeros_like(logp)
    log_probs = logits - logz.unsqueeze(-1)
    if keep is not None:  # 0 * -inf would be nan: dropped tokens contribute nothing
        log_probs = log_probs.masked_fill(~keep, 0.0)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logp, entropy


def _chunk_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, want_entropy: bool,
                    sampling: SamplingDistribution):
    return sampled_logprobs(head(hidden), targets, sampling, want_entropy)


def completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: list[int],
    completion_length: int,
    chunk_size: int = 1024,
    with_entropy: bool = False,
    sampling: SamplingDistribution = SamplingDistribution(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs (and entropies) of the completion tokens of right-padded prompt+completion rows, under
    the distribution `sampling` describes (default: the model's own, temperature 1).

    Row i holds prompt_lengths[i] prompt tokens, then its completion, then padding. Returns tensors of shape
    [B, completion_length]: entry (i, t) is log p(token at prompt_lengths[i] + t | everything before it).
    Entropies carry gradients (for an entropy bonus); zeros when with_entropy is False.
    Positions past a row's completion are garbage and must be masked by the caller.
    """
    decoder, head = backbone_and_head(model)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    batch = input_ids.shape[0]
    # Gather, for each row, the hidden states that predict its completion tokens: positions p-1 .. p+T-2.
    offsets = torch.arange(completion_length, device=input_ids.device)
    starts = torch.tensor(prompt_lengths, device=input_ids.device) - 1
    positions = (starts[:, None] + offsets[None, :]).clamp(max=input_ids.shape[1] - 2)
    rows = torch.arange(batch, device=input_ids.device)[:, None]
    pred_hidden = hidden[rows, positions]  # [B, T, H]
    targets = input_ids[rows, positions + 1]  # [B, T]

    flat_hidden = pred_hidden.reshape(-1, pred_hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    logps, ents = [], []
    for start in range(0, flat_targets.shape[0], chunk_size):
        h = flat_hidden[start : start + chunk_size]
        t = flat_targets[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            lp, en = checkpoint(_chunk_logprobs, head, h, t, with_entropy, sampling, use_reentrant=False)
        else:
            lp, en = _chunk_logprobs(head, h, t, with_entropy, sampling)
        logps.append(lp)
        ents.append(en)
    shape = (batch, completion_length)
    return torch.cat(logps).reshape(shape), torch.cat(ents).reshape(shape)


def reference_logprobs_full(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Plain (unchunked) next-token log-probs, for tests that check the chunked path: [B, L-1]."""
    logits = model(input_ids=input_ids).logits.float()
    return F.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


class CompletionLogprobs(torch.nn.Module):
    """`completion_logprobs` of a causal LM as a module: the learner's entry point to its policy and reference.

    Under FSDP2 this module is the root that owns the embeddings, the final norm and the head (grpo/learner/fsdp.py):
    completion_logprobs calls the decoder and the head separately rather than the LM's own forward, so the
    root's hooks, which gather those parameters, must fire on this forward.
    """

    def __init__(self, model: torch.nn.Module, sampling: SamplingDistribution = SamplingDistribution()):
        super().__init__()
        self.model = model
        self.sampling = sampling

    def forward(self, input_ids, attention_mask, prompt_lengths, completion_length, chunk_size, with_entropy):
        logp, entropy = completion_logprobs(self.model, input_ids, attention_mask, prompt_lengths,
                                            completion_length, chunk_size=chunk_size, with_entropy=with_entropy,
                                            sampling=self.sampling)
        # Owned tensors, not reshaped views: FSDP2 hooks the root's outputs and warns about views (an in-place
        # op on one would bypass its hook). [batch, completion] floats: the copy costs nothing.
        return logp.clone(), entropy.clone()
