"""The R1 format rewards and language consistency."""

import pytest

from common.errors import UserError
from rewards import get_reward
from rewards.format import check_r1_format, count_tags
from rewards.language import language_share, reasoning_text

GOOD = "<think>\nadd them: 2 + 2 = 4\n</think>\n<answer>4</answer>"


@pytest.mark.parametrize(("completion", "reason"), [
    (GOOD, "ok"),
    ("  " + GOOD + "\n", "ok"),
    ("<think>a</think><answer>4</answer> and more", "text after </answer>"),
    ("hi <think>a</think><answer>4</answer>", "text before <think>"),
    ("<think>a</think> so <answer>4</answer>", "text between </think> and <answer>"),
    ("<think>a</think><answer>4</answer><answer>5</answer>", "repeated or nested <answer>"),
    ("<think>a <think>b</think> c</think><answer>4</answer>", "repeated or nested <think>"),
    ("<think>a<answer>4</answer></think>", "tags out of order"),
    ("<answer>4</answer><think>a</think>", "tags out of order"),
    ("<think>a</think>", "missing <answer>"),
    ("<think>a</think><answer>4", "missing </answer>"),
    ("<think> </think><answer>4</answer>", "empty think block"),
    ("<think>a</think><answer>\n</answer>", "empty answer block"),
    ("just 4", "missing <think>"),
])
def test_strict_format(completion, reason):
    output = check_r1_format(completion)
    assert output.reason == reason
    assert output.score == (1.0 if reason == "ok" else 0.0)


def test_a_prompt_that_opened_think_is_honoured():
    continuation = "add them\n</think>\n<answer>4</answer>"
    reward = get_reward("format")
    assert reward([continuation]) == [0.0]
    assert reward([continuation], prompt=["User: 2+2?\nAssistant: <think>\n"]) == [1.0]
    assert reward([continuation], think_opened_in_prompt=True) == [1.0]
    assert reward([continuation], prompt=["... <think>"], think_opened_in_prompt=False) == [0.0]
    # The model opening it again after the prompt did is a second think block.
    assert reward(["<think>" + continuation], think_opened_in_prompt=True) == [0.0]
    # A chat-message prompt cannot say; the option can.
    assert reward([continuation], prompt=[[{"role": "user", "content": "2+2?"}]]) == [0.0]


def test_tag_count_gives_partial_credit():
    assert count_tags(GOOD).score == 1.0
    assert count_tags("<think>a</think> 4").score == 0.5
    assert count_tags("<think>a<think>b</think><answer>4</answer>").score == 0.75
    assert count_tags("4").score == 0.0
    assert count_tags("a</think><answer>4</answer>", opened=True).score == 1.0
    assert get_reward("tag_count")(["<think>a</think> 4"]) == [0.5]


def test_reasoning_text_is_the_think_block():
    assert reasoning_text("<think>abc</think><answer>d</answer>") == "abc"
    assert reasoning_text("abc</think><answer>d</answer>") == "abc"  # the prompt opened it
    assert reasoning_text("<think>abc and never closed") == "abc and never closed"
    assert reasoning_text("no tags at all") == "no tags at all"


def test_language_share_counts_words_by_script():
    assert language_share("We add the two numbers and get four", "en").score == 1.0
    assert language_share("我们把两个数相加", "zh").score == 1.0
    mixed = language_share("首先 compute 两个数", "zh")  # 5 Han characters, 1 English word
    assert mixed.score == pytest.approx(5 / 6) and mixed.reason == "mixed"
    assert language_share("首先 compute 两个数", "en").score == pytest.approx(1 / 6)


def test_math_and_code_are_not_language():
    text = r"我们得到 $x^2 + y^2 = z^2$ 和 \(\frac{a}{b}\) 以及 ```python\nprint('hello world')\n``` 所以 x = 3"
    assert language_share(text, "zh").score == 1.0


def test_unclosed_math_openers_are_handled_in_linear_time():
    # A lazy regex would rescan the text for each of the 100k openers; this returns in milliseconds.
    assert language_share("words here " + "\\(" * 100_000 + "```" * 100_000, "en").score == 1.0


def test_text_without_words_earns_nothing():
    output = language_share("$1 + 1 = 2$ 42", "en")
    assert (output.score, output.reason) == (0.0, "no_words")


def test_language_reward_reads_the_think_block():
    reward = get_reward("language_consistency")
    completions = ["<think>this is English</think><answer>这是答案</answer>",
                   "<think>这是中文</think><answer>4</answer>"]
    assert reward(completions, target="en") == [1.0, 0.0]
    assert reward(completions, target="zh") == [0.0, 1.0]
    assert reward(completions, target="zh", language=["python", "python"]) == [0.0, 1.0]  # columns ignored


def test_unknown_target_language_lists_the_known_ones():
    with pytest.raises(UserError, match="known: .*en.*zh"):
        language_share("text", "klingon")
