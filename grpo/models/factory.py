"""Build randomly initialised Hugging Face model directories from named presets, with no hub access.

`make_model` writes what `from_pretrained` and vLLM expect: config.json, model.safetensors, the local
tokenizer (grpo.models.tokenizer) with its chat template, generation_config.json, plus grpo_model.json
recording how the directory was made. The model's vocabulary is always the tokenizer's: a preset's
`vocab_size` is the size the tokenizer is trained to.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from common.errors import UserError
from grpo.models.tokenizer import IM_END, PAD_TOKEN, train_tokenizer

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # Dense, shaped like a (very) small Qwen2.5: GQA, q/k/v biases, tied embeddings. For CPU tests.
    "tiny-qwen2": {
        "model_type": "qwen2",
        "vocab_size": 1024,
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 384,
        "max_position_embeddings": 1024,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    # DeepSeek-V3's architecture at toy width: layer 0 dense, later layers MoE (1 shared + 8 routed
    # experts, 2 per token, sigmoid scores with the aux-loss-free correction bias), MLA attention.
    # Constraints from vLLM on the CPU (see grpo/models/vllm_args.py): the MLA latent must be kv_lora_rank 512 +
    # qk_rope_head_dim 64 (576 is the only compiled size), and vLLM creates e_score_correction_bias only for
    # topk_method "noaux_tc" (it reads topk_method/scoring_func; transformers ignores them). n_group =
    # topk_group = 1 (group-limited routing is for multi-node expert parallelism), no multi-token
    # prediction layers (num_nextn_predict_layers 0), q_lora_rank small but set, as in V3.
    "tiny-deepseek-v3": {
        "model_type": "deepseek_v3",
        "vocab_size": 1024,
        "hidden_size": 128,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "intermediate_size": 384,
        "moe_intermediate_size": 96,
        "n_routed_experts": 8,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "norm_topk_prob": True,
        "routed_scaling_factor": 2.5,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 64,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 32,
        "v_head_dim": 32,
        "rope_interleave": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "max_position_embeddings": 1024,
        "num_nextn_predict_layers": 0,
        "tie_word_embeddings": False,
    },
    # About 24M parameters: big enough that compute, not per-step overhead, dominates (bench/).
    "qwen2-24m": {
        "model_type": "qwen2",
        "vocab_size": 1024,
        "hidden_size": 512,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 1536,
        "max_position_embeddings": 2048,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    # Qwen2.5-0.5B's shapes for GPU benchmarks, except the vocabulary, which is the local tokenizer's
    # (Qwen2.5's 151936-row embedding would add 136M parameters no local corpus can give tokens to; with
    # that vocabulary the parameter count is Qwen2.5-0.5B's 494,032,768, which the tests check).
    "qwen2-0.5b": {
        "model_type": "qwen2",
        "vocab_size": 1024,
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def override_keys(name: str) -> list[str]:
    """The keys `overrides` may set for preset `name`: its architecture's config fields and the preset's own."""
    config_class = type(AutoConfig.for_model(MODEL_PRESETS[_check_name(name)]["model_type"]))
    generic = {f.name for f in dataclasses.fields(PreTrainedConfig)}
    keys = {f.name for f in dataclasses.fields(config_class)} - generic
    keys |= set(config_class.attribute_map) | set(MODEL_PRESETS[name])
    # The vocabulary and the special token ids are the tokenizer's; the architecture is the preset's.
    return sorted(keys - {"vocab_size", "model_type", "bos_token_id", "eos_token_id", "pad_token_id"})


def build_config(name: str, *, vocab_size: int | None = None, overrides: dict[str, Any] | None = None
                 ) -> PreTrainedConfig:
    """The transformers config of preset `name` with `overrides` applied and the given vocabulary size."""
    overrides = dict(overrides or {})
    valid = override_keys(name)
    unknown = sorted(set(overrides) - set(valid))
    if "vocab_size" in unknown:
        raise UserError("override 'vocab_size': set the vocabulary with vocab_size= (CLI: --vocab-size), "
                        "it sizes the tokenizer and the embedding together")
    if unknown:
        raise UserError(f"unknown override(s) {', '.join(unknown)} for preset {name!r}; "
                        f"valid keys: {', '.join(valid)}")
    kwargs = MODEL_PRESETS[name] | overrides
    if vocab_size is not None:
        kwargs["vocab_size"] = vocab_size
    try:
        return AutoConfig.for_model(**kwargs)
    except (TypeError, ValueError, StrictDataclassError) as exc:
        raise UserError(f"invalid overrides for preset {name!r}: {exc}") from exc


def count_parameters(config: PreTrainedConfig) -> int:
    """Number of parameters of the model `config` describes (built on the meta device: no memory, fast)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model.num_parameters()


def make_model(name: str, out_dir: str | Path, *, seed: int = 0, vocab_size: int | None = None,
               dtype: str = "float32", overrides: dict[str, Any] | None = None) -> Path:
    """Write a randomly initialised model of preset `name` (tokenizer included) to `out_dir`; return it.

    The same arguments give the same files: the tokenizer is deterministic and the weights are drawn
    after `torch.manual_seed(seed)` (in a forked RNG, so the caller's random state is left alone).
    """
    _check_name(name)
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {out} exists and is not empty")
    build_config(name, overrides=overrides)  # bad overrides fail before the tokenizer is trained

    tokenizer = train_tokenizer(vocab_size or MODEL_PRESETS[name]["vocab_size"])
    config = build_config(name, vocab_size=len(tokenizer), overrides=overrides)
    eos_id, pad_id = tokenizer.convert_tokens_to_ids([IM_END, PAD_TOKEN])
    config.eos_token_id, config.pad_token_id, config.bos_token_id = eos_id, pad_id, None
    tokenizer.model_max_length = config.max_position_embeddings

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Drawn in float32 for every dtype, so a bfloat16 model is the float32 one of the same seed, rounded.
        model = AutoModelForCausalLM.from_config(config).to(DTYPES[dtype])
        _randomise_expert_bias(model, config.initializer_range)
    # vLLM and `generate` stop on either: <|im_end|> ends a chat turn, <|endoftext|> ends raw text.
    model.generation_config = GenerationConfig(eos_token_id=[eos_id, pad_id], pad_token_id=pad_id,
                                               bos_token_id=None)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"preset": name, "overrides": overrides or {}, "seed": seed, "dtype": dtype,
              "vocab_size": len(tokenizer), "num_parameters": model.num_parameters()}
    (out / "grpo_model.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def load_policy(path: str | Path, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model directory (from make_model or any local HF checkpoint) with transformers' own loader."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json)")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def _check_name(name: str) -> str:
    if name not in MODEL_PRESETS:
        raise UserError(f"unknown model preset {name!r}; valid: {', '.join(MODEL_PRESETS)}")
    return name


def _randomise_expert_bias(model: PreTrainedModel, std: float) -> None:
    # The aux-loss-free routing bias starts at zero in DeepSeek-V3 training. A random start makes it
    # change which experts are picked, so a loader (vLLM's) that dropped it would fail log-prob parity.
    # It stays float32 whatever the dtype, as in DeepSeek-V3's checkpoints (and transformers keeps it so).
    for module in model.modules():
        if isinstance(getattr(module, "e_score_correction_bias", None), torch.Tensor):
            size = module.e_score_correction_bias.shape
            module.e_score_correction_bias = torch.randn(size, dtype=torch.float32) * std
