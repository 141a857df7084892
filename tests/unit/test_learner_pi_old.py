"""pi_old, the policy before a batch's first update: the denominator of the PPO ratio and the numerator of the
TIS weight min(pi_old / pi_rollout, tis_cap). Every update of a batch after its first must use the stored one."""

from __future__ import annotations

from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.learner import Learner
from test_learner import _samples


def test_later_mini_batches_use_the_policy_before_the_first_update(tiny_qwen2_dir):
    """num_iterations 1, mini_batches 2: the second optimizer step sees ratios != 1 (pi_old was stored before
    the first step); with pi_old taken as the current policy they would all be exactly 1."""
    learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=5e-2, token_budget=64), AlgorithmConfig(epsilon=0.1),
                      total_steps=1, mini_batches=2, seed=0)
    metrics = learner.train(_samples(6))
    assert learner.updates == 2
    assert metrics["ratio/max"] > 1.0 + 1e-3 or metrics["ratio/min"] < 1.0 - 1e-3, metrics
