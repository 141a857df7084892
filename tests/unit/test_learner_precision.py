"""Mixed precision in the learner (`learner.precision: bf16`): bfloat16 compute under autocast, float32 master
weights and AdamW state, so small updates survive, and checkpoints that resume them bitwise."""

from __future__ import annotations

import torch

from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner

SMALL_LR = 1e-6  # below bfloat16's resolution on a weight of 1.0 (spacing 2^-7 = 7.8e-3 just above 1.0)


def _samples(n=6, seed=0, vocab=200) -> list[TrainSample]:
    g = torch.Generator().manual_seed(seed)
    return [TrainSample(prompt_ids=torch.randint(5, vocab, (3 + i % 3,), generator=g).tolist(),
                        completion_ids=torch.randint(5, vocab, (2 + (i * 7) % 5,), generator=g).tolist(),
                        advantage=float(i % 3) - 1.0, rollout_logprobs=[-1.0] * (2 + (i * 7) % 5))
            for i in range(n)]


def _learner(model_dir, precision: str, lr: float = SMALL_LR, total_steps: int = 2) -> Learner:
    return Learner(model_dir, LearnerConfig(lr=lr, max_grad_norm=None, precision=precision), AlgorithmConfig(),
                   total_steps=total_steps, seed=0)


def _norm_weights(learner: Learner) -> dict[str, torch.nn.Parameter]:
    """The RMSNorm gains: exactly 1.0 at initialisation, the issue's example of a weight of 1.0."""
    return {n: p for n, p in learner.model.named_parameters() if n.endswith("norm.weight")}


def test_a_small_update_survives_in_the_float32_master_weights(tiny_qwen2_dir):
    learner = _learner(tiny_qwen2_dir, "bf16")
    norms = _norm_weights(learner)
    assert norms and all(torch.all(p == 1.0) for p in norms.values())
    learner.train(_samples())
    assert all(p.dtype == torch.float32 for p in learner.model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in learner.optimizer.state.values())
    for name, p in norms.items():
        moved = (p.detach() - 1.0).abs()
        assert moved.max() > SMALL_LR / 2, name  # Adam's first step moves each weight by about lr
        assert moved.max() < 10 * SMALL_LR, name

    # The same step on bfloat16 weights (the same gradients, the same AdamW) leaves them where they were.
    pure = {n: p.detach().to(torch.bfloat16).fill_(1.0).requires_grad_() for n, p in norms.items()}
    for name, p in pure.items():
        p.grad = norms[name].grad.to(torch.bfloat16)
    torch.optim.AdamW(list(pure.values()), lr=SMALL_LR, weight_decay=0.0).step()
    assert all(torch.all(p == 1.0) for p in pure.values())


def test_bf16_computes_in_bfloat16(tiny_qwen2_dir):
    """Autocast really runs: the log-probs differ from float32's, by bfloat16's rounding only."""
    samples = _samples()
    full = _learner(tiny_qwen2_dir, "float32").compute_logprobs(samples)
    mixed = _learner(tiny_qwen2_dir, "bf16").compute_logprobs(samples)
    diffs = torch.tensor([abs(a - b) for fs, ms in zip(full, mixed) for a, b in zip(fs, ms)])
    assert diffs.max() > 0
    assert diffs.mean() < 5e-2


def test_bf16_checkpoint_resumes_the_master_weights_bitwise(tiny_qwen2_dir, tmp_path):
    uninterrupted = _learner(tiny_qwen2_dir, "bf16")
    uninterrupted.train(_samples(seed=1))
    uninterrupted.save(tmp_path / "step-1")
    saved = {n: p.detach().clone() for n, p in uninterrupted.model.named_parameters()}
    uninterrupted.train(_samples(seed=2))

    resumed = _learner(tmp_path / "step-1" / "model", "bf16")
    resumed.load_trainer_state(tmp_path / "step-1")
    for name, p in resumed.model.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, saved[name]), name
    resumed.train(_samples(seed=2))
    after = dict(uninterrupted.model.named_parameters())
    for name, p in resumed.model.named_parameters():
        assert torch.equal(p, after[name]), name
    for a, b in zip(uninterrupted.optimizer.state.values(), resumed.optimizer.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
