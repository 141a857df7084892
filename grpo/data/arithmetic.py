"""Multi-digit arithmetic: a generator with five difficulty levels and a column-by-column solution trace.

An expression is a signed sum of terms; a term is a number or a number times a one-digit multiplier
("37 * 4 + 25 - 60"). Two choices keep the traces short and regular enough for a tiny model to learn:
  - every running result stays >= 0 (a "-" that would go negative is turned into "+"), so subtraction is
    always the schoolbook "larger minus smaller" with borrows and no sign rules;
  - a multiplier has one digit, so a product is one row of carries, never a sum of partial products.
"""

from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass

Term = tuple[str, list[int]]  # (sign "+" or "-", factors: [number] or [number, one-digit multiplier])


@dataclass(frozen=True)
class ArithmeticLevel:
    """What one difficulty level draws: digits per number, numbers per question, operators to pick from."""

    digits: int
    operands: int
    operators: str


ARITHMETIC_LEVELS: dict[int, ArithmeticLevel] = {
    # One-digit sums (81 distinct questions, 8 of them held out): within reach of a 135M pretrained instruct
    # model (SmolLM2 is right about 20% of the time at temperature 1), for real-model RL on the CPU.
    0: ArithmeticLevel(digits=1, operands=2, operators="+"),
    1: ArithmeticLevel(digits=2, operands=2, operators="+"),
    2: ArithmeticLevel(digits=2, operands=2, operators="+-"),
    3: ArithmeticLevel(digits=3, operands=3, operators="+-"),
    4: ArithmeticLevel(digits=3, operands=3, operators="+-*"),
    5: ArithmeticLevel(digits=4, operands=4, operators="+-*"),
}

_QUESTION = re.compile(r"What is (?P<expression>[0-9+\-* ]+)\?")


def generate_arithmetic(n: int, seed: int, difficulty: int = 1) -> list[dict]:
    """`n` questions like "What is 37 + 48?" with the integer answer as a string, deterministic in `seed`.

    Row i depends only on (seed, difficulty) and the rows before it, so a longer list extends a shorter one.
    """
    if difficulty not in ARITHMETIC_LEVELS:
        raise ValueError(f"difficulty must be one of {sorted(ARITHMETIC_LEVELS)}, got {difficulty!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    level = ARITHMETIC_LEVELS[difficulty]
    # The level is part of the seed so that two levels with one seed do not draw the same numbers.
    rng = random.Random(f"arithmetic:{difficulty}:{seed}")
    rows = []
    for i in range(n):
        terms = _draw_terms(rng, level)
        rows.append({
            "id": f"arithmetic-d{difficulty}-s{seed}-{i}",
            "question": f"What is {_format_terms(terms)}?",
            "answer": str(sum(_signed_value(term) for term in terms)),
            "task": "arithmetic",
            "difficulty": difficulty,
        })
    return rows


def arithmetic_trace(question: str) -> str:
    """Column-by-column working for an arithmetic question: products first, then the sum from left to right.

    Each operation reads "a+b: <columns> So c." with one sentence per column, rightmost first, e.g.
    "37+48: 7+8=15, write 5 carry 1. 3+4+1=8. So 85."
    """
    return _working(question, slip=False)[0]


def slipped_arithmetic_trace(question: str) -> tuple[str, int] | None:
    """The working of `question` with one slip a hurried annotator makes: the first carry of an addition is
    forgotten ("7+8=15, write 5." and the next column without "+1"); the rest follows from the wrong value.

    Returns (trace, the answer it reaches), or None when the question has no carry to forget (or the slip
    would take a later subtraction below zero). For imperfect cold-start data (DatasetSpec.imperfections).
    """
    try:
        trace, value, slipped = _working(question, slip=True)
    except ValueError:
        return None
    return (trace, value) if slipped else None


def _working(question: str, slip: bool) -> tuple[str, int, bool]:
    """(trace, its final value, whether a carry was dropped); see arithmetic_trace."""
    terms = _parse_question(question)
    steps = []
    values = []
    for sign, factors in terms:
        if len(factors) == 2:
            number, multiplier = factors
            steps.append(f"{number}*{multiplier}: {_multiply_columns(number, multiplier)} So {number * multiplier}.")
        values.append((sign, math.prod(factors)))
    running = values[0][1]
    for sign, value in values[1:]:
        if sign == "+":
            columns, total = _add_columns(running, value, drop_first_carry=slip)
            slip = slip and total == running + value  # one slip at most: the first addition that carries
            steps.append(f"{running}+{value}: {columns} So {total}.")
            running = total
        else:
            if value > running:  # the column method below assumes the larger number on top
                raise ValueError(f"{question!r} goes below zero; this generator's questions never do")
            steps.append(f"{running}-{value}: {_subtract_columns(running, value)} So {running - value}.")
            running -= value
    slipped = running != sum(v if sign == "+" else -v for sign, v in values)
    return " ".join(steps), running, slipped


def _draw_number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _draw_terms(rng: random.Random, level: ArithmeticLevel) -> list[Term]:
    terms: list[Term] = [("+", [_draw_number(rng, level.digits)])]
    for _ in range(level.operands - 1):
        # A term takes at most one multiplier: "a * 3 * 4" would need a product of products.
        operators = level.operators if len(terms[-1][1]) == 1 else level.operators.replace("*", "")
        operator = rng.choice(operators)
        if operator == "*":
            terms[-1][1].append(rng.randint(2, 9))  # 0 and 1 would make trivial products
        else:
            terms.append((operator, [_draw_number(rng, level.digits)]))
    running = math.prod(terms[0][1])
    for index, (sign, factors) in enumerate(terms[1:], start=1):
        value = math.prod(factors)
        if sign == "-" and value > running:
            terms[index] = ("+", factors)
        running += value if terms[index][0] == "+" else -value
    return terms


def _signed_value(term: Term) -> int:
    sign, factors = term
    return math.prod(factors) if sign == "+" else -math.prod(factors)


def _format_terms(terms: list[Term]) -> str:
    text = ""
    for index, (sign, factors) in enumerate(terms):
        if index:
            text += f" {sign} "
        text += " * ".join(str(factor) for factor in factors)
    return text


def _parse_question(question: str) -> list[Term]:
    """The terms of a generated question, read back through Python's parser so precedence is exact."""
    match = _QUESTION.fullmatch(question)
    try:
        node = ast.parse(match["expression"], mode="eval").body if match else None
    except SyntaxError:
        node = None
    if node is None:
        raise ValueError(f"not an arithmetic question of this generator: {question!r}")
    terms: list[Term] = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        terms.insert(0, ("+" if isinstance(node.op, ast.Add) else "-", _parse_factors(node.right, question)))
        node = node.left
    terms.insert(0, ("+", _parse_factors(node, question)))
    return terms


def _parse_factors(node: ast.expr, question: str) -> list[int]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)
            and isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)):
        return [node.left.value, node.right.value]
    raise ValueError(f"not an arithmetic question of this generator: {question!r}")


def _digits(number: int, width: int) -> list[int]:
    """Digits of `number`, least significant first, padded with zeros to `width`."""
    return [int(d) for d in reversed(str(number).zfill(width))]


def _add_columns(a: int, b: int, drop_first_carry: bool = False) -> tuple[str, int]:
    """The columns of a + b and the sum they reach (a + b, unless `drop_first_carry` forgets a carry)."""
    width = max(len(str(a)), len(str(b)))
    return _carry_columns([(f"{x}+{y}", x + y) for x, y in zip(_digits(a, width), _digits(b, width))],
                          drop_first_carry)


def _multiply_columns(number: int, multiplier: int) -> str:
    return _carry_columns([(f"{x}*{multiplier}", x * multiplier) for x in _digits(number, len(str(number)))])[0]


def _carry_columns(columns: list[tuple[str, int]], drop_first_carry: bool = False) -> tuple[str, int]:
    """One sentence per column (rightmost first, as (working, value) before the carry comes in), and the
    number the written digits make.

    A column writes its last digit and carries its tens into the next one; the leftmost column writes
    its whole value, e.g. "7+8=15, write 5 carry 1. 3+4+1=8." With `drop_first_carry` the first carry is
    not written nor added ("7+8=15, write 5. 3+4=7.").
    """
    sentences, carry, value = [], 0, 0
    for index, (working, column_value) in enumerate(columns):
        working, total = working + (f"+{carry}" if carry else ""), column_value + carry
        if index == len(columns) - 1:
            sentences.append(f"{working}={total}.")
            value += total * 10**index
        else:
            carry = total // 10
            if carry and drop_first_carry:
                carry, drop_first_carry = 0, False
            sentences.append(f"{working}={total}, write {total % 10}" + (f" carry {carry}." if carry else "."))
            value += total % 10 * 10**index
    return " ".join(sentences), value


def _subtract_columns(a: int, b: int) -> str:
    """Columns of a - b for a >= b: a column short of its bottom digit borrows 10 from the next one."""
    sentences, borrow = [], 0
    for x, y in zip(_digits(a, len(str(a))), _digits(b, len(str(a)))):
        working = f"{x}" + ("-1" if borrow else "") + f"-{y}"
        difference = x - borrow - y
        borrow = int(difference < 0)
        sentences.append(f"1{working}={difference + 10}, borrow 1." if borrow else f"{working}={difference}.")
    return " ".join(sentences)
