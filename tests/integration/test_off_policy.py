"""One-step-off-policy RL (rollout.off_policy_steps: 1) on real components.

While the learner trains on batch t, the workers sample batch t+1 with step t's starting weights, so from the
second step on every batch is one learner step stale. The stage is test_rl_loop's, whose learning rate moves
the weights a lot every step: stale samples' log-probs then differ from the learner's by far more than the
parity tolerance, and the TIS weight pi_old / pi_rollout of the loss moves away from 1, which shows the
correction is computed against the stale sampling policy (on the on-policy first step it is 1).
"""

from __future__ import annotations

import math
import shutil

import pytest

from grpo.checkpoint import checkpoint_dir
from grpo.metrics import read_metrics
from test_rl_loop import QWEN2_TOLERANCE, rl_stage, run_loop, weights_moved

pytestmark = pytest.mark.slow


def test_one_step_off_policy_run_and_its_resume(ray_cluster, tiny_qwen2_dir, tmp_path):
    stage = rl_stage(steps=4, checkpoint_every=2, rollout={"off_policy_steps": 1})
    stage_dir = tmp_path / "off"
    final = run_loop(stage, tiny_qwen2_dir, stage_dir)
    history = read_metrics(stage_dir / "metrics.jsonl")
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    # Batch t is sampled by the weights after t-1 learner steps, except the first, sampled before training.
    assert [h["rollout/weights_version"] for h in history] == [0, 0, 1, 2]
    assert [h["rollout/staleness"] for h in history] == [0, 1, 1, 1]
    first, stale = history[0], history[1:]
    assert first["rollout/logprob_mismatch"] <= QWEN2_TOLERANCE
    assert abs(first["tis/weight_mean"] - 1) < 1e-3
    for h in stale:
        assert h["rollout/logprob_mismatch"] > 10 * QWEN2_TOLERANCE, h  # sampled by the previous weights (~0.2)
        assert math.isfinite(h["tis/weight_mean"]) and h["tis/weight_mean"] > 0, h
    # Importance weights average 1 in expectation, so their batch mean only wanders off it (measured up to 0.04).
    assert max(abs(h["tis/weight_mean"] - 1) for h in stale) > 1e-3
    assert weights_moved(tiny_qwen2_dir, final) > 1e-2

    # Resume from the step-2 checkpoint: the batch that was in flight there (sampled by version 1) is not
    # saved, so step 3 samples it again with the checkpoint's weights (version 2), and is on-policy.
    shutil.rmtree(checkpoint_dir(stage_dir / "checkpoints", 4))
    shutil.rmtree(final)
    run_loop(stage, tiny_qwen2_dir, stage_dir)
    # The resumed run drops the lines logged after its checkpoint (RLLoop._rewind_logs) and writes its own.
    history = read_metrics(stage_dir / "metrics.jsonl")
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    resumed = history[2:]
    assert [h["rollout/weights_version"] for h in resumed] == [2, 2]
    assert [h["rollout/staleness"] for h in resumed] == [0, 1]
    assert resumed[0]["rollout/logprob_mismatch"] <= QWEN2_TOLERANCE
