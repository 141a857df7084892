"""The "countdown" reward: any expression that reaches the target with the given numbers is right.

The rule (TinyZero's, followed by most R1-Zero countdown replications): every given number is used exactly
once, no other number may appear, and division is exact rational division, so "8 / (3 - 8 / 3)" reaches 24
although 8/3 is no integer. A puzzle has many solutions; matching one reference string (exact_match) would
punish every other right one, so this reward evaluates the model's expression instead.

Expressions are read with `ast` and evaluated by walking a whitelist of nodes; nothing is ever `eval`'d, so
the checker can score raw model output. The task generator (grpo/data/countdown.py) uses the same checker.
"""

from __future__ import annotations

import ast
import operator
import re
from fractions import Fraction
from typing import Any

from common.errors import UserError
from rewards.accuracy import final_answers
from rewards.registry import DetailedReward, RewardOutput, register_reward

# A correct answer for six numbers is under 60 characters; the cap bounds the parser's work on garbage.
MAX_EXPRESSION_CHARS = 1000

_EXPRESSION_CHARS = re.compile(r"[0-9+\-*/() \t]*")  # [0-9], not \d: no other scripts' digits
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_ALLOWED_NODES = (ast.BinOp, ast.Constant, *_OPERATORS)


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


def evaluate_countdown(node: ast.expr, steps: list[str] | None = None) -> Fraction:
    """Exact value of a parsed expression; appends "a+b=c." for each operation to `steps` when given.

    Recursion depth is the tree's depth: callers bound it by checking the numbers first.
    """
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = evaluate_countdown(node.left, steps), evaluate_countdown(node.right, steps)
    value = _OPERATORS[type(node.op)](left, right)
    if steps is not None:
        steps.append(f"{left}{_SYMBOLS[type(node.op)]}{right}={value}.")
    return value


def countdown_verdict(expression: object, numbers: list[int], target: int) -> str:
    """"correct", or why not: "unparseable", "wrong_numbers", "division_by_zero", "wrong"."""
    node = parse_countdown_expression(expression)
    if node is None:
        return "unparseable"
    literals = [child.value for child in ast.walk(node) if isinstance(child, ast.Constant)]
    if sorted(literals) != sorted(int(number) for number in numbers):
        return "wrong_numbers"
    try:
        return "correct" if evaluate_countdown(node) == target else "wrong"
    except ZeroDivisionError:
        return "division_by_zero"


def countdown_is_correct(expression: object, numbers: list[int], target: int) -> bool:
    """True when `expression` uses each of `numbers` exactly once and evaluates to `target`.

    Anything else is False, never an exception: non-strings, other characters, syntax errors, unary minus,
    `**`, `//`, decimals, division by zero, over-long input.
    """
    return countdown_verdict(expression, numbers, target) == "correct"


class Countdown(DetailedReward):
    """1.0 if the completion's final answer is an expression that reaches `target` using each of `numbers`
    exactly once, else 0.0 (any valid expression, not only the dataset's reference).

    Columns `numbers` and `target` (what task:countdown rows carry). Option `extractor` (as math_accuracy;
    default "answer_tag", where R1-format completions put the expression). Several different final answers
    earn nothing unless all are right (the hedging policy of the other accuracy rewards).
    Reasons: correct, wrong, wrong_numbers, division_by_zero, unparseable, no_answer, truncated,
    multiple_answers.
    """

    def score_with_details(self, completions: list[str], numbers: list[list[int]], target: list[int],
                           extractor: str = "answer_tag", **columns: Any) -> list[RewardOutput]:
        if not len(numbers) == len(target) == len(completions):
            raise UserError(f"countdown reward: {len(completions)} completions but {len(numbers)} `numbers` and "
                            f"{len(target)} `target` values")
        outputs = []
        for completion, given, goal in zip(completions, numbers, target):
            unusable, answers = final_answers(completion, extractor)
            if unusable is not None:
                outputs.append(RewardOutput(0.0, unusable.value))
                continue
            verdicts = [countdown_verdict(a, given, goal) for a in answers]
            right = verdicts.count("correct")
            if right == len(verdicts):
                reason = "correct"
            else:
                reason = "multiple_answers" if right else verdicts[-1]
            outputs.append(RewardOutput(float(reason == "correct"), reason, {"answer": answers[-1]}))
        return outputs


countdown = register_reward("countdown")(Countdown())
