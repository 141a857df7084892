"""Countdown: reach a target from given numbers with +, -, *, / and parentheses.

The rule (TinyZero's, followed by most R1-Zero countdown replications): every given number is used exactly
once, no other number may appear, and division is exact rational division, so "8 / (3 - 8 / 3)" reaches 24
although 8/3 is no integer. The generator itself only builds solutions whose intermediate results are
positive integers (subtraction a - b only when a > b, division only when it is exact), which keeps the
solution traces free of fractions. The checker lives with the `countdown` reward (rewards/countdown.py).
"""

from __future__ import annotations

import random

from rewards.countdown import evaluate_countdown, parse_countdown_expression

MIN_NUMBERS, MAX_NUMBERS = 2, 6


def generate_countdown(n: int, seed: int, num_numbers: int = 4, max_target: int = 100) -> list[dict]:
    """`n` puzzles with numbers drawn from 1..max_target and a target in 1..max_target that they reach.

    "answer" holds one solution (an expression); any other expression that rewards.countdown's
    `countdown_is_correct` accepts is as good. Deterministic in (seed, num_numbers, max_target); a longer
    list extends a shorter one.
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


def countdown_trace(expression: str) -> str:
    """One sentence per operation, innermost first: "(44 + 19) - 28" -> "44+19=63. 63-28=35."."""
    node = parse_countdown_expression(expression)
    if node is None:
        raise ValueError(f"not a countdown expression: {expression!r}")
    steps: list[str] = []
    evaluate_countdown(node, steps)
    return " ".join(steps)


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
