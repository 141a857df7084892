"""MoE router observation for the learner: expert load per layer and DeepSeek-V3's balance loss.

transformers' DeepSeek-V3 router returns (router_logits, topk_weights, topk_indices) and keeps the
aux-loss-free expert bias (`e_score_correction_bias`) as a buffer that nothing updates during training, which
is the default RL policy here (`router: frozen_bias`). With `router: aux_loss` the complementary balance loss
of DeepSeek-V3 (section 2.1.2), L = alpha * sum_i f_i * P_i, is added; we compute it over the tokens of a
micro-batch rather than per sequence (a documented simplification: same expectation, fewer reductions).
"""

from __future__ import annotations

import torch


def _is_router(module: torch.nn.Module) -> bool:
    return type(module).__name__.endswith("TopkRouter")


class RouterProbe:
    """Forward hooks on every router: collects expert counts and, when asked, the balance loss terms."""

    def __init__(self, model: torch.nn.Module, with_aux_loss: bool):
        self.with_aux_loss = with_aux_loss
        self.routers = [(name, m) for name, m in model.named_modules() if _is_router(m)]
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
            counts = torch.bincount(indices.reshape(-1).detach(), minlength=num_experts).float()
            self.counts[name] = self.counts.get(name, torch.zeros(num_experts)) + counts
            if self.with_aux_loss and torch.is_grad_enabled():
                scores = logits.sigmoid()
                probs = scores / scores.sum(-1, keepdim=True)
                top_k = indices.shape[-1]
                tokens = indices.shape[0]
                f = counts * num_experts / (top_k * tokens)
                self.aux_terms.append((f * probs.mean(0)).sum())

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
