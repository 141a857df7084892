"""The metrics files of a run, read by other tools: JSONL with the standard library, TensorBoard events with
tensorboard's own reader (what `tensorboard --logdir` shows)."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from run_builder import RL_STEPS, build_run, rl_metrics


@pytest.fixture(scope="module")
def grpo_dir(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run")) / "stages" / "grpo"


def test_jsonl_holds_one_object_per_step_with_every_metric(grpo_dir):
    lines = (grpo_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == list(range(1, RL_STEPS + 1))
    for record in records:
        expected = rl_metrics(record["step"])
        assert set(record) == set(expected) | {"step", "time"}
        assert all(record[k] == pytest.approx(v) for k, v in expected.items())


def test_tensorboard_events_hold_every_metric_at_every_step(grpo_dir):
    events = EventAccumulator(str(grpo_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(rl_metrics(1))
    for tag in ("reward/mean", "accuracy", "kl/ref", "entropy", "timing/generate", "moe/max_load/layer0"):
        scalars = events.Scalars(tag)
        assert [e.step for e in scalars] == list(range(1, RL_STEPS + 1))
        assert [e.value for e in scalars] == pytest.approx([rl_metrics(s)[tag] for s in range(1, RL_STEPS + 1)],
                                                           rel=1e-6, abs=1e-9)
