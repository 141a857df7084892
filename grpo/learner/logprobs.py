"""Per-token log-probs of completions under a causal LM, without materialising batch x seq x vocab logits.

The backbone runs once; the LM head, log-softmax and gather run over chunks of positions, each chunk under
activation checkpointing, so the peak extra memory is one chunk's logits (chunk_size x vocab) in the forward
and in the backward pass alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack and the LM head of a transformers causal LM (also through a peft wrapper)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def _chunk_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, want_entropy: bool):
    logits = head(hidden).float()
    logz = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    if not want_entropy:
        return logp, torch.zeros_like(logp)
    probs = torch.softmax(logits, dim=-1)
    entropy = logz - (probs * logits).sum(-1)
    return logp, entropy


def completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: list[int],
    completion_length: int,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs (and entropies) of the completion tokens of right-padded prompt+completion rows.

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
            lp, en = checkpoint(_chunk_logprobs, head, h, t, with_entropy, use_reentrant=False)
        else:
            lp, en = _chunk_logprobs(head, h, t, with_entropy)
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

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, prompt_lengths, completion_length, chunk_size, with_entropy):
        logp, entropy = completion_logprobs(self.model, input_ids, attention_mask, prompt_lengths,
                                            completion_length, chunk_size=chunk_size, with_entropy=with_entropy)
        # Owned tensors, not reshaped views: FSDP2 hooks the root's outputs and warns about views (an in-place
        # op on one would bypass its hook). [batch, completion] floats: the copy costs nothing.
        return logp.clone(), entropy.clone()
