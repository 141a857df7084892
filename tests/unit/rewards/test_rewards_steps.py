"""Step rewards (process supervision): the rule-based verifier of the arithmetic working, a process reward
model scoring each step's prefix, their registration as a reward kind, and the per-sample fallback."""

from __future__ import annotations

import pytest

from grpo.data.arithmetic import arithmetic_trace, generate_arithmetic, slipped_arithmetic_trace
from rewards.registry import get_reward
from rewards.reward_model import RewardModel
from rewards.spec import RewardSpec
from rewards.steps import (StepReward, StepScore, StepScorer, arithmetic_step_scores, available_step_rewards,
                           step_ends)


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_every_step_of_a_correct_working_is_right(difficulty):
    for row in generate_arithmetic(40, seed=3, difficulty=difficulty):
        trace = arithmetic_trace(row["question"])
        steps = arithmetic_step_scores(f"<think> {trace} </think> <answer> {row['answer']} </answer>")
        assert steps and all(s.score == 1.0 for s in steps), trace
        assert sum(trace.count(w) for w in ("=", "So ")) == len(steps)  # every claim is a step


def test_a_forgotten_carry_is_caught_where_it_happens_and_in_the_conclusion():
    text = "<think> 37+48: 7+8=15, write 5. 3+4=7. So 75. </think> <answer> 75 </answer>"
    steps = arithmetic_step_scores(text)
    assert [text[:s.end].split(".")[-2].strip() for s in steps] == ["<think> 37+48: 7+8=15, write 5", "3+4=7",
                                                                            "So 75"]
    assert [s.score for s in steps] == [0.0, 1.0, 0.0]


def test_slipped_traces_always_have_a_wrong_step():
    slipped = [slipped_arithmetic_trace(r["question"]) for r in generate_arithmetic(200, seed=4, difficulty=3)]
    slipped = [t for t in slipped if t is not None]
    assert len(slipped) > 20
    for trace, _ in slipped:
        assert min(s.score for s in arithmetic_step_scores(trace)) == 0.0, trace


def test_wrong_sums_digits_and_garbage():
    scores = lambda t: [s.score for s in arithmetic_step_scores(t)]  # noqa: E731
    assert scores("12+34: 2+4=7.") == [0.0]  # wrong sum
    assert scores("17+28: 7+8=15, write 4 carry 1.") == [0.0]  # wrong written digit
    assert scores("17+28: 7+8=15, write 5 carry 2.") == [0.0]  # wrong carry
    assert scores("no working at all. So 5.") == []  # a conclusion without an operation is no step
    assert scores("9" * 500 + "=1.") == [0.0]  # over-long expressions are not evaluated


def test_step_ends_split_lines_and_sentences():
    text = "First step. Second step!\n\nThird"
    ends = step_ends(text)
    assert [text[:e] for e in ends] == ["First step.", "First step. Second step!", text]
    assert step_ends("   ") == []


def test_step_rewards_are_a_kind_in_the_one_registry():
    assert available_step_rewards() == ["arithmetic_steps", "process_reward_model"]
    assert isinstance(get_reward("arithmetic_steps"), StepReward)
    # Called as an ordinary reward: the mean of its steps.
    (output,) = get_reward("arithmetic_steps").score_with_details(["37+48: 7+8=15, write 5. 3+4=7. So 75."])
    assert output.score == pytest.approx(1 / 3)
    # Options are read from score_steps, so a misspelt one is caught in the recipe.
    with pytest.raises(ValueError, match="has no option 'step_patern'"):
        RewardSpec(name="process_reward_model", kwargs={"model_path": "x", "step_patern": "."})
    with pytest.raises(Exception, match="does not score steps"):
        StepScorer(RewardSpec(name="format"))


def test_scorer_applies_the_weight_and_a_failing_sample_gets_no_steps():
    class Flaky(StepReward):
        def score_steps(self, completions, **columns):
            if any("boom" in c for c in completions):
                raise RuntimeError("boom")
            return [[StepScore(len(c), 1.0)] for c in completions]

    scorer = StepScorer(RewardSpec(name="arithmetic_steps", weight=0.5))
    scorer.fn = Flaky()
    assert scorer(["ok", "boom", "fine"], {}) == [[StepScore(2, 0.5)], [], [StepScore(4, 0.5)]]
    assert scorer.errors == 1


def test_process_reward_model_scores_the_prefix_of_each_step(tiny_qwen2_dir, tmp_path):
    RewardModel(tiny_qwen2_dir).save(tmp_path / "rm")  # a saved score head: every load scores alike
    completions = ["3+4=7. So 7.", "one step only"]
    prompts = ["What is 3+4?", "Say something."]
    reward = get_reward("process_reward_model")
    try:
        steps = reward.score_steps(completions, model_path=str(tmp_path / "rm"), prompt=prompts)
    finally:
        reward.close()
    assert [[s.end for s in row] for row in steps] == [[6, 12], [13]]
    direct = RewardModel(tmp_path / "rm")
    expected = direct.score([prompts[0], prompts[0], prompts[1]], ["3+4=7.", "3+4=7. So 7.", "one step only"])
    assert [s.score for row in steps for s in row] == pytest.approx(expected, abs=1e-5)
    assert expected[0] != pytest.approx(expected[1])  # the two prefixes really are scored apart
