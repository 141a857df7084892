"""The sandbox on ordinary programs: the three test formats, the usual ways to read input, verdicts."""

import pytest

from sandbox import Limits, TestSpec, run_program

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_TESTS = {"inputs": ["1 2\n", "10 20\n", "5 5\n"], "outputs": ["3\n", "30\n", "11\n"]}


def test_stdio_verdict_per_test(sandbox):
    result = sandbox.run(ADD, ADD_TESTS)
    assert [t.verdict for t in result.tests] == ["passed", "passed", "wrong_answer"]
    assert (result.verdict, result.passed, result.total) == ("wrong_answer", 2, 3)
    assert result.tests[2].detail == "line 1: expected '11', got '10'"
    assert all(t.time_s > 0 for t in result.tests) and result.wall_s > 0
    assert '"verdict": "wrong_answer"' in result.to_json()


@pytest.mark.parametrize("program", [
    "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
    "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",
    "print(sum(map(int, open(0).read().split())))",
    "import os\nprint(sum(map(int, os.read(0, 1 << 16).split())))",
    "import sys\ninput = sys.stdin.readline\nprint(sum(map(int, input().split())))",
    # Competitive programmers solve in a thread with a big stack; the interpreter waits for it.
    "import threading, sys\nthreading.stack_size(1 << 26)\nsys.setrecursionlimit(100000)\n"
    "def f(n): return 0 if n == 0 else 1 + f(n - 1)\n"
    "def main():\n    a, b = map(int, input().split())\n    print(a + b + f(20000) - 20000)\n"
    "threading.Thread(target=main).start()",
])
def test_ways_of_reading_input(sandbox, program):
    assert sandbox.run(program, {"inputs": ["1 2\n"] * 2, "outputs": ["3"] * 2}).verdict == "passed"


def test_each_test_starts_fresh(sandbox):
    program = ("import os\nx = globals().get('x', 0) + 1\nfresh = not os.path.exists('/tmp/mark')\n"
               "open('/tmp/mark', 'w').close()\nprint(x, fresh, os.getcwd())")
    result = sandbox.run(program, {"inputs": [""] * 3, "outputs": ["1 True /tmp"] * 3})
    assert result.verdict == "passed", result.tests


def test_programs_that_close_or_keep_their_descriptors(sandbox):
    """What one test does to fds 0-2 (close them, keep a file object on them) must not reach the next test's
    descriptors, which may be given the same numbers."""
    keeps_stdin = "import os\nf = open(0)\nprint(f.read().strip())\nos.close(2)"
    assert sandbox.run(keeps_stdin, {"inputs": ["a", "b", "c"], "outputs": ["a", "b", "c"]}).verdict == "passed"
    closes_all = "import os\nos.close(0)\nos.close(1)\ndef f(x):\n    return x"
    tests = {"inputs": [[1], [2], [3]], "outputs": [1, 2, 3], "fn_name": "f"}
    assert sandbox.run(closes_all, tests).verdict == "passed"


def test_large_input_and_output(sandbox):
    data = " ".join(str(i) for i in range(200_000))
    program = "import sys\nfor x in sys.stdin.read().split():\n    print(x)"
    result = sandbox.run(program, {"inputs": [data], "outputs": ["\n".join(data.split())]},
                         Limits(output_bytes=4 << 20))
    assert result.verdict == "passed"


def test_exit_status_and_exceptions(sandbox):
    tests = {"inputs": [""], "outputs": [""]}
    assert sandbox.run("import sys\nsys.exit(0)", tests).verdict == "passed"
    result = sandbox.run("import sys\nsys.exit(3)", tests)
    assert (result.verdict, result.tests[0].detail) == ("runtime_error", "exit status 3: ")
    result = sandbox.run("raise ValueError('boom')", tests)
    assert result.verdict == "runtime_error" and "ValueError: boom" in result.tests[0].detail


def test_compile_error(sandbox):
    result = sandbox.run("def f(:\n", ADD_TESTS)
    assert result.verdict == "compile_error" and result.passed == 0
    assert all(t.verdict == "compile_error" for t in result.tests)
    assert "SyntaxError" in result.tests[0].detail


def test_function_call_formats(sandbox):
    apps = {"inputs": [[1, 2], [[1], [2]]], "outputs": [3, [1, 2]], "fn_name": "add"}
    assert sandbox.run("def add(a, b):\n    return a + b", apps).verdict == "passed"
    lcb = {"inputs": ["[3, 1, 2]", "[]"], "outputs": ["[1, 2, 3]", "[]"], "fn_name": "sortList"}
    solution = "class Solution:\n    def sortList(self, nums):\n        return sorted(nums)"
    assert sandbox.run(solution, lcb).verdict == "passed"
    tuples = {"inputs": [[2]], "outputs": [[2, 4]], "fn_name": "f"}
    assert sandbox.run("def f(x):\n    return (x, 2 * x)", tuples).verdict == "passed"


def test_function_call_exact_types(sandbox):
    tests = {"inputs": [[1]], "outputs": [2], "fn_name": "f"}
    assert sandbox.run("def f(x):\n    return 2.0", tests).verdict == "wrong_answer"
    assert sandbox.run("def f(x):\n    return True", {**tests, "outputs": [1]}).verdict == "wrong_answer"
    result = sandbox.run("def g(x):\n    return 2", tests)
    assert result.verdict == "runtime_error" and "no function or Solution method named 'f'" in result.tests[0].detail


HUMANEVAL_STYLE = {
    "setup": "def helper(x):\n    return x * 10\n",
    "test": "def check(candidate):\n    assert candidate(1) == 10\n    assert candidate(2) == helper(2)\n"
            "    try:\n        candidate(-1)\n    except ValueError:\n        pass\n    else:\n        assert False\n",
    "entry_point": "scale",
}


def test_assert_style(sandbox):
    good = "def scale(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x * 10"
    assert sandbox.run(good, HUMANEVAL_STYLE).verdict == "passed"
    result = sandbox.run("def scale(x):\n    return x * 10", HUMANEVAL_STYLE)
    assert result.verdict == "wrong_answer" and "<test> line 9" in result.tests[0].detail
    mbpp = {"test": "assert remove_char('hello', 'l') == 'heo'\nassert remove_char('a', 'a') == ''",
            "entry_point": "remove_char"}
    assert sandbox.run("def remove_char(s, c):\n    return s.replace(c, '')", mbpp).verdict == "passed"
    missing = sandbox.run("def other(s, c):\n    return s", mbpp)
    assert missing.verdict == "runtime_error" and "remove_char" in missing.tests[0].detail


def test_output_limit(sandbox):
    result = sandbox.run("print('x' * 5000)", {"inputs": [""], "outputs": [""]}, Limits(output_bytes=1000))
    assert result.verdict == "output_limit"


def test_run_many_keeps_order(sandbox):
    items = [(f"print({i})", {"inputs": [""], "outputs": [str(i)]}) for i in range(12)]
    items[5] = ("print(-1)", items[5][1])
    verdicts = [r.verdict for r in sandbox.run_many(items)]
    assert verdicts == ["passed"] * 5 + ["wrong_answer"] + ["passed"] * 6


def test_run_program_uses_the_shared_pool():
    result = run_program(ADD, TestSpec.parse(ADD_TESTS))
    assert result.passed == 2


def test_program_too_long(sandbox):
    result = sandbox.run("x = 1\n" * 200_000, ADD_TESTS)
    assert result.verdict == "compile_error" and "longer than" in result.tests[0].detail
