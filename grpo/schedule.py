"""Learning-rate schedules, shared by the RL learner and the SFT stages: a multiplier of the base LR per
optimizer step (torch's LambdaLR), with linear warm-up."""

from __future__ import annotations

import math


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "linear":
            return 1.0 - progress
        return 1.0

    return f
