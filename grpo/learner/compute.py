"""How a training step computes (grpo.config.TrainingCompute): the RL learner and the supervised stages
(pipelines/sft.py) share these, so `precision: bf16` and `gradient_checkpointing` mean the same everywhere.

bf16 is mixed precision: the weights, their gradients and AdamW's state stay float32 (the master weights);
only the forward's matmuls run in bfloat16 under autocast, and the backward runs each op in the dtype its
forward used. An update too small for bfloat16's 8-bit mantissa (lr 1e-6 on a weight of 1.0) still moves
a float32 master weight.
"""

from __future__ import annotations

import torch

AUTOCAST_DTYPES = {"float32": None, "bf16": torch.bfloat16}


def autocast(precision: str, device_type: str):
    """The context a forward runs in: bfloat16 autocast for "bf16", nothing for "float32"."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def enable_gradient_checkpointing(model: torch.nn.Module, adapters: bool = False) -> None:
    """Recompute each decoder layer in the backward (non-reentrant: correct under autocast and with frozen
    inputs). `adapters`: a peft model whose embeddings are frozen needs its inputs to require grad, or the
    checkpointed layers would get no gradient."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapters:
        model.enable_input_require_grads()
