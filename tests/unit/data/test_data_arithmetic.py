"""Arithmetic task: every gold answer recomputed by an evaluator written here, and every trace checked
sentence by sentence (each equation true, carries and borrows consistent, steps in the expected order)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo.data.tasks import ARITHMETIC_LEVELS, TASKS, generate_arithmetic, solution_trace

STEP = re.compile(r"(\d+)([+\-*])(\d+): (.*?) So (\d+)\.")
EQUATION = re.compile(r"^([\d+\-*]+)=(\d+)(?:, write (\d) carry (\d)|, write (\d)|, borrow 1)?$")


def tokens_of(question: str) -> list[str]:
    match = re.fullmatch(r"What is (.+)\?", question)
    assert match, question
    return match[1].split(" ")


def terms_of(tokens: list[str]) -> list[tuple[str, list[int]]]:
    """[(sign, factors)]: products bind tighter than + and -."""
    terms = [("+", [int(tokens[0])])]
    for op, number in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            terms[-1][1].append(int(number))
        else:
            terms.append((op, [int(number)]))
    return terms


def value_of(factors: list[int]) -> int:
    value = 1
    for factor in factors:
        value *= factor
    return value


def evaluate(question: str) -> int:
    return sum(value_of(f) if sign == "+" else -value_of(f) for sign, f in terms_of(tokens_of(question)))


def evaluate_flat(expression: str) -> int:
    """An equation's left side, e.g. "3+4+1", "10-1-9" or "6*5+3", evaluated with * before + and -."""
    return evaluate(f"What is {' '.join(re.findall(r'[+*-]|[0-9]+', expression))}?")


def expected_step_heads(question: str) -> list[str]:
    terms = terms_of(tokens_of(question))
    heads = [f"{f[0]}*{f[1]}" for _, f in terms if len(f) == 2]
    running = value_of(terms[0][1])
    for sign, factors in terms[1:]:
        heads.append(f"{running}{sign}{value_of(factors)}")
        running += value_of(factors) if sign == "+" else -value_of(factors)
    return heads


def check_trace(row: dict) -> None:
    trace = solution_trace(row)
    steps = STEP.findall(trace)
    assert " ".join(f"{a}{op}{b}: {body} So {r}." for a, op, b, body, r in steps) == trace, trace
    assert [f"{a}{op}{b}" for a, op, b, _, _ in steps] == expected_step_heads(row["question"])
    for a, op, b, body, result in steps:
        assert evaluate_flat(f"{a}{op}{b}") == int(result)
        written = []
        sentences = body.removesuffix(".").split(". ")
        for index, sentence in enumerate(sentences):
            match = EQUATION.match(sentence)
            assert match, sentence
            lhs, rhs = match[1], int(match[2])
            assert evaluate_flat(lhs) == rhs, sentence
            if match[3] is not None:  # "write d carry k"
                assert (int(match[3]), int(match[4])) == (rhs % 10, rhs // 10), sentence
                written.append(str(rhs % 10))
            elif match[5] is not None:  # "write d", no carry
                assert rhs < 10 and int(match[5]) == rhs, sentence
                written.append(str(rhs))
            elif sentence.endswith("borrow 1"):
                assert 10 <= int(lhs.split("-")[0]) <= 19, sentence  # the top digit plus the borrowed 10
                written.append(str(rhs))
            else:  # the leftmost column of + and *, or a subtraction column without borrow
                assert index == len(sentences) - 1 or op == "-", sentence
                written.append(str(rhs))
        assert int("".join(reversed(written))) == int(result), trace
    assert steps[-1][4] == row["answer"]


@pytest.mark.parametrize("difficulty", sorted(ARITHMETIC_LEVELS))
def test_every_gold_answer_is_recomputed(difficulty):
    for row in generate_arithmetic(300, seed=difficulty, difficulty=difficulty):
        assert row["answer"] == str(evaluate(row["question"]))
        assert row["task"] == "arithmetic" and row["difficulty"] == difficulty


@pytest.mark.parametrize("difficulty", sorted(ARITHMETIC_LEVELS))
def test_levels_set_digits_operands_and_operators(difficulty):
    level = ARITHMETIC_LEVELS[difficulty]
    seen_operators = set()
    for row in generate_arithmetic(300, seed=7, difficulty=difficulty):
        tokens = tokens_of(row["question"])
        numbers, operators = tokens[::2], tokens[1::2]
        assert len(numbers) == level.operands
        seen_operators.update(operators)
        for index, number in enumerate(numbers):
            if index and operators[index - 1] == "*":
                assert 2 <= int(number) <= 9  # one-digit multiplier
            else:
                assert len(number) == level.digits and not number.startswith("0")
        assert "* *" not in " ".join(tokens[1:-1:2])  # never a product of products
        running = 0
        for sign, factors in terms_of(tokens):  # no running result is negative
            running += value_of(factors) if sign == "+" else -value_of(factors)
            assert running >= 0, row["question"]
    assert seen_operators == set(level.operators)


def test_levels_grow_harder():
    levels = [ARITHMETIC_LEVELS[d] for d in sorted(ARITHMETIC_LEVELS)]
    assert sorted(ARITHMETIC_LEVELS) == [0, 1, 2, 3, 4, 5]
    for easier, harder in zip(levels, levels[1:]):
        assert easier.digits <= harder.digits and easier.operands <= harder.operands
        assert set(easier.operators) <= set(harder.operators)
        assert easier != harder


def test_same_seed_same_rows_and_a_longer_list_extends_a_shorter_one():
    assert generate_arithmetic(50, seed=3, difficulty=4) == generate_arithmetic(50, seed=3, difficulty=4)
    assert generate_arithmetic(20, seed=3, difficulty=4) == generate_arithmetic(50, seed=3, difficulty=4)[:20]
    questions = [r["question"] for r in generate_arithmetic(50, seed=3, difficulty=4)]
    assert questions != [r["question"] for r in generate_arithmetic(50, seed=4, difficulty=4)]
    assert len({r["id"] for r in generate_arithmetic(50, seed=3, difficulty=4)}) == 50


def test_levels_with_one_seed_draw_different_numbers():
    level1 = [r["question"] for r in generate_arithmetic(30, seed=0, difficulty=1)]
    level2 = [r["question"] for r in generate_arithmetic(30, seed=0, difficulty=2)]
    assert sum(re.findall(r"\d+", a) == re.findall(r"\d+", b) for a, b in zip(level1, level2)) < 3


def test_trace_of_the_documented_example():
    row = {"task": "arithmetic", "question": "What is 37 + 48?", "answer": "85"}
    assert solution_trace(row) == "37+48: 7+8=15, write 5 carry 1. 3+4+1=8. So 85."


def test_trace_borrows_across_zeros_and_multiplies_first():
    row = {"task": "arithmetic", "question": "What is 1005 - 998 + 7 * 9?", "answer": "70"}
    assert solution_trace(row) == (
        "7*9: 7*9=63. So 63. "
        "1005-998: 15-8=7, borrow 1. 10-1-9=0, borrow 1. 10-1-9=0, borrow 1. 1-1-0=0. So 7. "
        "7+63: 7+3=10, write 0 carry 1. 0+6+1=7. So 70.")
    check_trace(row)


@pytest.mark.parametrize("difficulty", sorted(ARITHMETIC_LEVELS))
def test_every_trace_is_correct_and_compact(difficulty):
    for row in generate_arithmetic(200, seed=11, difficulty=difficulty):
        check_trace(row)
        assert len(solution_trace(row)) < 80 * ARITHMETIC_LEVELS[difficulty].operands * 2


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), difficulty=st.sampled_from(sorted(ARITHMETIC_LEVELS)))
def test_answers_and_traces_hold_for_any_seed(seed, difficulty):
    (row,) = generate_arithmetic(1, seed=seed, difficulty=difficulty)
    assert row["answer"] == str(evaluate(row["question"]))
    check_trace(row)


def test_bad_arguments_and_foreign_rows_are_refused():
    with pytest.raises(ValueError, match="difficulty"):
        generate_arithmetic(1, seed=0, difficulty=6)
    with pytest.raises(ValueError, match="n must be"):
        generate_arithmetic(-1, seed=0)
    with pytest.raises(ValueError, match="synthetic task"):
        solution_trace({"question": "q", "answer": "1"})
    with pytest.raises(ValueError, match="below zero"):
        solution_trace({"task": "arithmetic", "question": "What is 12 - 50?", "answer": "-38"})
    with pytest.raises(ValueError, match="not an arithmetic question"):
        solution_trace({"task": "arithmetic", "question": "What is 2 ** 3?", "answer": "8"})
    with pytest.raises(ValueError, match="not an arithmetic question"):
        solution_trace({"task": "arithmetic", "question": "What is 2 + ?", "answer": "2"})
    assert set(TASKS) == {"arithmetic", "countdown"}


def test_a_slipped_trace_forgets_exactly_the_first_carry():
    from grpo.data.arithmetic import slipped_arithmetic_trace

    assert slipped_arithmetic_trace("What is 37 + 48?") == ("37+48: 7+8=15, write 5. 3+4=7. So 75.", 75)
    assert slipped_arithmetic_trace("What is 83 + 72?") is None  # the ones do not carry: nothing to forget
    trace, value = slipped_arithmetic_trace("What is 375 + 487 + 219?")
    # Only the first carry goes; the later ones, and the second addition, follow from the wrong 852.
    assert trace.startswith("375+487: 5+7=12, write 2. 7+8=15, write 5 carry 1. 3+4+1=8. So 852. 852+219:")
    assert value == 852 + 219 == int(trace.rsplit("So ", 1)[1].rstrip("."))


@pytest.mark.parametrize("difficulty", [1, 2, 3, 5])
def test_slipped_traces_are_wrong_by_a_carry_and_end_where_they_say(difficulty):
    from grpo.data.arithmetic import slipped_arithmetic_trace

    slipped = 0
    for row in generate_arithmetic(200, seed=8, difficulty=difficulty):
        result = slipped_arithmetic_trace(row["question"])
        if result is None:
            continue
        slipped += 1
        trace, value = result
        assert value != int(row["answer"]) and int(trace.rsplit("So ", 1)[1].rstrip(".")) == value
        if difficulty == 1:  # one addition: the right working less its first carry (later ones follow the
            assert trace.count("carry") == solution_trace(row).count("carry") - 1  # wrong value elsewhere)
    assert slipped > 40
