"""Step rewards: scores for each step of a completion, for process supervision (DeepSeekMath sec. 4.1.3).

A step reward is a reward of its own kind in the one registry: a `StepReward` whose `score_steps` returns,
per completion, its steps in order as `StepScore(end, score)`, `end` being the character offset just past
the step in the completion. The RL loop maps those offsets to the sampled tokens (never re-tokenising) and
turns the scores into per-token advantages. Called as an ordinary reward, a step reward scores a completion
by the mean of its steps (0 when it has none), so it can be logged beside the outcome rewards too.

Built in:
- "arithmetic_steps": a rule-based verifier of the arithmetic task's column working (grpo/data/arithmetic.py
  writes it): every column sum, every written digit and carry, every "So N." conclusion is a step, 1.0 when
  it is right and 0.0 when it is wrong. A forgotten carry is caught at the column that drops it, which an
  answer check only sees at the end.
- "process_reward_model": a reward model (rewards/reward_model.py) scores the completion's prefix at the end
  of every step (a process reward model), through the same in-process or Ray-actor host as "reward_model".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from common.errors import UserError
from rewards.compose import call_with_fallback, reward_arguments
from rewards.registry import DetailedReward, RewardOutput, available_rewards, get_reward, register_reward
from rewards.reward_model import REWARD_MODEL_HOST
from rewards.spec import RewardSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepScore:
    """One step of a completion: `end` is the character offset just past it, `score` its reward."""

    end: int
    score: float


class StepReward(DetailedReward):
    """Base of step rewards: subclasses implement `score_steps` (options declared there, as keyword
    parameters, which is where the registry reads them)."""

    def score_steps(self, completions: list[str], **columns: Any) -> list[list[StepScore]]:
        raise NotImplementedError

    def score_with_details(self, completions: list[str], **columns: Any) -> list[RewardOutput]:
        outputs = []
        for steps in self.score_steps(completions, **columns):
            mean = sum(s.score for s in steps) / len(steps) if steps else 0.0
            outputs.append(RewardOutput(mean, f"{len(steps)} steps", {"steps": len(steps)}))
        return outputs


def is_step_reward(name: str) -> bool:
    """Whether the registered reward `name` scores steps."""
    return isinstance(get_reward(name), StepReward)


class StepScorer:
    """Scores the steps of completions with the step reward a RewardSpec names, its weight applied.

    Like the outcome rewards (rewards/compose.py), a step reward must not crash a run: if it raises on a
    batch it is retried sample by sample, and a sample that still raises gets no steps (its tokens then get
    only the outcome's share of the advantage), logged and counted in `errors`."""

    def __init__(self, spec: RewardSpec) -> None:
        if not is_step_reward(spec.name):
            raise UserError(f"reward {spec.name!r} does not score steps; step rewards: "
                            f"{', '.join(available_step_rewards())}")
        self.spec = spec
        self.fn: StepReward = get_reward(spec.name)
        self.errors = 0

    def __call__(self, completions: list[str], columns: dict[str, list]) -> list[list[StepScore]]:
        reward_arguments(self.spec, self.fn, columns)  # configuration mistakes stop the call here

        def no_steps(i: int, completion: str, error: str) -> list[list[StepScore]]:
            self.errors += 1
            log.warning("step reward %r failed on sample %d (%s); it gets no steps", self.spec.name, i, error)
            return [[]]

        return call_with_fallback(
            self.spec, lambda batch, arguments: self._weighted(self.fn.score_steps(batch, **arguments), len(batch)),
            completions, columns, no_steps)

    def _weighted(self, steps: list[list[StepScore]], expected: int) -> list[list[StepScore]]:
        if len(steps) != expected:
            raise ValueError(f"returned steps for {len(steps)} completions, not {expected}")
        return [[StepScore(int(s.end), self.spec.weight * float(s.score)) for s in row] for row in steps]

    def close(self) -> None:
        self.fn.close()


def available_step_rewards() -> list[str]:
    """Names of the registered step rewards, sorted."""
    return [name for name in available_rewards() if is_step_reward(name)]


# --------------------------------------------------------------------------------- arithmetic working

_SENTENCE = re.compile(r"[^.]*\.")
_HEADER = re.compile(r"(\d+)\s*([+\-*])\s*(\d+)\s*:\s*(.*)", re.DOTALL)  # "37+48: <first column>"
_COLUMN = re.compile(r"\s*(\d+(?:[+\-*]\d+)*)=(\d+)(?:, write (\d+)(?: carry (\d+))?|, borrow 1)?\.")
_CONCLUSION = re.compile(r"\s*So (\d+)\.")
_MAX_EXPRESSION_CHARS = 200  # a column is a handful of digits; longer "expressions" are not working


def _evaluate(expression: str) -> int:
    """Value of digits joined by + - * (already matched by _COLUMN), with * before + and -."""
    total = 0
    for sign, term in re.findall(r"([+\-]?)([\d*]+)", expression):
        product = 1
        for factor in term.split("*"):
            product *= int(factor)
        total += -product if sign == "-" else product
    return total


def _column_is_right(match: re.Match) -> bool:
    expression, value, written, carry = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if len(expression) > _MAX_EXPRESSION_CHARS or _evaluate(expression) != value:
        return False
    if written is None:
        return True  # the leftmost column writes its whole value; a borrow column states only its difference
    return int(written) == value % 10 and int(carry or 0) == value // 10


def arithmetic_step_scores(text: str) -> list[StepScore]:
    """The checkable claims of the column working in `text`, each scored 1.0 (right) or 0.0 (wrong)."""
    steps = []
    operation: int | None = None  # the true value of the operation whose columns are being written
    for sentence in _SENTENCE.finditer(text):
        body = sentence.group(0)
        header = _HEADER.search(body)
        if header:
            a, op, b = int(header.group(1)), header.group(2), int(header.group(3))
            operation = a + b if op == "+" else a - b if op == "-" else a * b
            body = header.group(4)
        column = _COLUMN.fullmatch(body)
        conclusion = _CONCLUSION.fullmatch(body)
        if column:
            steps.append(StepScore(sentence.end(), float(_column_is_right(column))))
        elif conclusion and operation is not None:
            steps.append(StepScore(sentence.end(), float(int(conclusion.group(1)) == operation)))
            operation = None
    return steps


class ArithmeticSteps(StepReward):
    """Steps of the arithmetic task's column working, verified by rule (no options, no columns)."""

    def score_steps(self, completions: list[str], **columns: Any) -> list[list[StepScore]]:
        return [arithmetic_step_scores(c) for c in completions]


# --------------------------------------------------------------------------------- process reward model

DEFAULT_STEP_PATTERN = r"\n+|(?<=[.!?])\s+"


def step_ends(text: str, pattern: str = DEFAULT_STEP_PATTERN) -> list[int]:
    """Character offsets just past each step of `text`, steps being separated by `pattern` (default: line
    breaks and sentence ends); the last step ends with the text. Empty steps are skipped."""
    ends, start = [], 0
    for match in re.finditer(pattern, text):
        if text[start : match.start()].strip():
            ends.append(match.start())
        start = match.end()
    if text[start:].strip():
        ends.append(len(text))
    return ends


class ProcessRewardModel(StepReward):
    """A reward model's score of the prefix ending at each step (prompt + completion[:end]).

    Options as "reward_model" (`model_path` required, `batch_size`, `max_length`, `dtype`, `ray_actor`,
    `num_gpus`), plus `step_pattern`: the regular expression between steps (default: line breaks and
    sentence ends). Column `prompt` (optional).
    """

    def score_steps(self, completions: list[str], model_path: str, step_pattern: str = DEFAULT_STEP_PATTERN,
                    batch_size: int = 8, max_length: int = 1024, dtype: str = "float32", ray_actor: bool = False,
                    num_gpus: float = 0.0, prompt: list[Any] | None = None, **columns: Any) -> list[list[StepScore]]:
        try:
            re.compile(step_pattern)
        except re.error as exc:
            raise UserError(f"process_reward_model: step_pattern {step_pattern!r} is not a regular expression: "
                            f"{exc}") from None
        prompts = [p if isinstance(p, str) else "" for p in (prompt or [""] * len(completions))]
        ends = [step_ends(c, step_pattern) for c in completions]
        flat_prompts = [p for p, e in zip(prompts, ends) for _ in e]
        prefixes = [c[:end] for c, e in zip(completions, ends) for end in e]
        init = {"model_dir": str(model_path), "dtype": dtype, "max_length": max_length}
        scores = iter(REWARD_MODEL_HOST.call("score", init, ray_actor, num_gpus, flat_prompts, prefixes, batch_size)
                      if prefixes else [])
        return [[StepScore(end, float(next(scores))) for end in e] for e in ends]

    def close(self) -> None:
        REWARD_MODEL_HOST.close()


arithmetic_steps = register_reward("arithmetic_steps")(ArithmeticSteps())
process_reward_model = register_reward("process_reward_model")(ProcessRewardModel())
