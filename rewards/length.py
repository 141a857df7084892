"""Length shaping: DAPO's overlong penalty, cosine length scaling, and an n-gram repetition penalty.

Lengths are in tokens. The RL loop knows them and passes a `completion_length` column; without it a
completion's length is estimated as characters / 4 (a usual ratio for English BPE vocabularies), which
is good enough for `grpo rewards score` on a text file but not for training: pass the column.
"""

from __future__ import annotations

import math
import re
from typing import Any

from common.errors import UserError
from rewards.accuracy import CHECKER, DEFAULT_MAX_ANSWER_CHARS, DEFAULT_TIMEOUT_S
from rewards.math_equiv import Verdict
from rewards.registry import DetailedReward, RewardOutput, register_reward

CHARS_PER_TOKEN = 4
# A CJK character is a word of its own; elsewhere a word is a run of letters and digits.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")


def completion_lengths(completions: list[str], completion_length: list[int] | None) -> list[float]:
    """Token lengths: the column if given, else the characters / 4 estimate."""
    if completion_length is not None:
        return [float(n) for n in completion_length]
    return [len(c) / CHARS_PER_TOKEN for c in completions]


def overlong_penalty(
    length: float, max_completion_length: int, overlong_buffer_len: int, penalty_factor: float = 1.0
) -> float:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13): 0 up to max - buffer, then falling
    linearly to -penalty_factor at max, and -penalty_factor beyond."""
    if not 0 < overlong_buffer_len <= max_completion_length:
        raise UserError(
            f"overlong_penalty needs 0 < overlong_buffer_len <= max_completion_length, got "
            f"{overlong_buffer_len} and {max_completion_length}"
        )
    expected = max_completion_length - overlong_buffer_len
    if length <= expected:
        return 0.0
    if length <= max_completion_length:
        return (expected - length) / overlong_buffer_len * penalty_factor
    return -penalty_factor


def cosine_scaled(
    length: float,
    correct: bool,
    max_length: int,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
) -> float:
    """Cosine length scaling (Yeo et al. 2025, arXiv 2502.03373): a correct answer earns from
    max_value_correct (length 0) down to min_value_correct (length >= max_length), so shorter is better;
    a wrong one earns from max_value_wrong (length 0) down to min_value_wrong, so a wrong answer is punished
    less after longer thinking. Lengths past max_length count as max_length."""
    if max_length <= 0:
        raise UserError(f"cosine_length needs a positive max_length, got {max_length}")
    progress = min(length / max_length, 1.0)
    start, end = (max_value_correct, min_value_correct) if correct else (max_value_wrong, min_value_wrong)
    return end + 0.5 * (start - end) * (1.0 + math.cos(progress * math.pi))


def repetition_penalty(text: str, ngram_size: int = 3, max_penalty: float = -1.0) -> float:
    """max_penalty times the share of repeated word n-grams (1 - distinct / total); 0 for text shorter
    than one n-gram. Lowercased; CJK characters count as words."""
    if ngram_size < 1 or max_penalty > 0:
        raise UserError(
            f"repetition_penalty needs ngram_size >= 1 and max_penalty <= 0, got {ngram_size}, {max_penalty}"
        )
    words = _WORD.findall(text.lower())
    if len(words) < ngram_size:
        return 0.0
    ngrams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
    return (1.0 - len(set(ngrams)) / len(ngrams)) * max_penalty


class OverlongPenalty(DetailedReward):
    """DAPO overlong penalty, from 0 down to -penalty_factor (see `overlong_penalty`).

    Options: `max_completion_length` (required, tokens), `overlong_buffer_len` (required, tokens; DAPO:
    4096 of 20480), `penalty_factor` (default 1.0). Column `completion_length` (tokens; recommended,
    else characters / 4). Reasons: within, buffer, over.
    """

    def score_with_details(
        self,
        completions: list[str],
        max_completion_length: int,
        overlong_buffer_len: int,
        penalty_factor: float = 1.0,
        completion_length: list[int] | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        outputs = []
        for length in completion_lengths(completions, completion_length):
            score = overlong_penalty(length, max_completion_length, overlong_buffer_len, penalty_factor)
            reason = "over" if length > max_completion_length else "buffer" if score < 0 else "within"
            outputs.append(RewardOutput(score, reason, {"length": length}))
        return outputs


class CosineLength(DetailedReward):
    """Cosine-scaled correctness (see `cosine_scaled`): correctness is math_accuracy's verdict.

    Column `answer` (as math_accuracy), column `completion_length` (tokens; else characters / 4).
    Options: `max_length` (required, tokens), `min_value_wrong` (-1.0), `max_value_wrong` (-0.5),
    `min_value_correct` (0.5), `max_value_correct` (1.0), and math_accuracy's `extractor`, `timeout_s`,
    `max_answer_chars`. The reason is the math verdict (correct, wrong, no_answer, ...).
    """

    def score_with_details(
        self,
        completions: list[str],
        answer: list[Any],
        max_length: int,
        min_value_wrong: float = -1.0,
        max_value_wrong: float = -0.5,
        min_value_correct: float = 0.5,
        max_value_correct: float = 1.0,
        extractor: str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        completion_length: list[int] | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        verdicts = CHECKER.verdicts(completions, answer, extractor, timeout_s, max_answer_chars)
        lengths = completion_lengths(completions, completion_length)
        values = (min_value_wrong, max_value_wrong, min_value_correct, max_value_correct)
        return [
            RewardOutput(
                cosine_scaled(length, v is Verdict.CORRECT, max_length, *values), v.value, {"length": length}
            )
            for (v, _, _), length in zip(verdicts, lengths)
        ]

    def close(self) -> None:
        CHECKER.close()


class RepetitionPenalty(DetailedReward):
    """N-gram repetition penalty, from 0 (no repeated n-gram) down to max_penalty (see `repetition_penalty`).

    Options: `ngram_size` (default 3), `max_penalty` (default -1.0, must be <= 0).
    """

    def score_with_details(
        self, completions: list[str], ngram_size: int = 3, max_penalty: float = -1.0, **columns: Any
    ) -> list[RewardOutput]:
        return [RewardOutput(repetition_penalty(c, ngram_size, max_penalty)) for c in completions]


overlong = register_reward("overlong_penalty")(OverlongPenalty())
cosine_length = register_reward("cosine_length")(CosineLength())
repetition = register_reward("repetition_penalty")(RepetitionPenalty())
