"""Verdicts and the result objects the sandbox returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PASSED = "passed"
WRONG_ANSWER = "wrong_answer"
RUNTIME_ERROR = "runtime_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
COMPILE_ERROR = "compile_error"
VERDICTS = (PASSED, WRONG_ANSWER, RUNTIME_ERROR, TIMEOUT, MEMORY_LIMIT, OUTPUT_LIMIT, COMPILE_ERROR)


@dataclass
class TestResult:
    """One test: its verdict, the wall-clock time the program ran, and a short human-readable detail."""

    __test__ = False  # not a pytest test class, despite the name

    verdict: str
    time_s: float = 0.0
    detail: str = ""


@dataclass
class SandboxResult:
    """All tests of one program. `verdict` is "passed" when every test passed, else the first failure's."""

    verdict: str
    tests: list[TestResult] = field(default_factory=list)
    passed: int = 0
    total: int = 0
    wall_s: float = 0.0

    @classmethod
    def from_tests(cls, tests: list[TestResult], wall_s: float) -> "SandboxResult":
        passed = sum(t.verdict == PASSED for t in tests)
        failures = [t.verdict for t in tests if t.verdict != PASSED]
        return cls(verdict=failures[0] if failures else PASSED, tests=tests, passed=passed, total=len(tests),
                   wall_s=wall_s)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)
