"""Final-answer extraction from a completion: the \\boxed{...} answers, the <answer> block, GSM8K's "#### x".

Extraction is pure string work, linear in the completion's length (no regex backtracking over untrusted
text), so it runs in the calling process; only the equivalence check needs the worker pool.

Every extractor returns *all* final answers it finds, not just the last one, because our policy is that
hedging ("\\boxed{2} ... or maybe \\boxed{3}") earns nothing: the math reward credits a completion only if
every answer it gives is right. A box or tag that is opened but never closed means the completion was cut
off while writing its answer; that is reported as truncated and earns nothing either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from common.errors import UserError

EXTRACTORS = ("boxed", "answer_tag", "gsm8k", "last_number", "auto")


class ExtractStatus(str, Enum):
    """Whether an extractor found answers, found none, or found one cut off by the end of the text."""

    OK = "ok"
    NO_ANSWER = "no_answer"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Extraction:
    """The final answers found in one text (in order of appearance) and whether the search succeeded."""

    status: ExtractStatus
    answers: list[str] = field(default_factory=list)


_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K_MARK = "####"
# Math delimiters a model may wrap an <answer> or "####" answer in; the answer is what is inside.
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"))
# LaTeX that shows nothing: spacing, invisible boxes (their argument is skipped), and styles or wrappers
# whose argument is scanned like the rest (\\text{ } is blank, \\text{no} is not).
_BLANK_SYMBOL_COMMANDS = frozenset(",;:!> \\\t\n")
_BLANK_ARG_COMMANDS = frozenset(("phantom", "hphantom", "vphantom", "hspace", "vspace", "mspace", "kern", "mkern"))
_BLANK_COMMANDS = frozenset((
    "quad", "qquad", "enspace", "thinspace", "medspace", "thickspace", "negthinspace", "negmedspace",
    "negthickspace", "hfill", "space", "nobreakspace", "displaystyle", "textstyle", "scriptstyle", "text",
    "textrm", "mathrm", "mbox", "hbox", "left", "right",
))


def _closing_brace(text: str, open_index: int) -> int:
    """Index of the brace closing the group opened at `open_index`, or -1 if the text ends first.

    A backslash escapes the next character, so \\{ and \\} (literal braces, as in \\boxed{\\{1, 2\\}}) do not
    count, and \\\\ does not escape the brace after it.
    """
    depth = 0
    i = open_index
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def is_blank_math(text: str) -> bool:
    """Whether `text` shows nothing but space: whitespace, `~`, braces, `$`, spacing commands (\\quad,
    \\,, \\hspace{..}, ...), invisible boxes (\\phantom{..}) and wrappers of nothing (\\text{ }).

    A model that boxes only layout has not answered; counting it would make "\\boxed{\\,} ...
    \\boxed{5}" a hedge between two answers. One pass that stops at the first visible character.
    """
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace() or ch in "~{}$":
            i += 1
            continue
        if ch != "\\":
            return False
        if i + 1 == n:  # "\ " whose space was stripped
            return True
        if not text[i + 1].isalpha():  # a one-character command: \, \; \: \! \  \\
            if text[i + 1] not in _BLANK_SYMBOL_COMMANDS:
                return False
            i += 2
            continue
        end = i + 1
        while end < n and text[end].isalpha():
            end += 1
        name = text[i + 1 : end]
        if name in _BLANK_ARG_COMMANDS:  # skip the argument whatever it holds: it is never shown
            end += text[end : end + 1] == "*"
            while end < n and text[end].isspace():
                end += 1
            if end < n and text[end] == "{":
                close = _closing_brace(text, end)
                end = n if close < 0 else close + 1
        elif name not in _BLANK_COMMANDS:
            return False
        i = end
    return True


def extract_boxed(text: str) -> Extraction:
    """All top-level \\boxed{...} (and \\fbox{...}) contents, with balanced braces.

    A box nested inside another box belongs to the outer one. An unclosed box means truncation. A box of
    layout only (is_blank_math) is no answer.
    """
    answers = []
    pos = 0
    while (match := _BOX_OPEN.search(text, pos)) is not None:
        close = _closing_brace(text, match.end() - 1)
        if close < 0:
            return Extraction(ExtractStatus.TRUNCATED, answers)
        answer = text[match.end() : close].strip()
        if not is_blank_math(answer):
            answers.append(answer)
        pos = close + 1
    return Extraction(ExtractStatus.OK if answers else ExtractStatus.NO_ANSWER, answers)


def strip_math_delimiters(answer: str) -> str:
    """`$x$`, `\\(x\\)`, `\\[x\\]`, `$$x$$` -> `x` (once, outermost), and surrounding whitespace."""
    answer = answer.strip()
    for left, right in _DELIMITERS:
        if len(answer) >= len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            return answer[len(left) : len(answer) - len(right)].strip()
    return answer


def extract_answer_tag(text: str) -> Extraction:
    """The contents of every <answer>...</answer> block; a box inside a block is its answer.

    An <answer> never closed means truncation. (str.find, not a lazy regex: a regex would rescan the
    rest of the text for every unclosed tag, quadratic on adversarial completions.)
    """
    answers = []
    pos = 0
    while (start := text.find("<answer>", pos)) >= 0:
        end = text.find("</answer>", start)
        if end < 0:
            return Extraction(ExtractStatus.TRUNCATED, answers)
        block = text[start + len("<answer>") : end]
        if _BOX_OPEN.search(block):  # a block with a box answers in its boxes (none, if they are blank)
            boxed = extract_boxed(block)
            if boxed.status is ExtractStatus.TRUNCATED:
                return boxed
            answers.extend(boxed.answers)
        else:
            answers.append(strip_math_delimiters(block))
        pos = end + len("</answer>")
    answers = [a for a in answers if not is_blank_math(a)]
    return Extraction(ExtractStatus.OK if answers else ExtractStatus.NO_ANSWER, answers)


def extract_gsm8k(text: str) -> Extraction:
    """The rest of the line after each "####" (GSM8K's answer mark); a last mark with nothing after it
    means truncation."""
    last = text.rfind(_GSM8K_MARK)
    if last < 0:
        return Extraction(ExtractStatus.NO_ANSWER)
    if not text[last + len(_GSM8K_MARK) :].strip():
        return Extraction(ExtractStatus.TRUNCATED)
    answers = []
    for line in text.splitlines():
        mark = line.find(_GSM8K_MARK)
        if mark >= 0 and (answer := strip_math_delimiters(line[mark + len(_GSM8K_MARK) :])):
            answers.append(answer)
    return Extraction(ExtractStatus.OK if answers else ExtractStatus.NO_ANSWER, answers)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def extract_last_number(text: str) -> Extraction:
    """The last number in the text, alone: a lenient reading for a pretrained model that answers in prose
    ("5 + 3 = 8, so the answer is 8") and writes neither tags nor boxes (SmolLM2-135M-Instruct: none in 512
    samples). Only the last counts, so a hedge ending on a wrong number earns nothing; never "auto"'s choice."""
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return Extraction(ExtractStatus.OK, [last.group()]) if last else Extraction(ExtractStatus.NO_ANSWER)


def extract_answers(text: str, extractor: str = "auto") -> Extraction:
    """Final answers of `text` by the named extractor.

    "auto" picks by what the text contains, most explicit first: an <answer> block, else a box, else a
    GSM8K "####" mark.
    """
    if extractor == "auto":
        if "<answer>" in text:
            extractor = "answer_tag"
        elif _BOX_OPEN.search(text):
            extractor = "boxed"
        else:
            extractor = "gsm8k"
    if extractor == "boxed":
        return extract_boxed(text)
    if extractor == "answer_tag":
        return extract_answer_tag(text)
    if extractor == "gsm8k":
        return extract_gsm8k(text)
    if extractor == "last_number":
        return extract_last_number(text)
    raise UserError(f"unknown answer extractor {extractor!r}; valid extractors: {', '.join(EXTRACTORS)}")


def gold_answer(gold: object) -> str:
    """The reference answer from a dataset's answer column: a bare answer is used as is; a full worked
    solution is reduced to its final answer (the last box of a MATH solution, the "####" line of GSM8K).
    A missing reference (None) is the empty string, which no answer matches."""
    text = "" if gold is None else str(gold).strip()
    if _GSM8K_MARK in text:
        found = extract_gsm8k(text)
    elif _BOX_OPEN.search(text):
        found = extract_boxed(text)
    else:
        return strip_math_delimiters(text)
    return found.answers[-1] if found.answers else text
