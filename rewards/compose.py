"""The weighted sum of a recipe's rewards, with every component and reason kept per sample.

A reward must never crash a run, and must never fail silently either. So when a reward raises for a
batch, it is retried one sample at a time; a sample that still raises gets FALLBACK_SCORE (0.0: no
credit, the same as a wrong answer, so a broken reward cannot push the policy anywhere) with reason
"error", and an error record (reward, sample index, exception, completion) is kept and logged.
Configuration mistakes are not the sample's fault and stop the call with a UserError instead: a
missing column, an option that collides with a column, a reward raising UserError itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from common.errors import UserError
from rewards.registry import RewardFn, RewardOutput, get_reward, reward_parameters
from rewards.spec import RewardSpec

log = logging.getLogger(__name__)

FALLBACK_SCORE = 0.0


def repeat_columns(rows: list[dict], times: int) -> dict[str, list]:
    """Dataset columns with each row's value repeated for each of its `times` completions (reward input)."""
    return {key: [row.get(key) for row in rows for _ in range(times)] for key in rows[0]}


@dataclass
class ComposedRewards:
    """Per-sample totals (weighted sums) and, per reward name, the unweighted scores and reasons."""

    totals: list[float]
    components: dict[str, list[float]] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[ComposedRewards]) -> ComposedRewards:
        """The scores of `parts` (each from one call, e.g. one group scored as it finished) as if their
        completions had been scored in one call, in this order: error records' indices are shifted to match."""
        result = cls(totals=[t for part in parts for t in part.totals])
        offset = 0
        for part in parts:
            for name, scores in part.components.items():
                result.components.setdefault(name, []).extend(scores)
            for name, reasons in part.reasons.items():
                result.reasons.setdefault(name, []).extend(reasons)
            result.errors.extend({**error, "index": error["index"] + offset} for error in part.errors)
            offset += len(part.totals)
        return result

    def sample(self, index: int) -> dict[str, Any]:
        """One sample's total, components and reasons, ready to log as a JSON object."""
        return {
            "total": self.totals[index],
            "components": {name: scores[index] for name, scores in self.components.items()},
            "reasons": {name: reasons[index] for name, reasons in self.reasons.items()},
        }


def reward_arguments(spec: RewardSpec, fn: RewardFn, columns: dict[str, list]) -> dict[str, Any]:
    """The keyword arguments of one reward call: the dataset columns and the spec's options. An option that
    collides with a column, or a required parameter neither provides, is a UserError naming it."""
    collisions = sorted(set(spec.kwargs) & set(columns))
    if collisions:
        raise UserError(
            f"reward {spec.name!r}: option(s) {', '.join(collisions)} collide with dataset columns"
        )
    arguments = {**columns, **spec.kwargs}
    required = [p.name for p in reward_parameters(fn).values() if p.default is p.empty]
    missing = [name for name in required if name not in arguments]
    if missing:
        raise UserError(
            f"reward {spec.name!r} needs {', '.join(map(repr, missing))}: a dataset column or an option "
            f"in its kwargs (columns given: {', '.join(sorted(columns)) or 'none'})"
        )
    return arguments


def call_with_fallback(spec: RewardSpec, call: Callable[[list[str], dict[str, Any]], list], completions: list[str],
                       columns: dict[str, list], fallback: Callable[[int, str, str], list]) -> list:
    """`call(completions, arguments)` on the whole batch, one result per completion. If it raises (anything but
    a UserError, which is the configuration's fault and propagates) it is retried one sample at a time, and a
    sample that still raises gets `fallback(index, completion, error)` instead: a reward must never crash a
    run, nor fail silently."""
    try:
        return call(completions, {**columns, **spec.kwargs})
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  any failure of a reward is retried sample by sample
        log.warning("reward %r failed on a batch of %d (%s: %s); retrying per sample",
                    spec.name, len(completions), type(exc).__name__, exc)
    results = []
    for i, completion in enumerate(completions):
        one = {**{k: [v[i]] for k, v in columns.items()}, **spec.kwargs}
        try:
            results.extend(call([completion], one))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001  documented fallback: the caller scores it and records it
            results.extend(fallback(i, completion, f"{type(exc).__name__}: {exc}"))
    return results


def _run(fn: RewardFn, completions: list[str], arguments: dict[str, Any]) -> list[RewardOutput]:
    """Call a reward (with details when it offers them) and check what it returned."""
    if hasattr(fn, "score_with_details"):
        outputs = list(fn.score_with_details(completions, **arguments))
    else:
        outputs = [RewardOutput(float(score)) for score in fn(completions, **arguments)]
    if len(outputs) != len(completions):
        raise ValueError(f"returned {len(outputs)} scores for {len(completions)} completions")
    checked = []
    for output in outputs:
        score = float(output.score)  # numpy scalars are fine; None or a string raises here
        if not math.isfinite(score):
            raise ValueError(f"returned a non-finite score {score}")
        checked.append(RewardOutput(score, output.reason, output.details))
    return checked


class RewardComposer:
    """Scores completions with every reward of `specs` and sums them with the specs' weights."""

    def __init__(self, specs: list[RewardSpec]) -> None:
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UserError(f"reward(s) listed twice: {', '.join(duplicates)}; give each reward once")
        if not specs:
            raise UserError("no rewards given: a run needs at least one reward spec")
        self.specs = list(specs)
        self._fns = {spec.name: get_reward(spec.name) for spec in specs}

    def _score(
        self, spec: RewardSpec, completions: list[str], columns: dict[str, list], errors: list[dict[str, Any]]
    ) -> list[RewardOutput]:
        fn = self._fns[spec.name]
        reward_arguments(spec, fn, columns)  # configuration mistakes stop the call here

        def fallback(i: int, completion: str, error: str) -> list[RewardOutput]:
            errors.append({"reward": spec.name, "index": i, "error": error, "completion": completion})
            log.warning("reward %r failed on sample %d (%s); scored %s. Completion: %.500r",
                        spec.name, i, error, FALLBACK_SCORE, completion)
            return [RewardOutput(FALLBACK_SCORE, "error", {"error": error})]

        return call_with_fallback(spec, lambda batch, arguments: _run(fn, batch, arguments), completions, columns,
                                  fallback)

    def __call__(self, completions: list[str], columns: dict[str, list]) -> ComposedRewards:
        """Score `completions`; `columns` holds one list per dataset column, aligned with them."""
        for name, values in columns.items():
            if len(values) != len(completions):
                raise UserError(f"column {name!r} has {len(values)} values for {len(completions)} completions")
        result = ComposedRewards(totals=[0.0] * len(completions))
        for spec in self.specs:
            outputs = self._score(spec, completions, columns, result.errors)
            result.components[spec.name] = [o.score for o in outputs]
            result.reasons[spec.name] = [o.reason for o in outputs]
            result.totals = [t + spec.weight * o.score for t, o in zip(result.totals, outputs)]
        return result

    def close(self) -> None:
        """Release what the rewards hold (the math checker's worker processes, sandboxes)."""
        for fn in {id(fn): fn for fn in self._fns.values()}.values():
            if hasattr(fn, "close"):
                fn.close()

    def __enter__(self) -> RewardComposer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
