"""MoE router observation for the learner: expert load per layer and a load-balancing loss.

transformers 5 gives its MoE families one router interface: a `*TopkRouter` / `*TopKRouter` module whose
forward returns (router_logits, topk_weights, topk_indices). That covers DeepSeek-V3 (sigmoid scores plus
the aux-loss-free expert bias `e_score_correction_bias`, a buffer that nothing updates during training: the
default RL policy here, `router: frozen_bias`) and the softmax routers of Qwen2-MoE and Mixtral (no bias;
`frozen_bias` then means no balance loss). With `router: aux_loss` a balance loss L = sum_i f_i * P_i is
added: f_i the share of routed tokens that went to expert i (times num_experts / top_k), P_i the mean
routing probability of expert i, from the router's own scoring function (DeepSeek-V3 section 2.1.2 with
normalised sigmoid scores; Switch Transformer / Mixtral with softmax). It is computed over the tokens of a
micro-batch rather than per sequence (a documented simplification: same expectation, fewer reductions).
"""

from __future__ import annotations

import torch


def is_router(module: torch.nn.Module) -> bool:
    """A transformers MoE router: DeepseekV3TopkRouter, Qwen2MoeTopKRouter, MixtralTopKRouter, ..."""
    return type(module).__name__.lower().endswith("topkrouter")


def routing_probabilities(module: torch.nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """Per-token probabilities over experts under the router's own scoring: DeepSeek-V3's routers keep an
    expert bias and score with sigmoids (normalised here to sum to 1); the others use a softmax."""
    if hasattr(module, "e_score_correction_bias"):
        scores = logits.float().sigmoid()
        return scores / scores.sum(-1, keepdim=True)
    return torch.softmax(logits.float(), dim=-1)


def balance_loss(probs: torch.Tensor, counts: torch.Tensor, top_k: int) -> torch.Tensor:
    """sum_i f_i * P_i with f_i = counts_i * E / (top_k * tokens) and P_i = mean routing probability: 1.0
    when routing is uniform, up to E when every token goes to the same experts."""
    tokens, num_experts = probs.shape
    f = counts * num_experts / (top_k * tokens)
    return (f * probs.mean(0)).sum()


class RouterProbe:
    """Forward hooks on every router: collects expert counts and, when asked, the balance loss terms."""

    def __init__(self, model: torch.nn.Module, with_aux_loss: bool):
        self.with_aux_loss = with_aux_loss
        self.routers = [(name, m) for name, m in model.named_modules() if is_router(m)]
        self.counts: dict[str, torch.Tensor] = {}
        self.aux_terms: list[torch.Tensor] = []
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.routers]

    @property
    def active(self) -> bool:
        return bool(self.routers)

    def _hook(self, name: str):
        def hook(module, _inputs, output):
            logits, _weights, indices = output
            num_experts = logits.shape[-1]
            counts = torch.bincount(indices.reshape(-1).detach().cpu(), minlength=num_experts).float()
            self.counts[name] = self.counts.get(name, torch.zeros(num_experts)) + counts
            if self.with_aux_loss and torch.is_grad_enabled():
                probs = routing_probabilities(module, logits.reshape(-1, num_experts))
                self.aux_terms.append(balance_loss(probs, counts.to(probs.device), indices.shape[-1]))

        return hook

    def pop_aux_loss(self) -> torch.Tensor | None:
        if not self.aux_terms:
            return None
        loss = torch.stack(self.aux_terms).mean()
        self.aux_terms = []
        return loss

    def pop_load_metrics(self) -> dict[str, float]:
        """Per layer: the busiest expert's share of routed tokens relative to a uniform share (1.0 = balanced)."""
        metrics = {}
        for i, (name, _m) in enumerate(self.routers):
            counts = self.counts.get(name)
            if counts is None or counts.sum() == 0:
                continue
            share = counts / counts.sum()
            metrics[f"moe/max_load/layer{i}"] = float(share.max() * len(share))
        self.counts = {}
        return metrics

    def close(self) -> None:
        for h in self._handles:
            h.remove()
