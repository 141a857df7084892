"""The countdown reward accepts any expression that reaches the target with the given numbers, not only the
dataset's reference solution, and says why a wrong one is wrong."""

from grpo.data.tasks import generate_countdown
from rewards.compose import RewardComposer
from rewards.registry import get_reward
from rewards.spec import RewardSpec

ROW = {"numbers": [44, 19, 35, 7], "target": 35, "answer": "(44 + 19) - (35 - 7)"}


def score(completions: list[str], extractor: str = "answer_tag"):
    reward = get_reward("countdown")
    n = len(completions)
    return reward.score_with_details(completions, numbers=[ROW["numbers"]] * n, target=[ROW["target"]] * n,
                                     extractor=extractor)


def test_any_valid_expression_is_right_not_only_the_reference():
    outputs = score([
        "<think> reference </think> <answer> (44 + 19) - (35 - 7) </answer>",
        "<think> another way </think> <answer> 44 - 19 + 35 - 7 - 18 + 18 </answer>",  # extra numbers: wrong
        "<think> another way </think> <answer> 35 * (44 - 19 - 7) / 18 </answer>",  # 18 is not given
        "<think> another way </think> <answer> 7 + 35 - 44 + 19 - 0 </answer>",
        "<think> another way </think> <answer> (44 - 19 - 35 + 7) * 35 </answer>",  # 35 twice
        "<think> another way </think> <answer> 35 + 7 + 19 - 44 + 18 </answer>",
        "<think> a different order </think> <answer> 44 + 19 + 7 - 35 </answer>",  # 35, not the reference
    ])
    assert [o.reason for o in outputs] == ["correct", "wrong_numbers", "wrong_numbers", "wrong_numbers",
                                           "wrong_numbers", "wrong_numbers", "correct"]
    assert [o.score for o in outputs] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_wrong_value_garbage_and_division_by_zero_have_their_reasons():
    outputs = score([
        "<think> x </think> <answer> 44 + 19 + 35 + 7 </answer>",
        "<think> x </think> <answer> __import__('os').system('true') </answer>",
        "<think> x </think> <answer> 44 / (35 - 35) + 19 * 7 </answer>",
        "<think> x </think> no answer block",
        "<think> x </think> <answer> 44 + 19",
    ])
    assert [o.reason for o in outputs] == ["wrong", "unparseable", "wrong_numbers", "no_answer", "truncated"]
    assert all(o.score == 0.0 for o in outputs)


def test_hedging_between_a_right_and_a_wrong_expression_earns_nothing():
    (hedged,) = score(["<answer> 44 + 19 + 7 - 35 </answer> or <answer> 44 + 19 + 35 + 7 </answer>"])
    assert (hedged.score, hedged.reason) == (0.0, "multiple_answers")


def test_every_generated_puzzle_is_solved_by_its_reference_through_the_composer():
    rows = generate_countdown(20, seed=5)
    composer = RewardComposer([RewardSpec(name="countdown")])
    completions = [f"<think> t </think> <answer> {r['answer']} </answer>" for r in rows]
    scored = composer(completions, {"numbers": [r["numbers"] for r in rows], "target": [r["target"] for r in rows]})
    assert scored.totals == [1.0] * len(rows)
    # The reference with one more operand is no longer a solution: the 1 is not a given number.
    first = rows[0]
    assert get_reward("countdown")([f"<answer> ({first['answer']}) * 1 </answer>"], numbers=[first["numbers"]],
                                   target=[first["target"]]) == [0.0]  # the extra 1 is not a given number
