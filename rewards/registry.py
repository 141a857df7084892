"""One registry of reward functions, keyed by the name a recipe uses.

A reward follows TRL's calling convention: `fn(completions: list[str], **columns) -> list[float]`, where
each dataset column arrives as a list with one value per completion and each option (from the recipe's
RewardSpec.kwargs) arrives as a scalar keyword. A reward that can explain itself also offers
`score_with_details(completions, **columns) -> list[RewardOutput]`; the composer prefers it so the reason
behind every score reaches the logs.

Options are declared as explicit keyword parameters (of `score_with_details` when there is one, else of
the callable); `**kwargs` only absorbs the dataset columns a reward does not use. That is how a recipe's
misspelt option is caught before a run (rewards.spec) instead of being silently ignored.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from common.errors import UserError

RewardFn = Callable[..., list[float]]  # (completions: list[str], **columns) -> list[float]


@dataclass
class RewardOutput:
    """One sample's score with the reason for it (e.g. "correct", "no_answer", "timeout") and any extras."""

    score: float
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class DetailedReward:
    """Base for rewards that explain their scores: subclasses implement `score_with_details`, calling the
    object returns just the scores, and `close` releases what the reward holds (processes, sandboxes)."""

    def score_with_details(self, completions: list[str], **columns: Any) -> list[RewardOutput]:
        raise NotImplementedError

    def __call__(self, completions: list[str], **columns: Any) -> list[float]:
        return [output.score for output in self.score_with_details(completions, **columns)]

    def close(self) -> None:
        """Release held resources; the reward must still work if called again afterwards."""


_REGISTRY: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering a reward callable under `name`; a second registration of a name raises."""

    def decorator(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered (by {_REGISTRY[name]!r})")
        _REGISTRY[name] = fn
        return fn

    return decorator


def get_reward(name: str) -> RewardFn:
    """The reward registered under `name`; an unknown name is a UserError listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unknown reward {name!r}; registered rewards: {', '.join(available_rewards()) or '(none)'}"
        ) from None


def available_rewards() -> list[str]:
    """Names of all registered rewards, sorted."""
    return sorted(_REGISTRY)


def reward_parameters(fn: RewardFn) -> dict[str, inspect.Parameter]:
    """The named keyword parameters (options and columns) a reward declares, `completions` and
    `**kwargs` excluded; read from `score_steps` for a step reward (rewards/steps.py), else from
    `score_with_details` when the reward has one."""
    target = getattr(fn, "score_steps", None) or getattr(fn, "score_with_details", fn)
    params = list(inspect.signature(target).parameters.values())[1:]  # the first takes the completions
    return {
        p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
