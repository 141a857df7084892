"""Length shaping: DAPO's overlong penalty, cosine scaling, repetition penalty."""

import pytest

from common.errors import UserError
from rewards import get_reward
from rewards.length import completion_lengths, cosine_scaled, overlong_penalty, repetition_penalty


def test_overlong_penalty_follows_dapo():
    # max 100, buffer 20: free up to 80, linear to -1 at 100, -1 beyond.
    values = [overlong_penalty(n, 100, 20) for n in (0, 80, 90, 100, 101, 1000)]
    assert values == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0, -1.0])
    assert overlong_penalty(90, 100, 20, penalty_factor=0.5) == pytest.approx(-0.25)


@pytest.mark.parametrize(("max_len", "buffer"), [(100, 0), (100, 101), (100, -5)])
def test_overlong_penalty_rejects_a_bad_buffer(max_len, buffer):
    with pytest.raises(UserError, match="overlong_buffer_len"):
        overlong_penalty(50, max_len, buffer)


def test_overlong_reward_uses_token_lengths_when_given_else_characters_over_four():
    reward = get_reward("overlong_penalty")
    options = {"max_completion_length": 100, "overlong_buffer_len": 20}
    outputs = reward.score_with_details(["x", "y", "z"], completion_length=[10, 90, 200], **options)
    assert [(o.score, o.reason) for o in outputs] == [(0.0, "within"), (-0.5, "buffer"), (-1.0, "over")]
    assert reward(["a" * 360], **options) == [pytest.approx(-0.5)]  # 360 characters ~ 90 tokens
    assert completion_lengths(["abcd" * 3], None) == [3.0]


def test_cosine_scaling_rewards_short_right_answers_and_long_wrong_ones():
    right = [cosine_scaled(n, True, 100) for n in (0, 50, 100, 500)]
    wrong = [cosine_scaled(n, False, 100) for n in (0, 50, 100, 500)]
    assert right == pytest.approx([1.0, 0.75, 0.5, 0.5])
    assert wrong == pytest.approx([-0.5, -0.75, -1.0, -1.0])
    with pytest.raises(UserError, match="max_length"):
        cosine_scaled(1, True, 0)


def test_cosine_reward_checks_correctness_with_the_math_checker():
    reward = get_reward("cosine_length")
    outputs = reward.score_with_details(
        [r"\boxed{\frac12}", r"\boxed{3}", "no answer"], answer=["0.5", "0.5", "0.5"],
        completion_length=[0, 0, 100], max_length=100)
    assert [(o.score, o.reason) for o in outputs] == [(1.0, "correct"), (-0.5, "wrong"), (-1.0, "no_answer")]


def test_repetition_penalty_is_the_share_of_repeated_ngrams():
    assert repetition_penalty("one two three four five", 3) == 0.0
    assert repetition_penalty("a b", 3) == 0.0  # shorter than one n-gram
    # "a b a b a b": 4 trigrams, 2 distinct -> half repeated
    assert repetition_penalty("a b a b a b", 3, max_penalty=-1.0) == pytest.approx(-0.5)
    assert repetition_penalty("A b A B a b", 3, max_penalty=-2.0) == pytest.approx(-1.0)  # lowercased
    assert repetition_penalty("好好好好", 2) == pytest.approx(-2 / 3)  # CJK characters are words
    # bigrams ab ba ab ba ab: 5, 2 distinct
    assert get_reward("repetition_penalty")(["a b a b a b"], ngram_size=2) == [pytest.approx(-0.6)]


def test_repetition_penalty_rejects_bad_options():
    with pytest.raises(UserError):
        repetition_penalty("text", 0)
    with pytest.raises(UserError):
        repetition_penalty("text", 3, max_penalty=1.0)
