"""The model factory: presets build, save and load through transformers' own code; bad input is a UserError."""

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

from common.errors import UserError
from grpo.models.factory import MODEL_PRESETS, build_config, count_parameters, load_policy, make_model


def _tensors(model_dir):
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}


@pytest.mark.parametrize("fixture", ["tiny_qwen2_dir", "tiny_dsv3_dir"])
def test_directory_loads_in_transformers_and_runs(fixture, request):
    model_dir = request.getfixturevalue(fixture)
    for name in ["config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json", "grpo_model.json"]:
        assert (model_dir / name).is_file(), name
    model, tokenizer = load_policy(model_dir)
    assert model.dtype == torch.float32 and not model.training
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=False)
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()


def test_record_and_special_token_ids(tiny_qwen2_dir):
    record = json.loads((tiny_qwen2_dir / "grpo_model.json").read_text())
    assert record == {"preset": "tiny-qwen2", "overrides": {}, "seed": 0, "dtype": "float32", "vocab_size": 1024,
                      "num_parameters": 525_440}
    config = AutoConfig.from_pretrained(tiny_qwen2_dir)
    generation = GenerationConfig.from_pretrained(tiny_qwen2_dir)
    # <|endoftext|> = 0, <|im_end|> = 2: vLLM and generate() stop on either.
    assert (config.eos_token_id, config.pad_token_id, config.bos_token_id) == (2, 0, None)
    assert (generation.eos_token_id, generation.pad_token_id) == ([2, 0], 0)


def test_tiny_qwen2_shapes_and_parameter_count(tiny_qwen2_dir):
    config = AutoConfig.from_pretrained(tiny_qwen2_dir)
    assert config.model_type == "qwen2" and config.tie_word_embeddings
    h, layers, kv, inter, vocab = 128, 2, 2 * 32, 384, 1024
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with biases; o without
    per_layer = attention + 3 * h * inter + 2 * h
    expected = vocab * h + layers * per_layer + h  # one embedding matrix (tied), final norm
    assert count_parameters(config) == expected == 525_440
    tensors = _tensors(tiny_qwen2_dir)
    assert "lm_head.weight" not in tensors  # tied to the embedding, as in Qwen2.5-0.5B
    assert sum(t.numel() for t in tensors.values()) == expected


def test_qwen2_presets_have_the_advertised_sizes():
    # With Qwen2.5's own vocabulary the 0.5b preset has exactly Qwen2.5-0.5B's parameter count.
    assert count_parameters(build_config("qwen2-0.5b", vocab_size=151_936)) == 494_032_768
    assert 23e6 < count_parameters(build_config("qwen2-24m")) < 26e6


def test_tiny_deepseek_v3_architecture(tiny_dsv3_dir):
    config = json.loads((tiny_dsv3_dir / "config.json").read_text())
    assert config["model_type"] == "deepseek_v3"
    assert (config["n_shared_experts"], config["n_routed_experts"], config["num_experts_per_tok"]) == (1, 8, 2)
    assert (config["topk_method"], config["scoring_func"]) == ("noaux_tc", "sigmoid")  # vLLM reads these
    assert (config["kv_lora_rank"], config["qk_rope_head_dim"]) == (512, 64)  # vLLM CPU MLA's only size
    assert config["first_k_dense_replace"] == 1 and config["num_nextn_predict_layers"] == 0
    tensors = _tensors(tiny_dsv3_dir)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    # Layer 0 is dense; layers 1.. are MoE with a shared expert, routed experts and the routing bias.
    assert "model.layers.0.mlp.gate_proj.weight" in tensors
    assert not any(key.startswith("model.layers.0.mlp.experts") for key in tensors)
    for layer in range(1, config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}.mlp"
        for expert in range(8):
            assert tensors[f"{prefix}.experts.{expert}.gate_proj.weight"].shape == (96, hidden)
        assert f"{prefix}.shared_experts.down_proj.weight" in tensors
        assert tensors[f"{prefix}.gate.weight"].shape == (8, hidden)
        bias = tensors[f"{prefix}.gate.e_score_correction_bias"]
        assert bias.dtype == torch.float32 and bias.shape == (8,) and bias.abs().min() > 0
    # MLA: a compressed query (q_lora_rank), a shared latent of 512 + 64 rope dims, per-head up-projections.
    attention = "model.layers.0.self_attn"
    assert tensors[f"{attention}.q_a_proj.weight"].shape == (config["q_lora_rank"], hidden)
    assert tensors[f"{attention}.kv_a_proj_with_mqa.weight"].shape == (512 + 64, hidden)
    qk_nope, v_dim = config["qk_nope_head_dim"], config["v_head_dim"]
    assert tensors[f"{attention}.kv_b_proj.weight"].shape == (heads * (qk_nope + v_dim), 512)
    assert tensors[f"{attention}.q_b_proj.weight"].shape == (heads * (qk_nope + 64), config["q_lora_rank"])
    assert not any(key.startswith(f"model.layers.{config['num_hidden_layers']}") for key in tensors)  # no MTP


def test_routing_bias_survives_loading(tiny_dsv3_dir):
    model, _ = load_policy(tiny_dsv3_dir)
    saved = _tensors(tiny_dsv3_dir)["model.layers.1.mlp.gate.e_score_correction_bias"]
    assert torch.equal(model.model.layers[1].mlp.gate.e_score_correction_bias, saved)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, tiny_qwen2_dir):
    again = _tensors(make_model("tiny-qwen2", tmp_path / "again"))
    first = _tensors(tiny_qwen2_dir)
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    other = _tensors(make_model("tiny-qwen2", tmp_path / "other", seed=1))
    assert not torch.equal(other["model.embed_tokens.weight"], first["model.embed_tokens.weight"])


def test_caller_random_state_is_left_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_model("tiny-qwen2", tmp_path / "m", overrides={"num_hidden_layers": 1})
    assert torch.equal(torch.rand(3), expected)


def test_overrides_and_vocab_size(tmp_path):
    out = make_model("tiny-qwen2", tmp_path / "m", vocab_size=512,
                     overrides={"num_hidden_layers": 1, "hidden_act": "gelu"})
    config = AutoConfig.from_pretrained(out)
    assert (config.num_hidden_layers, config.hidden_act, config.vocab_size) == (1, "gelu", 512)
    record = json.loads((out / "grpo_model.json").read_text())
    assert record["overrides"] == {"num_hidden_layers": 1, "hidden_act": "gelu"} and record["vocab_size"] == 512
    assert len(load_policy(out)[1]) == 512


def test_bfloat16_model_is_the_float32_one_rounded(tmp_path, tiny_qwen2_dir):
    out = make_model("tiny-qwen2", tmp_path / "m", dtype="bfloat16")
    rounded, full = _tensors(out), _tensors(tiny_qwen2_dir)
    assert all(rounded[k].dtype == torch.bfloat16 and torch.equal(rounded[k], full[k].to(torch.bfloat16))
               for k in full)
    assert AutoModelForCausalLM.from_pretrained(out, local_files_only=True).dtype == torch.bfloat16


def test_unknown_preset_lists_the_valid_ones(tmp_path):
    with pytest.raises(UserError) as info:
        make_model("tiny-llama", tmp_path / "m")
    assert "tiny-llama" in str(info.value)
    assert all(name in str(info.value) for name in MODEL_PRESETS)


def test_unknown_override_lists_the_valid_keys(tmp_path):
    with pytest.raises(UserError) as info:
        make_model("tiny-deepseek-v3", tmp_path / "m", overrides={"num_layers": 4})
    message = str(info.value)
    assert "num_layers" in message and "num_hidden_layers" in message and "kv_lora_rank" in message
    assert not (tmp_path / "m").exists()  # checked before anything is written


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"overrides": {"vocab_size": 2048}}, "vocab_size="),
    ({"overrides": {"eos_token_id": 5}}, "unknown override"),
    ({"overrides": {"hidden_size": "wide"}}, "hidden_size"),
    ({"dtype": "float64"}, "unknown dtype 'float64'"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, match):
    with pytest.raises(UserError, match=match):
        make_model("tiny-qwen2", tmp_path / "m", **kwargs)


def test_non_empty_output_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        make_model("tiny-qwen2", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_load_policy_of_a_directory_without_a_model(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_policy(tmp_path)
