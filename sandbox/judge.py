"""Verdicts from raw outputs, computed in the grader (pure functions).

The sandbox reports only what it observed: exit status, signals, whether the supervisor killed the test
for time or output, whether the kernel killed it for memory, and the bytes the program wrote. Whatever a
program prints or returns about itself is data to compare, never a verdict: a "PASSED" on stdout is just
a wrong answer, and a returned value is rebuilt from plain data and compared with exact types.
"""

from __future__ import annotations

import json
import math
import signal

from sandbox.results import (MEMORY_LIMIT, OUTPUT_LIMIT, PASSED, RUNTIME_ERROR, TIMEOUT, WRONG_ANSWER,
                             TestResult)
from sandbox.runtime import codec
from sandbox.spec import TestSpec

_DETAIL_CHARS = 300


def judge(spec: TestSpec, raw_tests: list[dict]) -> list[TestResult]:
    """One TestResult per test of `spec`, from the sandbox's raw records."""
    return [judge_test(spec, index, raw) for index, raw in enumerate(raw_tests)]


def judge_test(spec: TestSpec, index: int, raw: dict) -> TestResult:
    time_s = float(raw.get("wall_s", 0.0))
    failure = _limit_or_crash(raw, check_exit=spec.mode != "assert")
    if failure:
        return TestResult(failure[0], time_s, failure[1])
    if spec.mode == "stdio":
        verdict, detail = _compare_stdout(raw.get("stdout", ""), spec.outputs[index])
    elif spec.mode == "call":
        verdict, detail = _compare_result(raw.get("result", ""), spec.outputs[index])
    else:
        verdict, detail = _read_report(raw)
    return TestResult(verdict, time_s, detail)


def _limit_or_crash(raw: dict, check_exit: bool) -> tuple[str, str] | None:
    """The verdict when the test hit a limit or (for the candidate's own process) crashed."""
    if raw.get("output_limit"):
        return OUTPUT_LIMIT, "the program wrote more than the output limit"
    if raw.get("timeout"):
        return TIMEOUT, f"no answer within the time limit (stopped after {raw.get('wall_s', 0):.2f}s)"
    stderr_tail = _last_line(raw.get("stderr", ""))
    # The stderr test only relabels a failure (an unchecked MemoryError under an address-space limit);
    # the cgroup's OOM-kill count is the trustworthy signal.
    if raw.get("oom") or (stderr_tail.startswith("MemoryError") and raw.get("exit") != 0):
        return MEMORY_LIMIT, "the program ran out of memory"
    if not check_exit:
        return None
    if raw.get("signal"):
        return RUNTIME_ERROR, f"killed by signal {_signal_name(raw['signal'])}"
    if raw.get("exit") not in (0, None):
        return RUNTIME_ERROR, f"exit status {raw['exit']}: {stderr_tail}"[:_DETAIL_CHARS]
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def normalize_stdout(text: str) -> list[str]:
    """Lines without trailing whitespace, trailing blank lines dropped: what judges usually compare."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _compare_stdout(actual: str, expected: str) -> tuple[str, str]:
    got, want = normalize_stdout(actual), normalize_stdout(expected)
    if got == want:
        return PASSED, ""
    for number, (g, w) in enumerate(zip(got, want), start=1):
        if g != w:
            return WRONG_ANSWER, f"line {number}: expected {w[:100]!r}, got {g[:100]!r}"
    return WRONG_ANSWER, f"expected {len(want)} line(s), got {len(got)}"


def values_equal(actual: object, expected: object) -> bool:
    """Equality with exact types (True is not 1, 1 is not 1.0), recursively. Tuples compare as lists,
    because expected values come from JSON, which has none; NaN equals NaN."""
    if type(actual) is tuple:
        actual = list(actual)
    if type(actual) is not type(expected):
        return False
    if type(expected) is list:
        return len(actual) == len(expected) and all(values_equal(a, e) for a, e in zip(actual, expected))
    if type(expected) is dict:
        return (all(type(k) is str for k in actual) and actual.keys() == expected.keys()
                and all(values_equal(actual[k], expected[k]) for k in expected))
    if type(expected) is float:
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    return actual == expected


def _compare_result(payload: str, expected: object) -> tuple[str, str]:
    if not payload:
        return RUNTIME_ERROR, "the function returned nothing (the program exited before returning)"
    try:
        actual = codec.decode_value(json.loads(payload))
    except (ValueError, RecursionError) as exc:
        return WRONG_ANSWER, f"the returned value could not be read back: {str(exc)[:100]}"
    if values_equal(actual, expected):
        return PASSED, ""
    return WRONG_ANSWER, f"expected {_short(expected)}, got {_short(actual)}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _read_report(raw: dict) -> tuple[str, str]:
    """The assert-style verdict, from the report of the test process (which runs the dataset's test code;
    the candidate's process cannot write to its pipe)."""
    try:
        report = json.loads(raw.get("report") or "null")
    except ValueError:
        report = None
    if not isinstance(report, dict):
        tail = _last_line(raw.get("stderr", ""))
        return RUNTIME_ERROR, f"the test ended without a report{': ' + tail if tail else ''}"[:_DETAIL_CHARS]
    message = str(report.get("message", ""))[:_DETAIL_CHARS]
    status = report.get("status")
    if status == "passed":
        return PASSED, ""
    if status == "failed":
        return WRONG_ANSWER, message
    tail = _last_line(raw.get("stderr", ""))
    if tail and "candidate" in message:
        message = f"{message} (candidate: {tail})"[:_DETAIL_CHARS]
    return RUNTIME_ERROR, message
