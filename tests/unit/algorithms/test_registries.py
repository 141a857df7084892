"""The recipe schema's algorithm choices are the registries' keys: a new advantage estimator is one function
plus one registration, and a step runs with it (schema -> compute_advantages -> learner loss) on a tiny model."""

import inspect

import pytest
import torch
from pydantic import ValidationError

from grpo.algorithms import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_TYPES, compute_advantages
from grpo.config import AlgorithmConfig, LearnerConfig
from grpo.learner.batching import TrainSample
from grpo.learner.learner import Learner


@pytest.mark.parametrize("field, registry", [
    ("advantage_estimator", ADVANTAGE_ESTIMATORS), ("loss_type", LOSS_TYPES), ("kl_estimator", KL_ESTIMATORS),
])  # fmt: skip
def test_schema_choices_are_the_registry_keys(field, registry):
    assert AlgorithmConfig.model_json_schema()["properties"][field]["enum"] == list(registry)
    for name in registry:
        assert getattr(AlgorithmConfig(**{field: name}), field) == name
    with pytest.raises(ValidationError) as raised:
        AlgorithmConfig(**{field: "nope"})
    (error,) = raised.value.errors()
    assert error["type"] == "literal_error"  # grpo/recipe.py turns it into "... is not a valid choice; ..."
    assert error["ctx"]["expected"] == ", ".join(repr(n) for n in list(registry)[:-1]) + f" or {list(registry)[-1]!r}"


@pytest.mark.parametrize("given, stored", [(True, "group"), (False, "none"), ("group", "group"),
                                           ("batch", "batch"), ("none", "none")])  # fmt: skip
def test_scale_rewards_takes_the_implemented_modes_and_the_old_booleans(given, stored):
    assert AlgorithmConfig(scale_rewards=given).scale_rewards == stored


def test_scale_rewards_rejects_anything_else():
    with pytest.raises(ValidationError, match="'group', 'batch' or 'none'"):
        AlgorithmConfig(scale_rewards="std")


def sign_advantages(grouped, *, lengths, scale_rewards, eps):
    """+1 above the group mean, -1 below, 0 at it: the whole estimator a user has to write."""
    return torch.sign(grouped - grouped.mean(dim=1, keepdim=True))


def test_an_estimator_registered_at_run_time_validates_and_trains(tiny_qwen2_dir, monkeypatch):
    with pytest.raises(ValidationError):
        AlgorithmConfig(advantage_estimator="sign")
    monkeypatch.setitem(ADVANTAGE_ESTIMATORS, "sign", sign_advantages)
    algo = AlgorithmConfig(advantage_estimator="sign", num_generations=2, tis_cap=None)  # no rollout log-probs
    assert "sign" in AlgorithmConfig.model_json_schema()["properties"]["advantage_estimator"]["enum"]

    completions = [[7, 8], [9, 10, 11], [12], [13, 14]]
    rewards = torch.tensor([1.0, 0.0, 0.2, 0.7])
    advantages = compute_advantages(rewards, algo.num_generations, algo.advantage_estimator, algo.scale_rewards,
                                    lengths=torch.tensor([len(c) for c in completions]))  # fmt: skip
    assert advantages.tolist() == [1.0, -1.0, -1.0, 1.0]
    samples = [TrainSample(prompt_ids=[5, 6], completion_ids=c, advantage=float(a))
               for c, a in zip(completions, advantages)]  # fmt: skip
    learner = Learner(tiny_qwen2_dir, LearnerConfig(lr=1e-2, max_grad_norm=None), algo, total_steps=1)
    before = [p.detach().clone() for p in learner.params]
    metrics = learner.train(samples)
    # On-policy every ratio is 1, so the grpo loss is -mean_i A_i (0 here) and the gradient is REINFORCE's,
    # which is 0 unless the advantages reached the loss (beta and entropy_coef are 0).
    assert metrics["loss/policy"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["learner/grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, learner.params))


def test_defaults_are_the_ones_the_schema_states():
    """Dual clip off, KL bound 10, std eps 1e-4: each default is the value its field's description names."""
    fields = AlgorithmConfig.model_fields
    defaults = AlgorithmConfig()
    assert defaults.dual_clip is None and "Default null (off)" in fields["dual_clip"].description
    assert defaults.kl_bound == 10.0 and "uses 10" in fields["kl_bound"].description
    assert inspect.signature(compute_advantages).parameters["eps"].default == 1e-4
    assert "eps 1e-4" in fields["scale_rewards"].description
