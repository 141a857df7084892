"""FSDP2 for the learner (`learner.strategy: fsdp2`): parameters, gradients and AdamW state sharded over ranks.

Each decoder layer is one FSDP unit, all-gathered just before it runs and freed after. The embeddings, the
final norm and the head (tied in some models, so they must share one unit) belong to the root, which is the
`CompletionLogprobs` module that every log-prob pass goes through. Gradients are summed across ranks, not
averaged: each rank's loss is already normalised by the global counts, as on the ddp path.

Whole-model reads (the rollout sync, the Hugging Face save, the optimizer checkpoint) gather full tensors:
collectives that every rank joins, whose results only rank 0 keeps.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from grpo.learner.logprobs import CompletionLogprobs


def shard(root: CompletionLogprobs, mesh: DeviceMesh) -> CompletionLogprobs:
    """Shard the LM inside `root` in place: one unit per decoder layer (the HF `_no_split_modules`), then the root."""
    layer_types = set(getattr(root.model, "_no_split_modules", None) or ())
    layers = [m for m in root.model.modules() if type(m).__name__ in layer_types]
    if not layers:
        raise ValueError(f"fsdp2: no decoder layers found in {type(root.model).__name__} (_no_split_modules)")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    # The root reshards after forward too, so that a no-grad pass (reference, old log-probs) never leaves a
    # full copy of the head behind that an optimizer step would make stale.
    fully_shard(root, mesh=mesh, reshard_after_forward=True)
    for module in root.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM: gloo has no pre-multiplied sum
    # A parameter without a gradient on one rank (an expert nobody routed to) still joins the reduce-scatter
    # with zeros, so every rank's collectives match; the ddp path zero-fills such gradients the same way.
    root.set_reduce_scatter_unused_params(True)
    return root


def is_sharded(module: torch.nn.Module) -> bool:
    return isinstance(module, FSDPModule)


def full_state_dict(model: torch.nn.Module, keep: bool) -> dict[str, torch.Tensor]:
    """CPU copies of every entry of `model.state_dict()`, DTensors gathered. Every rank must call it (each
    gather is a collective, in the same order everywhere); ranks with keep=False get an empty dict."""
    out: dict[str, torch.Tensor] = {}
    gathered: dict[int, torch.Tensor | None] = {}  # tied weights: one parameter, two names, one gather
    for key, value in model.state_dict(keep_vars=True).items():
        if id(value) not in gathered:
            full = value.full_tensor() if isinstance(value, DTensor) else value
            gathered[id(value)] = full.detach().to("cpu", copy=True) if keep else None
        if keep:
            out[key] = gathered[id(value)]
    return out


def grad_norm_value(norm: torch.Tensor) -> float:
    """The total norm clip_grad_norm_ returns is a replicated DTensor when the gradients are sharded."""
    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The whole optimizer state keyed by parameter names (a collective); empty except on rank 0."""
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Each rank takes its shard of a state written by `optimizer_state` (a collective)."""
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def world_max(value: int, device: torch.device) -> int:
    tensor = torch.tensor(value, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor)
