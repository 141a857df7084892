"""Evaluation estimators: unbiased pass@k (Chen et al. 2021, Codex paper) and majority voting (maj@k)."""

from __future__ import annotations

from collections import Counter
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n - c, k) / C(n, k).

    It is the probability that at least one of k samples drawn without replacement from the n is correct.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_vote(answers: list[str | None]) -> str | None:
    """The most frequent non-empty answer; a tie goes to the answer that appeared first among the samples.

    First appearance is a deterministic, order-only rule (no answer is favoured for being correct), so a tie
    between a right and a wrong answer is decided by sampling order, as in a real deployment.
    """
    valid = [a for a in answers if a not in (None, "")]
    if not valid:
        return None
    counts = Counter(valid)
    best = max(counts.values())
    return next(a for a in valid if counts[a] == best)


def maj_at_k(answers: list[str | None], correct: list[bool]) -> float:
    """1.0 if the majority answer of the k samples is a correct one, else 0.0 (answers[i] scored by correct[i])."""
    if len(answers) != len(correct):
        raise ValueError("answers and correct must have the same length")
    winner = majority_vote(answers)
    if winner is None:
        return 0.0
    return 1.0 if any(ok for a, ok in zip(answers, correct) if a == winner) else 0.0
