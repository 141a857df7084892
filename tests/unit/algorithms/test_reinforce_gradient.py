"""With one update per batch (ratio 1) and beta = 0, the GRPO loss's gradient is the REINFORCE gradient with
group-normalised advantages:

    grad L = -(1 / N) * sum_i (1 / |o_i|) * sum_t A_i * grad log pi_theta(o_{i,t})

checked by autograd on a small logits tensor (the "model" is the logits themselves).
"""

import pytest
import torch

from grpo.algorithms import PolicyLossConfig, compute_advantages, policy_loss

NUM_GROUPS, NUM_GENERATIONS, SEQ_LEN, VOCAB = 2, 3, 5, 7


def sampled_batch():
    """Logits [N, T, V] with grad, tokens sampled from them, per-response lengths and rewards."""
    generator = torch.Generator().manual_seed(1234)
    rows = NUM_GROUPS * NUM_GENERATIONS
    logits = torch.randn(rows, SEQ_LEN, VOCAB, generator=generator, dtype=torch.float64).requires_grad_(True)
    probs = torch.softmax(logits.detach(), -1).reshape(-1, VOCAB)
    tokens = torch.multinomial(probs, 1, generator=generator).reshape(rows, SEQ_LEN)
    mask = torch.arange(SEQ_LEN) < torch.tensor([[5], [3], [4], [1], [5], [2]])
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.0, 1.0], dtype=torch.float64)
    return logits, tokens, mask, rewards


def token_logp(logits, tokens):
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("config", [
    PolicyLossConfig(loss_type="grpo"),
    PolicyLossConfig(loss_type="grpo", epsilon_high=0.28, dual_clip=3.0),  # clipping is inactive at ratio 1
    PolicyLossConfig(loss_type="grpo", importance_sampling_level="sequence", epsilon=3e-4),  # GSPO: same at ratio 1
])  # fmt: skip
def test_grpo_loss_gradient_equals_reinforce_gradient(config):
    logits, tokens, mask, rewards = sampled_batch()
    advantages = compute_advantages(rewards, NUM_GENERATIONS, "grpo")

    loss, _ = policy_loss(token_logp(logits, tokens), None, advantages, mask, config)
    (grad_loss,) = torch.autograd.grad(loss, logits)

    logp = token_logp(logits, tokens)
    lengths = mask.sum(-1)
    reinforce = -((advantages.unsqueeze(-1) * logp * mask).sum(-1) / lengths).mean()
    (grad_reinforce,) = torch.autograd.grad(reinforce, logits)

    assert grad_reinforce.abs().max() > 1e-3  # a non-trivial gradient, so the comparison means something
    torch.testing.assert_close(grad_loss, grad_reinforce, rtol=1e-10, atol=1e-12)


def test_explicit_old_logp_equal_to_current_gives_the_same_gradient():
    """old_logp = logp.detach() passed explicitly is the same as None (on-policy)."""
    logits, tokens, mask, rewards = sampled_batch()
    advantages = compute_advantages(rewards, NUM_GENERATIONS, "grpo")
    logp = token_logp(logits, tokens)
    (grad_none,) = torch.autograd.grad(policy_loss(logp, None, advantages, mask, PolicyLossConfig())[0], logits)
    logp = token_logp(logits, tokens)
    explicit = policy_loss(logp, logp.detach().clone(), advantages, mask, PolicyLossConfig())[0]
    (grad_explicit,) = torch.autograd.grad(explicit, logits)
    torch.testing.assert_close(grad_explicit, grad_none, rtol=1e-12, atol=1e-14)
