"""RewardSpec: one weighted reward in a recipe, and the parsing of the reward specs users write.

In a recipe:

    rewards:
      - {name: math_accuracy, weight: 1.0, kwargs: {extractor: boxed}}
      - {name: format, weight: 0.5}

On the command line: a registered name ("math_accuracy"), "name:weight,name2:weight2", or the path of a
YAML/JSON file holding the list above.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pydantic
import yaml

from common.errors import UserError
from rewards.registry import available_rewards, get_reward, reward_parameters


class RewardSpec(pydantic.BaseModel, extra="forbid"):
    """A registered reward, its weight in the total, and the options passed to it as keyword args."""

    name: str = pydantic.Field(description="A registered reward (`grpo rewards list` lists them).")
    weight: float = pydantic.Field(1.0, description="Its weight in the summed reward (each reward is logged apart).")
    kwargs: dict[str, Any] = pydantic.Field(default_factory=dict, description=(
        "Options of the reward, passed as keyword arguments, e.g. {extractor: boxed}; unknown ones are errors."))

    @pydantic.field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in available_rewards():
            raise ValueError(f"unknown reward {name!r}; registered rewards: {', '.join(available_rewards())}")
        return name

    @pydantic.field_validator("weight")
    @classmethod
    def _finite(cls, weight: float) -> float:
        if not math.isfinite(weight):
            raise ValueError(f"weight must be a finite number, got {weight}")
        return weight

    @pydantic.model_validator(mode="after")
    def _known_options(self) -> RewardSpec:
        # A misspelt option would otherwise vanish into the reward's **columns and silently do nothing.
        declared = reward_parameters(get_reward(self.name))
        unknown = sorted(set(self.kwargs) - set(declared))
        if unknown:
            raise ValueError(
                f"reward {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its parameters: {', '.join(declared) or '(none)'}"
            )
        return self


def _validated(items: Any, source: str) -> list[RewardSpec]:
    if not isinstance(items, list) or not items:
        raise UserError(f"{source}: expected a non-empty list of reward specs (name, weight, kwargs)")
    specs = []
    for number, item in enumerate(items, start=1):
        try:
            specs.append(RewardSpec.model_validate(item))
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise UserError(f"{source}: reward {number}: {problems}") from None
    return specs


def parse_reward_specs(spec: str) -> list[RewardSpec]:
    """Reward specs from a CLI argument: a YAML/JSON file path, "name:weight,...", or one name."""
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise UserError(f"reward spec file {spec} does not exist")
        try:
            items = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise UserError(f"{spec}: not valid YAML/JSON: {exc}") from None
        return _validated(items, spec)
    items = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        if not name:
            raise UserError(f"reward spec {spec!r}: empty reward name (expected name or name:weight,...)")
        try:
            items.append({"name": name, "weight": float(weight)} if weight else {"name": name})
        except ValueError:
            raise UserError(f"reward spec {spec!r}: weight {weight!r} of {name!r} is not a number") from None
    return _validated(items, f"reward spec {spec!r}")

