"""Is an extracted final answer equivalent to the reference? math-verify decides, under our policies.

math-verify (parser: latex2sympy2-extended; comparison: sympy) already handles the notational variety
(\\frac12 = \\frac{1}{2} = 0.5, 50\\% = 0.5, 10\\text{ cm} = 10, 30^\\circ = 30, x = 3 vs 3, intervals, tuples,
matrices, 1,000 = 1000, text answers). On top of it this module adds what a reward needs:

- LaTeX spacing used as a thousands separator (1\\,200, 10,\\!000) is removed, since latex2sympy reads
  "1\\,200" as 201; a mixed number (15\\frac{39}{40}) means 15 + 39/40.
- Unit words after a number ("18 dollars", \\text{18 dollars}) are dropped: the number is the answer.
- A list of answers ("2, 3", or "5,5" which sympy collapses to {5}) never matches a single-valued
  reference: hedging inside one box earns nothing, like hedging across boxes (see extract.py).
- Floats compare after rounding to 6 decimals (math-verify's float_rounding): 0.333333 = 1/3, 0.333 != 1/3.

Every check returns a Verdict with a short detail. This module has no time limit of its own: sympy can
run for ever on adversarial input, so rewards call it only through rewards.verify_pool, which enforces one.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import lru_cache

from math_verify import LatexExtractionConfig, parse, verify
from sympy import Basic, MatrixBase, Set, Tuple
from sympy.logic.boolalg import Boolean


class Verdict(str, Enum):
    """Why a math answer got the score it got; the value is what the logs show."""

    CORRECT = "correct"
    WRONG = "wrong"
    NO_ANSWER = "no_answer"
    TRUNCATED = "truncated"  # the completion ended inside its answer
    MULTIPLE_ANSWERS = "multiple_answers"  # different final answers, not all right (hedging)
    UNPARSEABLE = "unparseable"  # the answer is not math-verify-readable and not a literal match
    UNPARSEABLE_GOLD = "unparseable_gold"  # the dataset's reference could not be read: a data problem
    TIMEOUT = "timeout"
    INVALID = "invalid"  # too long to check, or the check crashed its process


# Wrapping an answer in \boxed{} makes math-verify take the whole string as one LaTeX answer instead of
# searching it for the last number (its default), which would silently turn "2 or 3" into 3.
_BOXED_ONLY = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
# A LaTeX space (\, \; \: \! "\ " ~), but not the \\ row break, which the alternation consumes first.
_LATEX_SPACING = re.compile(r"\\\\|\\[,;:! ]|~")
_DIGIT_SPACING = re.compile(r"(?<=\d)(?:\\[,;:!]|\{,\}|,\\!)+(?=\d{3}(?!\d))")
_MIXED_NUMBER = re.compile(r"^(-?)(\d+)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}$")
_NUMBER = r"[-+]?(?:\\\$|\$)?\s*\d[\d,]*(?:\.\d+)?"
# A number followed by unit words; the words must be in \text{} or be 3+ letters so "2x" or "2 pi" stay.
_UNIT_WORDS = r"[A-Za-z][A-Za-z .]*"
_NUMBER_WITH_UNITS = re.compile(
    rf"^(?P<num>{_NUMBER})\s*(?:\\(?:text|mbox|mathrm|textrm)\{{\s*{_UNIT_WORDS}\}}|\s[A-Za-z]{{3,}}[A-Za-z .]*)$"
)
_TEXT_NUMBER_WITH_UNITS = re.compile(
    rf"^\\(?:text|mbox|textrm)\{{\s*(?P<num>{_NUMBER})\s+{_UNIT_WORDS}\}}$"
)
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")


def _strip_outer_braces(answer: str) -> str:
    """{{5}} -> 5: grouping braces around a whole answer mean nothing, but sympy would read a set."""
    while answer.startswith("{") and answer.endswith("}"):
        depth = 0
        for i, ch in enumerate(answer):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0 and i < len(answer) - 1:
                return answer  # the first brace closes early: "{a}+{b}" is not wrapped
        answer = answer[1:-1].strip()
    return answer


def normalize_answer(answer: str) -> str:
    """Our normalizations before math-verify (see the module docstring); pure string work."""
    answer = _strip_outer_braces(answer.strip())
    answer = _DIGIT_SPACING.sub("", answer)
    answer = _LATEX_SPACING.sub(lambda m: m.group() if m.group() == "\\\\" else " ", answer).strip()
    if (m := _MIXED_NUMBER.match(answer)) is not None:
        sign, whole, num, den = m.groups()
        if int(den) != 0 and int(num) < int(den):
            answer = f"{sign}\\frac{{{int(whole) * int(den) + int(num)}}}{{{den}}}"
    if (m := _NUMBER_WITH_UNITS.match(answer) or _TEXT_NUMBER_WITH_UNITS.match(answer)) is not None:
        answer = m.group("num").strip()
    return answer


def count_list_items(answer: str) -> int:
    """How many comma-separated items `answer` lists at its top level (thousands separators excluded)."""
    text = _THOUSANDS.sub("0", answer.replace("{,}", ","))
    depth = 0
    items = 1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            depth += 1 if text[i + 1] == "{" else -1  # \{ \} delimit a set literal
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items += 1
        i += 1
    return items


def _is_single_value(expr: object) -> bool:
    """A number or expression, as opposed to a set, tuple, interval, matrix, equation or string."""
    return isinstance(expr, Basic) and not isinstance(expr, (Set, Tuple, MatrixBase, Boolean))


@lru_cache(maxsize=1024)
def _parse_cached(answer: str) -> tuple:
    """math-verify's parse of one answer: [sympy expression, source string], or [string], or []."""
    return tuple(parse("\\boxed{" + answer + "}", extraction_config=_BOXED_ONLY, parsing_timeout=None))


def check_answer(answer: str, gold: str) -> tuple[Verdict, str]:
    """The verdict on one extracted `answer` against the reference `gold`, with a short detail.

    No time limit: call through rewards.verify_pool from anything that must not hang.
    """
    gold_norm = normalize_answer(gold)
    answer_norm = normalize_answer(answer)
    if not answer_norm:
        return Verdict.NO_ANSWER, "empty answer"
    gold_parsed = _parse_cached(gold_norm)  # cached: a group of G completions shares one reference
    if not gold_parsed:
        return Verdict.UNPARSEABLE_GOLD, f"reference {gold!r} could not be parsed"
    answer_parsed = _parse_cached(answer_norm)
    if not answer_parsed:
        return Verdict.UNPARSEABLE, "answer could not be parsed"
    if _is_single_value(gold_parsed[0]):
        items = count_list_items(answer_norm)
        if items > 1:
            return Verdict.WRONG, f"{items} answers given for a single-valued reference"
    if verify(list(gold_parsed), list(answer_parsed), timeout_seconds=None):
        return Verdict.CORRECT, ""
    if not isinstance(gold_parsed[0], (Basic, MatrixBase)):
        return Verdict.UNPARSEABLE_GOLD, f"reference {gold!r} is not math and not literally equal to the answer"
    if not isinstance(answer_parsed[0], (Basic, MatrixBase)):
        return Verdict.UNPARSEABLE, "answer is not math and not literally equal to the reference"
    return Verdict.WRONG, ""
