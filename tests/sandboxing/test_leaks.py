"""Thousands of runs leave the pool as it was: no descriptor, process or memory creep (the benchmark,
bench/bench_sandbox.py, does the same over 10,000 runs)."""

import pytest

from sandbox import Sandbox

PROGRAM = "import sys\nn = int(input())\nprint(n * n)\nif n % 7 == 0:\n    sys.exit(1)"
TESTS = {"inputs": [f"{i}\n" for i in range(10)], "outputs": [f"{i * i}\n" for i in range(10)]}


@pytest.mark.slow
def test_no_leaks_over_thousands_of_runs():
    with Sandbox(workers=2) as pool:
        pool.run_many([(PROGRAM, TESTS)] * 50)
        before = pool.resources()
        for _ in range(4):
            results = pool.run_many([(PROGRAM, TESTS)] * 500)
            assert {(r.passed, r.tests[0].verdict, r.tests[7].verdict) for r in results} == {
                (8, "runtime_error", "runtime_error")}
        after = pool.resources()
    for key in ("server_fds", "server_children", "sandbox_processes", "grader_fds"):
        assert after[key] == before[key], (key, before, after)
    assert after["server_rss_kb"] < before["server_rss_kb"] + 4096, (before, after)
