"""Final-answer extraction: balanced braces, every answer found, truncation noticed."""

import pytest

from common.errors import UserError
from rewards.extract import ExtractStatus, extract_answers, gold_answer, strip_math_delimiters
from rewards.math_equiv import count_list_items, normalize_answer

OK, NONE, CUT = ExtractStatus.OK, ExtractStatus.NO_ANSWER, ExtractStatus.TRUNCATED


@pytest.mark.parametrize(("text", "status", "answers"), [
    (r"so \boxed{\frac{1}{2}}.", OK, [r"\frac{1}{2}"]),
    (r"\boxed{a} then \fbox{b}", OK, ["a", "b"]),
    (r"\boxed {3}", OK, ["3"]),
    (r"\boxed{\boxed{3}}", OK, [r"\boxed{3}"]),  # a nested box belongs to the outer one
    (r"\boxed{\{1, 2\}}", OK, [r"\{1, 2\}"]),  # escaped braces do not count
    (r"\boxed{a \\ b}", OK, [r"a \\ b"]),  # a row break does not escape the closing brace
    (r"\boxed{12", CUT, []),
    (r"\boxed{1} and \boxed{\frac{2}{3}", CUT, ["1"]),
    ("no answer", NONE, []),
    (r"\boxed", NONE, []),
])
def test_boxed(text, status, answers):
    found = extract_answers(text, "boxed")
    assert (found.status, found.answers) == (status, answers)


@pytest.mark.parametrize("blank", [
    "", "  ", r"\phantom{3}", r"\hphantom{x}\vphantom{\frac{1}{2}}", r"\quad", r"\qquad", r"\,", r"\;",
    r"\:", r"\!", "\\ ", r"\hspace{1cm}", r"\hspace*{2em}", r"\vspace{1ex}", "~", r"{}", r"\text{ }",
    r"$ $", r"\, \quad ~ \phantom{ab}", "\\\\",
])
def test_a_box_of_layout_only_is_no_answer(blank):
    assert extract_answers(f"\\boxed{{{blank}}}", "boxed").status is NONE
    assert extract_answers(f"\\boxed{{{blank}}} then \\boxed{{2}}", "boxed").answers == ["2"]
    assert extract_answers(f"\\boxed{{3}} \\fbox{{{blank}}}", "boxed").answers == ["3"]
    assert extract_answers(f"<answer>\\boxed{{{blank}}}</answer>", "answer_tag").status is NONE
    assert extract_answers(f"<answer>{blank}</answer>", "answer_tag").status is NONE


@pytest.mark.parametrize(("text", "answer"), [
    (r"\boxed{\quad 3}", r"\quad 3"), (r"\boxed{\phantom{0}7}", r"\phantom{0}7"), (r"\boxed{\text{no}}", r"\text{no}"),
    (r"\boxed{\pi}", r"\pi"), (r"\boxed{\emptyset}", r"\emptyset"), (r"\boxed{\{\}}", r"\{\}"),
])
def test_a_box_with_content_beside_its_layout_is_an_answer(text, answer):
    assert extract_answers(text, "boxed").answers == [answer]


@pytest.mark.parametrize(("text", "status", "answers"), [
    ("<think>x</think><answer> 42 </answer>", OK, ["42"]),
    ("<answer>$x^2$</answer>", OK, ["x^2"]),
    (r"<answer>It is \boxed{7}.</answer>", OK, ["7"]),
    ("<answer>1</answer><answer>2</answer>", OK, ["1", "2"]),
    ("<answer>1</answer><answer>2", CUT, ["1"]),
    ("<answer></answer>", NONE, []),
    ("no tags", NONE, []),
])
def test_answer_tag(text, status, answers):
    found = extract_answers(text, "answer_tag")
    assert (found.status, found.answers) == (status, answers)


@pytest.mark.parametrize(("text", "status", "answers"), [
    ("work\n#### 1,234", OK, ["1,234"]),
    ("#### 12\n#### 13\n", OK, ["12", "13"]),
    ("work\n####", CUT, []),
    ("work", NONE, []),
])
def test_gsm8k(text, status, answers):
    found = extract_answers(text, "gsm8k")
    assert (found.status, found.answers) == (status, answers)


def test_auto_prefers_the_most_explicit_marker():
    assert extract_answers(r"\boxed{1} <answer>2</answer>", "auto").answers == ["2"]
    assert extract_answers("#### 3 \\boxed{4}", "auto").answers == ["4"]
    assert extract_answers("#### 3", "auto").answers == ["3"]


def test_megabytes_of_openers_are_scanned_in_linear_time():
    # Quadratic scanning would make these take hours; linear takes milliseconds.
    found = extract_answers("\\boxed{" + "{" * 500_000 + "1" + "}" * 500_000 + "}", "boxed")
    assert found.status is OK and len(found.answers[0]) == 1_000_001
    assert extract_answers("\\boxed{" + "\\phantom{" * 200_000 + "}" * 200_000 + "}", "boxed").status is NONE
    assert extract_answers("<answer>" * 200_000, "answer_tag").status is CUT
    assert extract_answers("\\boxed{" * 200_000, "boxed").status is CUT


def test_unknown_extractor_names_the_valid_ones():
    with pytest.raises(UserError, match="boxed, answer_tag, gsm8k, last_number, auto"):
        extract_answers("x", "first_number")


def test_gold_answer_reduces_worked_solutions_to_their_final_answer():
    assert gold_answer(18) == "18"
    assert gold_answer("$\\frac12$") == "\\frac12"
    assert gold_answer("9 * 2 = 18\n#### 18") == "18"
    assert gold_answer(r"so \boxed{2} and then \boxed{p-q}") == "p-q"


def test_strip_math_delimiters():
    assert [strip_math_delimiters(s) for s in ["$1$", "$$1$$", r"\(1\)", r"\[1\]", "1", "$"]] == [
        "1", "1", "1", "1", "1", "$"]


@pytest.mark.parametrize(("raw", "normal"), [
    ("{{5}}", "5"),
    ("{a}+{b}", "{a}+{b}"),
    (r"1\,200", "1200"),
    (r"10,\!000", "10000"),
    (r"15\frac{39}{40}", r"\frac{639}{40}"),
    (r"-2\dfrac{1}{2}", r"-\frac{5}{2}"),
    (r"2\frac{3}{2}", r"2\frac{3}{2}"),  # not a proper fraction: a product, left alone
    ("18 dollars", "18"),
    (r"\$18 \text{ dollars}", r"\$18"),
    (r"\text{18 dollars}", "18"),
    ("2x", "2x"),
    ("2 pi", "2 pi"),  # 2-letter words stay: they may be math
    (r"\begin{pmatrix}1 \\ 2\end{pmatrix}", r"\begin{pmatrix}1 \\ 2\end{pmatrix}"),
])
def test_normalize_answer(raw, normal):
    assert normalize_answer(raw) == normal


@pytest.mark.parametrize(("answer", "items"), [
    ("5", 1), ("1,000", 1), ("1,000,000.5", 1), ("5,5", 2), ("2, 3, 4", 3), ("(1,2)", 1), (r"\{1,2\}", 1),
    (r"f(x, y)", 1), ("x=1, y=2", 2), ("1{,}000", 1),
])
def test_count_list_items(answer, items):
    assert count_list_items(answer) == items


def test_last_number_reads_a_prose_answer():
    assert extract_answers("5 + 3 = 8, so the answer is 8.", "last_number").answers == ["8"]
    assert extract_answers("It is -2.5 or maybe 7", "last_number").answers == ["7"]
    assert extract_answers("no digits here", "last_number").status is ExtractStatus.NO_ANSWER
    # Never picked by auto, which keeps to explicit answers.
    assert extract_answers("the sum is 8", "auto").status is ExtractStatus.NO_ANSWER
