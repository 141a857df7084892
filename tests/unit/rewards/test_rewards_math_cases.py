"""Tricky math answers with the verdict our policy must give, end to end through math_accuracy (extraction,
normalization, math-verify in the worker pool)."""

import pytest

from rewards import get_reward

C, W = "correct", "wrong"

# (completion, reference answer, expected reason). The completion holds its final answer in a box unless
# the case is about another extractor (the reward uses extractor="auto").
CASES = [
    # fractions and decimals
    (r"\boxed{\frac12}", r"\frac{1}{2}", C),
    (r"\boxed{\dfrac{1}{2}}", r"\frac{1}{2}", C),
    (r"\boxed{\tfrac{3}{4}}", "0.75", C),
    (r"\boxed{0.5}", r"\frac{1}{2}", C),
    (r"\boxed{1/2}", "0.5", C),
    (r"\boxed{\frac{2}{4}}", r"\frac12", C),
    (r"\boxed{15\frac{39}{40}}", r"\frac{639}{40}", C),  # a mixed number
    # percent, units, degrees, currency
    (r"\boxed{50\%}", "50", C),
    (r"\boxed{50\%}", "0.5", C),
    (r"\boxed{50}", "0.5", W),
    (r"\boxed{10\text{ cm}}", "10", C),
    (r"\boxed{18 \text{ dollars}}", "18", C),
    (r"\boxed{\text{18 dollars}}", "18", C),
    (r"\boxed{3.5 hours}", "3.5", C),
    (r"\boxed{\$1,200}", "1200", C),
    (r"\boxed{30^\circ}", "30", C),
    (r"\boxed{30^{\circ}}", r"30^\circ", C),
    # intervals (open and closed) and tuples
    (r"\boxed{(1,2)}", "[1,2)", W),
    (r"\boxed{[1,2)}", "[1,2)", C),
    (r"\boxed{[0,1]}", "(0,1)", W),
    (r"\boxed{(-\infty, 3]}", r"(-\infty,3]", C),
    (r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", C),
    (r"\boxed{(1,3,2)}", "(1,2,3)", W),
    # matrices
    (r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", C),
    (r"\boxed{\begin{bmatrix}1&2\\3&4\end{bmatrix}}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", C),
    (r"\boxed{\begin{pmatrix}1&2\\4&3\end{pmatrix}}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", W),
    # equations vs values
    (r"\boxed{x = 3}", "3", C),
    (r"\boxed{x = 4}", "3", W),
    (r"\boxed{3}", "x=3", C),
    # thousands separators (and lists that only look like them)
    (r"\boxed{1,000}", "1000", C),
    (r"\boxed{10{,}000}", "10000", C),
    (r"\boxed{10,\!000}", "10000", C),
    (r"\boxed{1\,200}", "1200", C),
    (r"\boxed{5,5}", "5", W),
    (r"\boxed{2, 3}", "2", W),
    (r"\boxed{2 \text{ or } 3}", "2", W),
    # several boxes: hedging earns nothing, repeating the same answer is fine
    (r"The answer is \boxed{2}. Or maybe \boxed{3}.", "2", "multiple_answers"),
    (r"First \boxed{2}; checking again, \boxed{2}.", "2", C),
    (r"\boxed{\frac{1}{2}}, that is \boxed{0.5}", "0.5", C),
    (r"\boxed{3} then \boxed{4}", "5", W),
    # truncated boxes, empty boxes, no answer
    (r"so the answer is \boxed{12", "12", "truncated"),
    (r"\boxed{12} and finally \boxed{\frac{1}{2}", r"\frac12", "truncated"),
    (r"\boxed{}", "1", "no_answer"),
    (r"\boxed{\phantom{7}\quad}", "7", "no_answer"),
    # a box of layout only is no answer, so it is not a second, different one either
    (r"\boxed{\,} so \boxed{5}", "5", C),
    (r"\boxed{5} \boxed{\hspace{1cm}~}", "5", C),
    (r"<answer>\boxed{\;} 6</answer>", "6", "no_answer"),
    ("no box here, the answer is 4", "4", "no_answer"),
    # nested and escaped braces inside a box
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{1}{2}\sqrt{3}", C),
    (r"\boxed{\{1, 2\}}", r"\{2, 1\}", C),
    (r"\boxed{{{5}}}", "5", C),
    # text answers
    (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", C),
    (r"\boxed{Evelyn}", r"\text{Evelyn}", C),
    (r"\boxed{\text{Bob}}", r"\text{Evelyn}", W),
    (r"\boxed{\text{(C)}}", "C", C),
    (r"\boxed{D}", r"\text{(C)}", W),
    # equivalent expressions
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", C),
    (r"\boxed{(x+1)^2}", "x^2+2x+1", C),
    (r"\boxed{\frac{\pi}{2}}", r"\pi/2", C),
    (r"\boxed{q - p}", "p - q", W),
    (r"\boxed{-3}", "3", W),
    # near-equal decimals must fail; a 6-decimal rounding of the exact value passes
    (r"\boxed{0.333333}", r"\frac13", C),
    (r"\boxed{0.333}", r"\frac13", W),
    (r"\boxed{3.14}", r"\pi", W),
    (r"\boxed{2.50001}", "2.5", W),
    (r"\boxed{1.000001}", "1", W),
    # other extractors picked by "auto"
    (r"<think>half</think> <answer>\frac{1}{2}</answer>", "0.5", C),
    (r"<think>half</think> <answer>$0.5$</answer>", r"\frac12", C),
    (r"<think>x</think> <answer>\boxed{7}</answer>", "7", C),
    (r"<think>x</think> <answer>7", "7", "truncated"),
    ("She pays 600 + 634 = 1234.\n#### 1,234", "1234", C),
    ("#### 12\n#### 13", "12", "multiple_answers"),
    # a worked solution as the reference: its final answer is used
    (r"\boxed{18}", "She makes 9 * 2 = $18.\n#### 18", C),
    (r"\boxed{p-q}", r"so the sum is \boxed{p - q}.", C),
    # garbage
    (r"\boxed{\frac{}{}}", "1", "unparseable"),
    (r"\boxed{1}", r"\frac{", "unparseable_gold"),
]


@pytest.mark.parametrize(("completion", "gold", "expected"), CASES)
def test_math_verdict(completion, gold, expected):
    [output] = get_reward("math_accuracy").score_with_details([completion], answer=[gold], timeout_s=10)
    assert output.reason == expected, output.details
    assert output.score == (1.0 if expected == C else 0.0)


def test_enough_tricky_cases():
    assert len(CASES) >= 40


def test_batch_of_cases_in_one_call_matches_one_by_one():
    completions, golds, expected = zip(*CASES)
    outputs = get_reward("math_accuracy").score_with_details(list(completions), answer=list(golds), timeout_s=10)
    assert [o.reason for o in outputs] == list(expected)


def test_extractor_option_restricts_where_answers_are_found():
    reward = get_reward("math_accuracy")
    completion = r"<answer>5</answer> but \boxed{6}"
    assert reward([completion], answer=["5"], extractor="answer_tag") == [1.0]
    assert reward([completion], answer=["5"], extractor="boxed") == [0.0]
    assert reward(["#### 5"], answer=["5"], extractor="boxed") == [0.0]


def test_exact_match_compares_trimmed_strings_of_the_extracted_answer():
    reward = get_reward("exact_match")
    outputs = reward.score_with_details(
        ["<answer> 42 </answer>", "<answer>42.0</answer>", "<answer>4", "<answer>42</answer><answer>41</answer>",
         "nothing"],
        answer=[42, "42", "42", "42", "42"], extractor="answer_tag")
    assert [(o.score, o.reason) for o in outputs] == [
        (1.0, "correct"), (0.0, "wrong"), (0.0, "truncated"), (0.0, "multiple_answers"), (0.0, "no_answer")]
