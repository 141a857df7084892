"""Countdown: reach a target from given numbers with +, -, *, / and parentheses.

The rule (TinyZero's, followed by most R1-Zero countdown replications): every given number is used exactly
once, no other number may appear, and division is exact rational division, so "8 / (3 - 8 / 3)" reaches 24
although 8/3 is no integer. The generator itself only builds solutions whose intermediate results are
positive integers (subtraction a - b only when a > b, division only when it is exact), which keeps the
solution traces free of fractions.

Expressions are read with `ast` and evaluated by walking a whitelist of nodes; nothing is ever `eval`'d, so
the checker can score raw model output.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from fractions import Fraction

MIN_NUMBERS, MAX_NUMBERS = 2, 6
# A correct answer for six numbers is under 60 characters; the cap bounds the parser's work on garbage.
MAX_EXPRESSION_CHARS = 1000

_EXPRESSION_CHARS = re.compile(r"[0-9+\-*/() \t]*")  # [0-9], not \d: no other scripts' digits
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_ALLOWED_NODES = (ast.BinOp, ast.Constant, *_OPERATORS)


def generate_countdown(n: int, seed: int, num_numbers: int = 4, max_target: int = 100) -> list[dict]:
    """`n` puzzles with numbers drawn from 1..max_target and a target in 1..max_target that they reach.

    "answer" holds one solution (an expression); any other expression that `countdown_is_correct` accepts
    is as good. Deterministic in (seed, num_numbers, max_target); a longer list extends a shorter one.
    """
    if not MIN_NUMBERS <= num_numbers <= MAX_NUMBERS:
        raise ValueError(f"num_numbers must be in {MIN_NUMBERS}..{MAX_NUMBERS}, got {num_numbers}")
    if max_target < 1:
        raise ValueError(f"max_target must be >= 1, got {max_target}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"countdown:{num_numbers}:{max_target}:{seed}")
    rows = []
    for i in range(n):
        numbers, target, expression = _draw_puzzle(rng, num_numbers, max_target)
        rows.append({
            "id": f"countdown-n{num_numbers}-s{seed}-{i}",
            "question": f"Using the numbers {numbers}, write an expression that equals {target}. Use each "
                        f"number exactly once, with +, -, * and / and parentheses as needed.",
            "answer": expression,
            "numbers": numbers,
            "target": target,
            "task": "countdown",
        })
    return rows


def countdown_is_correct(expression: object, numbers: list[int], target: int) -> bool:
    """True when `expression` uses each of `numbers` exactly once and evaluates to `target`.

    Anything else is False, never an exception: non-strings, other characters, syntax errors, unary minus,
    `**`, `//`, decimals, division by zero, over-long input.
    """
    node = parse_countdown_expression(expression)
    if node is None:
        return False
    literals = [child.value for child in ast.walk(node) if isinstance(child, ast.Constant)]
    if sorted(literals) != sorted(int(number) for number in numbers):
        return False
    try:
        return _evaluate(node) == target
    except ZeroDivisionError:
        return False


def countdown_trace(expression: str) -> str:
    """One sentence per operation, innermost first: "(44 + 19) - 28" -> "44+19=63. 63-28=35."."""
    node = parse_countdown_expression(expression)
    if node is None:
        raise ValueError(f"not a countdown expression: {expression!r}")
    steps: list[str] = []
    _evaluate(node, steps)
    return " ".join(steps)


def parse_countdown_expression(expression: object) -> ast.expr | None:
    """The syntax tree of an expression made only of integers, + - * / and parentheses, else None."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return None
    text = expression.strip()
    if not _EXPRESSION_CHARS.fullmatch(text):
        return None
    try:
        body = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for child in ast.walk(body):  # iterative, so a deeply nested input cannot overflow the stack here
        if not isinstance(child, _ALLOWED_NODES) or (isinstance(child, ast.Constant) and type(child.value) is not int):
            return None
    return body


def _evaluate(node: ast.expr, steps: list[str] | None = None) -> Fraction:
    """Exact value of a parsed expression; appends "a+b=c." for each operation to `steps` when given.

    Recursion depth is the tree's depth: callers check the numbers (at most MAX_NUMBERS) before this.
    """
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _evaluate(node.left, steps), _evaluate(node.right, steps)
    value = _OPERATORS[type(node.op)](left, right)
    if steps is not None:
        steps.append(f"{left}{_SYMBOLS[type(node.op)]}{right}={value}.")
    return value


def _draw_puzzle(rng: random.Random, num_numbers: int, max_target: int) -> tuple[list[int], int, str]:
    """Numbers, a target and a solution: combine two random entries with a random operator until one is
    left (any tree shape can come out), and keep the result when it lies in 1..max_target."""
    while True:
        numbers = [rng.randint(1, max_target) for _ in range(num_numbers)]
        pool = [(number, str(number)) for number in numbers]  # (value, expression)
        while len(pool) > 1:
            (a, a_text), (b, b_text) = pool.pop(rng.randrange(len(pool))), pool.pop(rng.randrange(len(pool)))
            choices = ["+", "*"] + ["-"] * (a > b) + ["/"] * (b > 1 and a % b == 0)
            symbol = rng.choice(choices)
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[symbol]  # every value is >= 1
            pool.append((value, f"{_parenthesised(a_text)} {symbol} {_parenthesised(b_text)}"))
        target, expression = pool[0]
        if 1 <= target <= max_target:
            return numbers, target, expression


def _parenthesised(expression: str) -> str:
    return f"({expression})" if " " in expression else expression
