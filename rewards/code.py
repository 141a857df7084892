"""The code reward ("code"): run the completion's program against the row's tests in the sandbox.

DeepSeek-R1's accuracy reward for code: the program is the last fenced Python block of the completion
(```python, ```py or ```python3; an untagged ``` block only if there is no tagged one), it runs isolated
(sandbox/), and the score is the fraction of tests passed or, with mode "all_or_nothing", 1.0 only if all
pass.

Column `tests`: one test set per row, a dict or its JSON text, in any format the sandbox accepts
(stdin/stdout, function call, or assert style; see sandbox/spec.py). A malformed test set stops the call
with a UserError naming the row. Options: mode ("fraction" | "all_or_nothing"), timeout_s (per test,
default 4), memory_mb (default 512), allow_weak_isolation (run where an isolation layer is missing; only
for trusted models and data). Reasons: the sandbox verdict (passed, wrong_answer, runtime_error, timeout,
memory_limit, output_limit, compile_error), or no_code.
"""

from __future__ import annotations

from typing import Any

from common.errors import UserError
from rewards.registry import DetailedReward, RewardOutput, register_reward
from sandbox import Limits, TestSpec, default_sandbox

MODES = ("fraction", "all_or_nothing")
PYTHON_TAGS = ("python", "py", "python3", "py3")
ID_COLUMNS = ("task_id", "question_id", "problem_id", "id")  # named in errors, when the dataset has one


def extract_code(completion: str) -> str | None:
    """The last fenced Python block (tagged python/py/python3, else untagged), or None. An unclosed fence
    (a completion cut off mid-block) is not a block. One pass over the lines: no regex backtracking on
    untrusted text."""
    tagged: str | None = None
    untagged: str | None = None
    info: str | None = None  # the open block's info string; None outside a block
    body: list[str] = []
    for line in completion.split("\n"):
        stripped = line.strip()
        if info is None:
            if stripped.startswith("```"):
                info, body = stripped[3:].strip().lower(), []
        elif stripped == "```":
            if info.split(" ")[0] in PYTHON_TAGS:
                tagged = "\n".join(body)
            elif not info:
                untagged = "\n".join(body)
            info = None
        else:
            body.append(line)
    return tagged if tagged is not None else untagged


def _row_name(columns: dict[str, Any], index: int) -> str:
    for name in ID_COLUMNS:
        values = columns.get(name)
        if isinstance(values, list) and index < len(values):
            return f"row {index} ({name}={values[index]!r})"
    return f"row {index}"


class CodeReward(DetailedReward):
    """Pass fraction (or all-or-nothing) of the completion's last Python block on the row's tests."""

    def score_with_details(
        self,
        completions: list[str],
        tests: list[Any],
        mode: str = "fraction",
        timeout_s: float = 4.0,
        memory_mb: int = 512,
        allow_weak_isolation: bool = False,
        **columns: Any,
    ) -> list[RewardOutput]:
        if mode not in MODES:
            raise UserError(f"code reward: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if len(tests) != len(completions):
            raise UserError(f"code reward: {len(tests)} test sets for {len(completions)} completions")
        specs = [TestSpec.parse(row, where=f"code reward: {_row_name(columns, i)}, column 'tests'")
                 for i, row in enumerate(tests)]
        limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb)
        programs = [extract_code(completion) for completion in completions]
        runnable = [i for i, code in enumerate(programs) if code is not None]
        results = default_sandbox(allow_weak_isolation).run_many([(programs[i], specs[i]) for i in runnable],
                                                                 limits)
        outputs = [RewardOutput(0.0, "no_code", {"detail": "no fenced Python block in the completion"})
                   for _ in completions]
        for i, result in zip(runnable, results):
            score = result.passed / result.total if mode == "fraction" else float(result.verdict == "passed")
            failure = next((t.detail for t in result.tests if t.verdict != "passed"), "")
            outputs[i] = RewardOutput(score, result.verdict,
                                      {"passed": result.passed, "total": result.total, "detail": failure})
        return outputs


code = register_reward("code")(CodeReward())
