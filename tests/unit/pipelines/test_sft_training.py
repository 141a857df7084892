"""SFT (and distill's student) at the scale of the GPU recipes: gradient accumulation gives the update of the
whole batch, gradient checkpointing is on when asked (each layer recomputed in the backward), bf16 mixed
precision computes in bfloat16 over float32 master weights, and the model is written in its own dtype.
A real tiny Qwen2 (2 layers), on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from grpo.config import OptimConfig, SupervisedTraining
from pipelines.sft import accumulate_gradients, collate, load_for_training, tokenize_pairs, train_sft

PROMPTS = ["1 + 2 =", "What is 12 + 7?", "Name a colour.", "Hello"]
# Completions of different lengths: the two micro-batches hold different numbers of tokens, so a mean per
# micro-batch (instead of over the whole batch's tokens) would weigh them wrongly.
COMPLETIONS = ["3", "<think> 12 + 7 = 19 </think> <answer> 19 </answer>", "Blue, the colour of the sky.", "Hi!"]
SMALL_LR = 1e-6  # below bfloat16's resolution on a weight of 1.0


def batches(model_dir, parts: list[slice]):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = tokenize_pairs(tokenizer, PROMPTS, COMPLETIONS, max_length=64)
    return [collate(pairs[part], tokenizer.pad_token_id or 0, packed=False) for part in parts]


def gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_two_micro_batches_of_two_give_the_gradient_of_one_batch_of_four(tiny_qwen2_dir):
    whole = load_for_training(tiny_qwen2_dir, torch.device("cpu"))
    loss_whole = accumulate_gradients(whole, batches(tiny_qwen2_dir, [slice(0, 4)]))
    split = load_for_training(tiny_qwen2_dir, torch.device("cpu"))
    loss_split = accumulate_gradients(split, batches(tiny_qwen2_dir, [slice(0, 2), slice(2, 4)]))
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)
    expected, got = gradients(whole), gradients(split)
    assert expected.keys() == got.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_gradient_accumulation_gives_the_same_update(tiny_qwen2_dir, tmp_path):
    lr = 1e-3

    def run(steps: int):
        training = SupervisedTraining(batch_size=4, gradient_accumulation_steps=steps, max_length=64,
                                      optim=OptimConfig(lr=lr, max_grad_norm=None))
        train_sft(tiny_qwen2_dir, PROMPTS, COMPLETIONS, tmp_path / f"acc{steps}", training=training, seed=0)
        return load_file(tmp_path / f"acc{steps}" / "model.safetensors")

    one, two = run(1), run(2)
    # AdamW's first step is about lr * sign(gradient), also of a gradient that is only float noise (k_proj.bias
    # moves no attention): within 5% of a step. A mean per micro-batch instead moves 7% of the weights by 2 steps.
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=lr * 0.05, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradient_checkpointing_is_on_when_asked(tiny_qwen2_dir, checkpointing):
    model = load_for_training(tiny_qwen2_dir, torch.device("cpu"), gradient_checkpointing=checkpointing)
    assert model.is_gradient_checkpointing == checkpointing
    calls = []
    # A pre-hook: torch stops a recomputation as soon as it has the tensors the backward needs, before any
    # forward hook would run.
    model.model.layers[0].register_forward_pre_hook(lambda *args: calls.append(1))
    accumulate_gradients(model, batches(tiny_qwen2_dir, [slice(0, 4)]))
    # Checkpointed, the layer runs without keeping activations, and again in the backward to recompute them.
    assert len(calls) == (2 if checkpointing else 1)


def test_bf16_computes_in_bfloat16_over_float32_master_weights(tiny_qwen2_dir):
    model = load_for_training(tiny_qwen2_dir, torch.device("cpu"))
    seen = []
    model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    accumulate_gradients(model, batches(tiny_qwen2_dir, [slice(0, 4)]), precision="bf16")
    assert seen == [torch.bfloat16]
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


def test_a_bf16_step_smaller_than_bfloat16_resolution_moves_the_weights(tiny_qwen2_dir, tmp_path):
    training = SupervisedTraining(batch_size=4, gradient_accumulation_steps=2, gradient_checkpointing=True,
                                  precision="bf16", max_length=64, optim=OptimConfig(lr=SMALL_LR, max_grad_norm=None))
    train_sft(tiny_qwen2_dir, PROMPTS, COMPLETIONS, tmp_path / "out", training=training, seed=0)
    weights = load_file(tmp_path / "out" / "model.safetensors")
    norms = {n: w for n, w in weights.items() if n.endswith("norm.weight")}
    assert norms
    for name, w in norms.items():  # 1.0 at initialisation; Adam's first step moves each weight by about lr
        assert w.dtype == torch.float32
        assert SMALL_LR / 2 < (w - 1.0).abs().max() < 10 * SMALL_LR, name


def test_the_model_is_written_in_its_dtype(tiny_qwen2_dir, tmp_path):
    training = SupervisedTraining(batch_size=4, max_length=64, optim=OptimConfig(lr=1e-3))
    train_sft(tiny_qwen2_dir, PROMPTS, COMPLETIONS, tmp_path / "out", training=training, seed=0, dtype="bfloat16")
    assert {w.dtype for w in load_file(tmp_path / "out" / "model.safetensors").values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
