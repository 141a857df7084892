"""Rule-based rewards, one registry, and weighted composition.

A reward is a callable `(completions: list[str], **dataset_columns) -> list[float]` (TRL's convention)
registered under a name (rewards.registry); a recipe lists RewardSpecs (rewards.spec) that a
RewardComposer (rewards.compose) sums with weights. Importing this package registers the built-ins:
math_accuracy, exact_match (accuracy.py), format, tag_count (format.py), language_consistency
(language.py), overlong_penalty, cosine_length, repetition_penalty (length.py), reward_model
(reward_model.py), judge (judge.py), countdown (countdown.py), the step rewards arithmetic_steps and process_reward_model (steps.py)
and the sandboxed code reward (code.py).
"""

import rewards.accuracy  # noqa: F401  each of these modules registers its built-in rewards
import rewards.code  # noqa: F401
import rewards.countdown  # noqa: F401
import rewards.format  # noqa: F401
import rewards.language  # noqa: F401
import rewards.judge  # noqa: F401
import rewards.length  # noqa: F401
import rewards.reward_model  # noqa: F401
import rewards.steps  # noqa: F401
from rewards.registry import (
    DetailedReward,
    RewardFn,
    RewardOutput,
    available_rewards,
    get_reward,
    register_reward,
)

__all__ = ["DetailedReward", "RewardFn", "RewardOutput", "available_rewards", "get_reward", "register_reward"]
