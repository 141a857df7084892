"""The learner's pieces on a real tiny transformers model: chunked log-probs, token-budget packing, gradient
accumulation, MoE router probing, LoRA (only adapters change), checkpoints."""

from __future__ import annotations

import torch

from grpo.config import AlgorithmConfig, LearnerConfig, LoraConfig
from grpo.learner.batching import TrainSample, collate, pack_by_token_budget
from grpo.learner.learner import Learner
from grpo.learner.logprobs import completion_logprobs, reference_logprobs_full


def _samples(n=6, seed=0, vocab=200) -> list[TrainSample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.randint(5, vocab, (3 + i % 3,), generator=g).tolist()
        c = torch.randint(5, vocab, (2 + (i * 7) % 5,), generator=g).tolist()
        out.append(TrainSample(prompt_ids=p, completion_ids=c, advantage=float(i % 3) - 1.0,
                               rollout_logprobs=[-1.0] * len(c)))
    return out


def test_pack_by_token_budget_respects_budget_and_covers_all():
    samples = _samples(9)
    batches = pack_by_token_budget(samples, token_budget=24)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(9))
    for b in batches:
        longest = max(samples[i].length for i in b)
        assert longest * len(b) <= 24 or len(b) == 1


def test_chunked_logprobs_equal_full_logprobs(tiny_qwen2_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, dtype=torch.float32).eval()
    samples = _samples(4)
    mb = collate(samples, pad_id=0)
    with torch.no_grad():
        chunked, _ = completion_logprobs(model, mb.input_ids, mb.attention_mask, mb.prompt_lengths,
                                         mb.completion_mask.shape[1], chunk_size=3)
        for row, s in enumerate(samples):
            ids = torch.tensor([s.prompt_ids + s.completion_ids])
            full = reference_logprobs_full(model, ids)[0, len(s.prompt_ids) - 1 :]
            torch.testing.assert_close(chunked[row, : len(s.completion_ids)], full, atol=1e-5, rtol=0)


def _learner(model_dir, token_budget, lora=None, **algo):
    return Learner(model_dir, LearnerConfig(lr=1e-2, token_budget=token_budget, max_grad_norm=None, lora=lora),
                   AlgorithmConfig(**algo), total_steps=1, seed=0)


def _grads(learner, samples):
    for group in learner.optimizer.param_groups:  # keep the weights: only the gradients are compared
        group["lr"] = 0.0
    learner.train(samples)
    return {n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_matches_one_big_batch(tiny_qwen2_dir):
    """Micro-batches of a few tokens give the same summed gradient as one micro-batch (global normalisers)."""
    for loss_type in ("grpo", "dapo"):
        samples = _samples(6)
        big = _grads(_learner(tiny_qwen2_dir, token_budget=10_000, loss_type=loss_type), samples)
        small = _grads(_learner(tiny_qwen2_dir, token_budget=16, loss_type=loss_type), _samples(6))
        assert big.keys() == small.keys()
        for name in big:
            torch.testing.assert_close(small[name], big[name], atol=1e-6, rtol=1e-4)


def test_training_changes_weights_and_reports_metrics(tiny_qwen2_dir):
    learner = _learner(tiny_qwen2_dir, token_budget=64)
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    metrics = learner.train(_samples(6))
    changed = [n for n, p in learner.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed
    for key in ("loss/policy", "ratio/mean", "learner/grad_norm", "rollout/logprob_mismatch", "timing/learner"):
        assert key in metrics
    assert metrics["ratio/mean"] == 1.0  # on-policy, one update: every ratio is exactly 1


def test_lora_changes_only_adapters_and_sync_weights_are_merged(tiny_qwen2_dir):
    learner = _learner(tiny_qwen2_dir, token_budget=64, lora=LoraConfig(r=4, alpha=8))
    names = learner.trainable_names()
    assert names and all("lora_" in n for n in names)
    base_before = {k: v.clone() for k, v in learner.gather_full_state_dict_on_rank0().items()}
    frozen_before = {n: p.detach().clone() for n, p in learner.model.named_parameters() if not p.requires_grad}
    learner.train(_samples(6))
    for n, p in learner.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_before[n]), n
    after = learner.gather_full_state_dict_on_rank0()
    assert after.keys() == base_before.keys()
    assert not any("lora" in k or "base_layer" in k for k in after)
    assert any(not torch.equal(after[k], base_before[k]) for k in after)  # merged adapters moved the weights


def test_moe_router_probe_reports_expert_load(tiny_dsv3_dir):
    learner = Learner(tiny_dsv3_dir, LearnerConfig(lr=1e-3, router="aux_loss", router_aux_loss_coef=0.01),
                      AlgorithmConfig(), total_steps=1, seed=0)
    assert learner.router.active
    metrics = learner.train(_samples(4))
    loads = [k for k in metrics if k.startswith("moe/max_load/")]
    assert loads and all(metrics[k] >= 1.0 for k in loads)
    assert metrics["moe/aux_loss"] > 0


def test_several_iterations_are_off_policy_and_clipped(tiny_qwen2_dir):
    """With num_iterations 2 the second pass sees ratios != 1 against the stored old log-probs."""
    learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=5e-2, token_budget=64), AlgorithmConfig(epsilon=0.1),
                      total_steps=1, num_iterations=2, seed=0)
    metrics = learner.train(_samples(6))
    assert learner.updates == 2
    assert metrics["ratio/max"] > 1.0 or metrics["ratio/min"] < 1.0


def test_gradient_checkpointing_gives_the_same_gradient(tiny_qwen2_dir):
    plain = _grads(_learner(tiny_qwen2_dir, token_budget=64), _samples(4))
    ckpt_learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=1e-2, token_budget=64, max_grad_norm=None,
                                                         gradient_checkpointing=True),
                           AlgorithmConfig(), total_steps=1, seed=0)
    checkpointed = _grads(ckpt_learner, _samples(4))
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-4)


def test_the_reference_comes_from_reference_dir_not_the_resumed_policy(tiny_qwen2_dir, tmp_path):
    """A resumed stage loads its policy from a checkpoint; its KL reference must stay the stage's start model."""
    trained = _learner(tiny_qwen2_dir, token_budget=64, beta=0.1)
    trained.train(_samples(4))
    trained.save_model(str(tmp_path / "checkpoint"))
    resumed = Learner(tmp_path / "checkpoint", LearnerConfig(lr=1e-2, token_budget=64), AlgorithmConfig(beta=0.1),
                      total_steps=1, seed=0, reference_dir=tiny_qwen2_dir)
    start = _learner(tiny_qwen2_dir, token_budget=64, beta=0.1)
    for (name, ref), (_, original) in zip(resumed.reference.named_parameters(), start.model.named_parameters()):
        torch.testing.assert_close(ref, original, rtol=0, atol=0, msg=name)
    policy = dict(resumed.model.named_parameters())
    assert any(not torch.equal(policy[name], ref) for name, ref in
               zip(policy, (p for _, p in resumed.reference.named_parameters())))
