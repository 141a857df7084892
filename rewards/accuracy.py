"""Answer-correctness rewards: "math_accuracy" (equivalence by math-verify) and "exact_match" (strings).

Policy, shared by every reward that needs to know whether an answer is right (cosine_length too):
- the extractor finds every final answer in the completion (rewards.extract); none -> "no_answer", an
  unclosed box or tag -> "truncated";
- each distinct answer is checked against the reference; the completion is correct only if all of them
  are. Some right and some wrong is hedging -> "multiple_answers", score 0;
- an answer longer than `max_answer_chars` is not sent to sympy at all -> "invalid".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from common.errors import UserError
from rewards.extract import ExtractStatus, extract_answers, gold_answer
from rewards.math_equiv import Verdict
from rewards.registry import DetailedReward, RewardOutput, register_reward
from rewards.verify_pool import VerifyPool

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_ANSWER_CHARS = 1000


def final_answers(completion: str, extractor: str) -> tuple[Verdict | None, list[str]]:
    """The distinct non-empty final answers of a completion, in order of appearance, or the verdict
    that it has none to check (truncated, no_answer) with an empty list."""
    found = extract_answers(completion, extractor)
    if found.status is ExtractStatus.TRUNCATED:
        return Verdict.TRUNCATED, []
    answers = list(dict.fromkeys(a.strip() for a in found.answers if a.strip()))  # an empty box is none
    return (None, answers) if answers else (Verdict.NO_ANSWER, [])


def _combine(verdicts: list[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    """One completion's verdict from those of its distinct answers (in order of appearance)."""
    correct = sum(v is Verdict.CORRECT for v, _ in verdicts)
    if correct == len(verdicts):
        return Verdict.CORRECT, ""
    if correct:
        return Verdict.MULTIPLE_ANSWERS, f"{correct} of {len(verdicts)} different final answers are right"
    return verdicts[-1]


class MathChecker:
    """Extraction + policy + a worker pool + a bounded verdict cache (rewards scoring the same batch, or
    the G samples of a group that agree, check each (answer, reference) pair once)."""

    def __init__(self, cache_size: int = 65536) -> None:
        self._pool: VerifyPool | None = None
        self._cache: OrderedDict[tuple[str, str], tuple[Verdict, str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _pool_for(self, num_workers: int | None) -> VerifyPool:
        if self._pool is not None and num_workers is not None and self._pool.num_workers != num_workers:
            self._pool.close()
            self._pool = None
        if self._pool is None:
            self._pool = VerifyPool(num_workers)
        return self._pool

    def start(self, num_workers: int | None = None) -> None:
        """Start the worker processes now (else the first check does), e.g. before a timed loop."""
        with self._lock:
            self._pool_for(num_workers).start()

    def check_pairs(
        self, pairs: list[tuple[str, str]], timeout_s: float, num_workers: int | None = None
    ) -> list[tuple[Verdict, str]]:
        """Verdicts for (answer, reference) pairs: from the cache, else from the pool."""
        with self._lock:
            verdicts = {}
            for pair in pairs:
                if pair in self._cache:
                    self._cache.move_to_end(pair)
                    verdicts[pair] = self._cache[pair]
            missing = [pair for pair in dict.fromkeys(pairs) if pair not in verdicts]
            if missing:
                for pair, verdict in zip(missing, self._pool_for(num_workers).check(missing, timeout_s)):
                    verdicts[pair] = verdict
                    self._cache[pair] = verdict
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            return [verdicts[pair] for pair in pairs]

    def verdicts(
        self,
        completions: list[str],
        golds: list[Any],
        extractor: str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        num_workers: int | None = None,
    ) -> list[tuple[Verdict, str, str]]:
        """(verdict, detail, last extracted answer) for each completion against its reference."""
        if len(golds) != len(completions):
            raise UserError(f"{len(golds)} reference answers for {len(completions)} completions")
        if timeout_s <= 0:
            raise UserError(f"timeout_s must be positive, got {timeout_s}")
        results: list[tuple[Verdict, str, str] | None] = [None] * len(completions)
        todo: dict[int, list[tuple[str, str]]] = {}  # completion index -> its (answer, gold) pairs
        for i, (completion, gold) in enumerate(zip(completions, golds)):
            unusable, answers = final_answers(completion, extractor)
            if unusable is not None:
                why = "ends inside its answer" if unusable is Verdict.TRUNCATED else "has no final answer"
                results[i] = (unusable, f"the completion {why} (extractor {extractor!r})", "")
                continue
            longest = max(answers, key=len)
            if len(longest) > max_answer_chars:
                detail = f"an answer of {len(longest)} characters exceeds max_answer_chars={max_answer_chars}"
                results[i] = (Verdict.INVALID, detail, longest[:200])
                continue
            todo[i] = [(answer, gold_answer(gold)) for answer in answers]
        flat = [pair for pairs in todo.values() for pair in pairs]
        checked = iter(self.check_pairs(flat, timeout_s, num_workers))
        for i, pairs in todo.items():
            verdict, detail = _combine([next(checked) for _ in pairs])
            results[i] = (verdict, detail, pairs[-1][0])
        return results  # type: ignore[return-value]  every slot was filled above

    def close(self) -> None:
        """Stop the worker processes (a later check starts them again)."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


CHECKER = MathChecker()


class MathAccuracy(DetailedReward):
    """1.0 if the completion's final answer is mathematically equivalent to the reference, else 0.0.

    Column `answer`: the reference, a bare answer ("\\frac{1}{2}", 18) or a full worked solution (its last
    box, or its "####" line, is taken). Options: `extractor` ("boxed", "answer_tag", "gsm8k", "auto"),
    `timeout_s` (hard limit per check, default 5), `max_answer_chars` (longer answers are "invalid",
    default 1000), `num_workers` (checker processes, default min(4, cores)).
    Reasons: correct, wrong, no_answer, truncated, multiple_answers, unparseable, unparseable_gold,
    timeout, invalid.
    """

    def score_with_details(
        self,
        completions: list[str],
        answer: list[Any],
        extractor: str = "auto",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        num_workers: int | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        verdicts = CHECKER.verdicts(completions, answer, extractor, timeout_s, max_answer_chars, num_workers)
        return [
            RewardOutput(float(v is Verdict.CORRECT), v.value, {"answer": extracted, "detail": detail})
            for v, detail, extracted in verdicts
        ]

    def close(self) -> None:
        CHECKER.close()


class ExactMatch(DetailedReward):
    """1.0 if every extracted final answer, trimmed, equals the trimmed reference string, else 0.0.

    For tasks whose answers are canonical strings (the synthetic integer-arithmetic tasks of the RL loop):
    no math parsing, no processes. Column `answer`. Option `extractor` (as math_accuracy; default "auto").
    Reasons: correct, wrong, no_answer, truncated, multiple_answers.
    """

    def score_with_details(
        self, completions: list[str], answer: list[Any], extractor: str = "auto", **columns: Any
    ) -> list[RewardOutput]:
        if len(answer) != len(completions):
            raise UserError(f"{len(answer)} reference answers for {len(completions)} completions")
        outputs = []
        for completion, gold in zip(completions, answer):
            unusable, answers = final_answers(completion, extractor)
            if unusable is not None:
                outputs.append(RewardOutput(0.0, unusable.value))
                continue
            reference = str(gold).strip()
            verdict, _ = _combine([(Verdict.CORRECT if a == reference else Verdict.WRONG, "") for a in answers])
            score = float(verdict is Verdict.CORRECT)
            outputs.append(RewardOutput(score, verdict.value, {"answer": answers[-1]}))
        return outputs


math_accuracy = register_reward("math_accuracy")(MathAccuracy())
exact_match = register_reward("exact_match")(ExactMatch())
