"""Synthetic verifiable tasks: generators by name, the countdown checker, and solution traces for SFT.

Every generator is deterministic in its seed and returns rows with "id", "question", "answer" (a string)
and "task"; the generators live in arithmetic.py and countdown.py, the countdown checker with its reward
(rewards/countdown.py).
"""

from __future__ import annotations

from typing import Callable

from grpo.data.arithmetic import ARITHMETIC_LEVELS, arithmetic_trace, generate_arithmetic
from grpo.data.countdown import countdown_trace, generate_countdown
from rewards.countdown import countdown_is_correct

__all__ = ["ARITHMETIC_LEVELS", "TASKS", "countdown_is_correct", "generate_arithmetic", "generate_countdown",
           "solution_trace"]

TASKS: dict[str, Callable[..., list[dict]]] = {
    "arithmetic": generate_arithmetic,
    "countdown": generate_countdown,
}


def solution_trace(row: dict) -> str:
    """A short, correct step-by-step reasoning text for a generated row (the body of a <think> block).

    Arithmetic: column-by-column working, "37+48: 7+8=15, write 5 carry 1. 3+4+1=8. So 85.".
    Countdown: the operations of the row's solution, innermost first, "44+19=63. 63-28=35.".
    """
    task = row.get("task")
    if task == "arithmetic":
        return arithmetic_trace(row["question"])
    if task == "countdown":
        if not countdown_is_correct(row["answer"], row["numbers"], row["target"]):
            raise ValueError(f"countdown row {row.get('id')!r}: its answer {row['answer']!r} does not reach "
                             f"{row['target']} with {row['numbers']}")
        return countdown_trace(row["answer"])
    raise ValueError(f"solution_trace needs a row of a synthetic task ({', '.join(TASKS)}); got task={task!r}")
