"""Isolated execution of untrusted Python programs against tests, with a verdict per test.

    from sandbox import run_program
    result = run_program(code, {"inputs": ["1 2\n"], "outputs": ["3\n"]})
    result.verdict, result.passed, result.total, result.to_json()

Test formats, limits and verdicts: see sandbox/spec.py and sandbox/results.py. How the isolation works
(fork servers, namespaces, cgroups, Landlock, seccomp, an unprivileged uid): sandbox/runtime/zygote.py.
`grpo sandbox check` prints which isolation layers this machine gives.
"""

from sandbox.pool import (IsolationError, Sandbox, SandboxError, default_sandbox, isolation_report,
                          run_program)
from sandbox.results import VERDICTS, SandboxResult, TestResult
from sandbox.spec import Limits, TestSpec

__all__ = [
    "IsolationError", "Limits", "Sandbox", "SandboxError", "SandboxResult", "TestResult", "TestSpec",
    "VERDICTS", "default_sandbox", "isolation_report", "run_program",
]
