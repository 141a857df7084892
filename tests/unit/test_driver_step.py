"""The RL step's pieces between the rollout and the learners, without Ray or vLLM: a scored rollout becomes
the learners' batch (staleness check, dynamic sampling, advantages, truncation masking) and the step's metrics."""

from __future__ import annotations

import pytest

from grpo.config import ClusterConfig, RLStage
from grpo.driver import PromptBatch, RLLoop, Rollout
from grpo.rollout.engine import Sample
from rewards.compose import ComposedRewards

G = 2


def _loop(tmp_path, **algorithm) -> RLLoop:
    stage = RLStage.model_validate({
        "name": "rl", "type": "rl", "data": {"source": "task:arithmetic", "n": 8},
        "rewards": [{"name": "exact_match"}], "steps": 3, "prompts_per_step": 2,
        "rollout": {"off_policy_steps": 1}, "algorithm": {"num_generations": G, **algorithm}})
    loop = RLLoop(stage, tmp_path / "model", tmp_path / "stage", seed=0, cluster=ClusterConfig())
    loop.step_scorer = None
    return loop


def _rollout(rewards: list[float], version: int = 0, truncated: tuple[int, ...] = ()) -> Rollout:
    samples = [Sample([1, 2], [3] * (i + 1), [-0.5] * (i + 1), f"s{i}",
                      "length" if i in truncated else "stop", weights_version=version)
               for i in range(len(rewards))]
    groups = [samples[g : g + G] for g in range(0, len(samples), G)]
    batch = PromptBatch([{"question": f"q{g}"} for g in range(len(groups))], [f"p{g}" for g in range(len(groups))])
    scored = ComposedRewards(totals=rewards, components={"exact_match": rewards})
    return Rollout(batch, groups, scored, {"timing/generate": 1.0, "timing/reward": 0.0,
                                           "timing/reward_overlapped": 0.0})


def test_a_batch_gets_group_advantages_and_the_staleness_of_its_weights(tmp_path):
    batch = _loop(tmp_path)._train_batch(1, _rollout([1.0, 0.0, 0.0, 0.0], version=0))
    assert (batch.sampled_by, batch.staleness, batch.kept, batch.dropped) == (0, 1, [0, 1], 0)
    assert batch.advantages[0] > 0 > batch.advantages[1] and batch.advantages[2:] == [0.0, 0.0]
    assert [s.advantage for s in batch.samples] == batch.advantages
    assert batch.samples[1].completion_ids == [3, 3] and batch.samples[1].rollout_logprobs == [-0.5, -0.5]


def test_dynamic_sampling_drops_uniform_groups_and_truncated_samples_can_be_masked(tmp_path):
    loop = _loop(tmp_path, dynamic_sampling=True, mask_truncated_completions=True)
    batch = loop._train_batch(0, _rollout([1.0, 0.0, 1.0, 1.0], truncated=(1,)))
    assert (batch.kept, batch.dropped) == ([0], 1)
    assert len(batch.advantages) == G and [s.completion_ids for s in batch.samples] == [[3]]
    metrics = loop._metrics(_rollout([1.0, 0.0, 1.0, 1.0], truncated=(1,)), batch, [{"loss/policy": 0.5}],
                            {"timing/sync": 0.1, "sync/seconds": 0.2})
    assert metrics["batch/dropped_groups"] == 1 and metrics["batch/samples"] == 1
    assert metrics["length/clipped_frac"] == 0.25 and metrics["accuracy"] == 0.75
    assert metrics["frac_zero_adv_groups"] == 0.0 and metrics["loss/policy"] == 0.5
    assert metrics["sync/seconds"] == 0.2 and metrics["throughput/rollout_tokens_per_s"] == 10.0


def test_a_batch_staler_than_off_policy_steps_allow_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="sampled by weights 2 steps old"):
        _loop(tmp_path)._train_batch(2, _rollout([1.0, 0.0], version=0))
