"""Countdown task. Rule under test: each given number is used exactly once, + - * / with exact (rational)
division. Gold solutions are checked by an evaluator and a brute-force solver written here, independent of
grpo.data.countdown; the checker is hammered with garbage since the RL loop scores raw model output with it."""

import re
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.countdown import MAX_EXPRESSION_CHARS
from grpo.data.tasks import countdown_is_correct, generate_countdown, solution_trace


def solvable(numbers: list[int], target: int) -> bool:
    """Whether some expression using each number exactly once equals target: combine any two values with
    any operator (both orders) until one is left, depth first, stopping at the first hit."""

    def search(values: list[Fraction]) -> bool:
        if len(values) == 1:
            return values[0] == target
        for i in range(len(values)):
            for j in range(i + 1, len(values)):
                a, b = values[i], values[j]
                rest = values[:i] + values[i + 1:j] + values[j + 1:]
                results = {a + b, a - b, b - a, a * b} | ({a / b} if b else set()) | ({b / a} if a else set())
                if any(search(rest + [c]) for c in results):
                    return True
        return False

    return search([Fraction(number) for number in numbers])


def value_by_sympy(expression: str) -> sympy.Rational:
    return sympy.sympify(expression, rational=True)


@pytest.mark.parametrize("num_numbers, n", [(2, 100), (3, 100), (4, 100), (5, 30)])
def test_every_stored_solution_reaches_the_target_using_each_number_once(num_numbers, n):
    for row in generate_countdown(n, seed=num_numbers, num_numbers=num_numbers):
        assert row["task"] == "countdown" and len(row["numbers"]) == num_numbers
        assert all(1 <= number <= 100 for number in row["numbers"]) and 1 <= row["target"] <= 100
        assert sorted(int(t) for t in re.findall(r"\d+", row["answer"])) == sorted(row["numbers"])
        assert value_by_sympy(row["answer"]) == row["target"], row
        assert solvable(row["numbers"], row["target"]), row
        assert countdown_is_correct(row["answer"], row["numbers"], row["target"])
        assert str(row["numbers"]) in row["question"] and f"equals {row['target']}" in row["question"]
        assert "exactly once" in row["question"]


def test_max_target_bounds_numbers_and_target():
    for row in generate_countdown(100, seed=1, num_numbers=3, max_target=20):
        assert all(1 <= number <= 20 for number in row["numbers"]) and 1 <= row["target"] <= 20
        assert value_by_sympy(row["answer"]) == row["target"]


def test_same_seed_same_rows_and_a_longer_list_extends_a_shorter_one():
    assert generate_countdown(40, seed=5) == generate_countdown(40, seed=5)
    assert generate_countdown(10, seed=5) == generate_countdown(40, seed=5)[:10]
    assert [r["numbers"] for r in generate_countdown(40, seed=5)] != [r["numbers"] for r in generate_countdown(40, seed=6)]
    assert len({r["id"] for r in generate_countdown(40, seed=5)}) == 40


def test_checker_accepts_any_correct_expression():
    assert countdown_is_correct("(44 + 19) - (35 - 7)", [44, 19, 35, 7], 35)
    assert countdown_is_correct("  44+19-35+7 \n", [7, 35, 19, 44], 35)  # any order, spaces around
    assert countdown_is_correct("8 / (3 - 8 / 3)", [8, 3, 8, 3], 24)  # rational intermediate 8/3
    assert countdown_is_correct("(((6)))*4", [4, 6], 24)


@pytest.mark.parametrize("expression", [
    "35",                           # the target itself: three numbers left out
    "35 * 7 / 7",                   # right value, 7 used twice, 44 and 19 left out
    "44 + 19 - 35 + 7 + 7 - 7",     # right value, 7 used three times
    "44 - 9",                       # right value from a number not given
    "44 + 19 - 35 + 7 + 0",         # right value, plus a number not given
    "44 + 19 - 35",                 # a number left out, wrong value
    "44 + 19 + 35 - 7",             # right numbers, wrong value
    "-7 + 44 + 19 - 35 + 14",
    "(44 + 19) - (35 - 7) = 35",    # an equation, not an expression
    "44 + 19 - 35 + 7.0",
    "44 ** 1 + 19 - 35 + 7",
    "(44 + 19) // 1 - 35 + 7",
    "__import__('os').system('true')",
    "lambda: 35",
    "[44, 19, 35, 7]",
    "44 + 19 - 35 + ٧",             # an Arabic-Indic seven
    "44 + 19 - 35 + 1_0",
    "0x2C + 19 - 35 + 7",
    "44 + 19 - (35 - 7",
    "",
    "   ",
    "(" * 300 + "35" + ")" * 300,
    "1+" * (MAX_EXPRESSION_CHARS // 2) + "1",
    "44 + 19 - 35 + 7\x00",
])
def test_checker_rejects(expression):
    assert countdown_is_correct(expression, [44, 19, 35, 7], 35) is False


@pytest.mark.parametrize("expression", [None, 35, 35.0, b"44+19-35+7", ["44+19-35+7"], {"a": 1}])
def test_checker_rejects_non_strings(expression):
    assert countdown_is_correct(expression, [44, 19, 35, 7], 35) is False


def test_checker_counts_repeated_numbers():
    assert countdown_is_correct("8 / (3 - 8 / 3)", [3, 3, 8, 8], 24)
    assert not countdown_is_correct("8 / (3 - 8 / 3)", [3, 8, 8], 24)
    assert not countdown_is_correct("8 / (3 - 8 / 3)", [3, 3, 3, 8, 8], 24)


def test_checker_division_by_zero_is_false_not_an_error():
    assert countdown_is_correct("7 / (3 - 3)", [7, 3, 3], 7) is False


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_checker_never_raises_on_any_text(text):
    assert countdown_is_correct(text, [1, 2, 3], 6) in (True, False)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789+-*/() ", max_size=80))
def test_checker_agrees_with_sympy_on_well_formed_arithmetic(text):
    numbers = [int(t) for t in re.findall(r"\d+", text)]
    try:
        value = value_by_sympy(text)
    except (sympy.SympifyError, SyntaxError, TypeError, ZeroDivisionError, ValueError):
        value = None
    result = countdown_is_correct(text, numbers, 6)
    if result:
        assert value == 6 and "**" not in text and "//" not in text


@pytest.mark.parametrize("num_numbers", [2, 3, 4, 5])
def test_countdown_trace_steps_are_true_and_end_at_the_target(num_numbers):
    for row in generate_countdown(40, seed=9, num_numbers=num_numbers):
        trace = solution_trace(row)
        steps = re.findall(r"(\d+)([+\-*/])(\d+)=(\d+)\.", trace)
        assert " ".join(f"{a}{op}{b}={c}." for a, op, b, c in steps) == trace
        assert len(steps) == num_numbers - 1
        for a, op, b, c in steps:
            assert value_by_sympy(f"{a}{op}{b}") == int(c)
        assert int(steps[-1][3]) == row["target"]


def test_trace_of_a_row_with_a_wrong_answer_is_refused():
    row = generate_countdown(1, seed=0)[0] | {"target": 0}
    with pytest.raises(ValueError, match="does not reach"):
        solution_trace(row)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_numbers"):
        generate_countdown(1, seed=0, num_numbers=1)
    with pytest.raises(ValueError, match="max_target"):
        generate_countdown(1, seed=0, max_target=0)
