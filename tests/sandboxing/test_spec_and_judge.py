"""Test-set parsing and the verdict functions (pure: no sandbox process)."""

import json

import pytest

from common.errors import UserError
from sandbox import Limits, TestSpec
from sandbox.judge import judge_test, normalize_stdout, values_equal
from sandbox.pool import IsolationError, check_isolation


# --- parsing ------------------------------------------------------------------------------------------
def test_stdio_format():
    spec = TestSpec.parse({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    assert (spec.mode, spec.total) == ("stdio", 1)
    assert "outputs" not in json.dumps(spec.job()) and "3\n" not in json.dumps(spec.job())


def test_apps_call_format_keeps_values():
    spec = TestSpec.parse({"inputs": [[1, [2, 3]], ["a"]], "outputs": [[5], "b"], "fn_name": "f"})
    assert spec.mode == "call" and spec.inputs == [[1, [2, 3]], ["a"]] and spec.outputs == [[5], "b"]


def test_livecodebench_call_format_reads_json_lines():
    spec = TestSpec.parse(json.dumps({"inputs": ['[1, 2]\n3'], "outputs": ['"x"'], "fn_name": "f"}))
    assert spec.inputs == [[[1, 2], 3]] and spec.outputs == ["x"]


def test_assert_format_and_expected_values_never_in_job():
    spec = TestSpec.parse({"test": "def check(c):\n    assert c(1) == 'SECRET'\n", "entry_point": "f"})
    assert spec.mode == "assert" and spec.total == 1
    spec = TestSpec.parse({"inputs": [[1]], "outputs": ["SECRET"], "fn_name": "f"})
    assert "SECRET" not in json.dumps(spec.job())


@pytest.mark.parametrize("data, message", [
    ("{nope", "not valid JSON"),
    ([1, 2], "expected an object"),
    ({"inputs": ["a"]}, "must both be lists"),
    ({"inputs": ["a"], "outputs": []}, "1 inputs but 0 outputs"),
    ({"inputs": [], "outputs": []}, "no test cases"),
    ({"inputs": [1], "outputs": ["1"]}, r"inputs\[0\]: stdin/stdout tests need strings"),
    ({"inputs": [[1]], "outputs": [1], "fn_name": "not a name"}, "fn_name"),
    ({"inputs": [5], "outputs": [1], "fn_name": "f"}, r"inputs\[0\]: expected a list"),
    ({"inputs": ["{"], "outputs": ["1"], "fn_name": "f"}, "test 0: arguments or output are not valid JSON"),
    ({"inputs": [[{1, 2}]], "outputs": [1], "fn_name": "f"}, "set is not JSON data"),
    ({"inputs": [[1]], "outputs": [{1: 2}], "fn_name": "f"}, "dict keys must be strings"),
    ({"test": "assert (", "entry_point": "f"}, "does not compile"),
    ({"test": "pass", "entry_point": "1f"}, "entry_point"),
    ({"test": "pass", "entry_point": "f", "extra": 1}, "unknown key"),
    ({"foo": 1}, "expected keys"),
])
def test_malformed_tests_name_the_problem_and_where(data, message):
    with pytest.raises(UserError, match=message) as info:
        TestSpec.parse(data, where="row 7")
    assert str(info.value).startswith("row 7")


@pytest.mark.parametrize("field, value", [("timeout_s", 0), ("memory_mb", -1), ("memory_mb", 1.5),
                                          ("disk_mb", True), ("timeout_s", float("inf"))])
def test_bad_limits(field, value):
    with pytest.raises(UserError, match=field):
        Limits(**{field: value})


# --- comparisons ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("actual, expected, equal", [
    (1, 1, True), (True, 1, False), (1, True, False), (1.0, 1, False), (1, 1.0, False),
    ((1, 2), [1, 2], True), ([1, (2, 3)], [1, [2, 3]], True), ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1.0}, False), ({1: 1}, {"1": 1}, False), ("1", 1, False), (None, 0, False),
    (float("nan"), float("nan"), True), ({1, 2}, [1, 2], False), (b"a", "a", False),
])
def test_values_equal_uses_exact_types(actual, expected, equal):
    assert values_equal(actual, expected) is equal


def test_stdout_normalisation():
    assert normalize_stdout("1 2  \r\n3\n\n\n") == ["1 2", "3"]
    assert normalize_stdout("  x") == ["  x"]


def _raw(**fields):
    return {"wall_s": 0.01, "exit": 0, "signal": None, "timeout": False, "output_limit": False, "oom": False,
            "stdout": "", "stderr": "", **fields}


STDIO = TestSpec.parse({"inputs": [""], "outputs": ["3\n"]})
CALL = TestSpec.parse({"inputs": [[1]], "outputs": [[1, 2]], "fn_name": "f"})
ASSERT = TestSpec.parse({"test": "pass", "entry_point": "f"})


@pytest.mark.parametrize("spec, raw, verdict", [
    (STDIO, _raw(stdout="3"), "passed"),
    (STDIO, _raw(stdout="PASSED\nAll tests passed"), "wrong_answer"),
    (STDIO, _raw(stdout="3", exit=1), "runtime_error"),
    (STDIO, _raw(stdout="3", exit=None, signal=11), "runtime_error"),
    (STDIO, _raw(stdout="3", timeout=True), "timeout"),
    (STDIO, _raw(stdout="3", output_limit=True), "output_limit"),
    (STDIO, _raw(stdout="3", oom=True, exit=None, signal=9), "memory_limit"),
    (STDIO, _raw(exit=1, stderr="Traceback ...\nMemoryError\n"), "memory_limit"),
    (STDIO, _raw(stdout="3", stderr="MemoryError"), "passed"),  # a message on stderr is only a message
    (CALL, _raw(result='{"tuple": [1, 2]}'), "passed"),
    (CALL, _raw(result="[1, 2.0]"), "wrong_answer"),
    (CALL, _raw(result='{"always_equal": true}'), "wrong_answer"),
    (CALL, _raw(result="[[[[" * 200), "wrong_answer"),
    (CALL, _raw(result=""), "runtime_error"),
    (ASSERT, _raw(report='{"status": "passed"}', exit=None, signal=9), "passed"),
    (ASSERT, _raw(report='{"status": "failed", "message": "AssertionError"}'), "wrong_answer"),
    (ASSERT, _raw(report='{"status": "error", "message": "ValueError"}'), "runtime_error"),
    (ASSERT, _raw(report=""), "runtime_error"),
])
def test_judge_verdicts(spec, raw, verdict):
    assert judge_test(spec, 0, raw).verdict == verdict


# --- refusing weak isolation ---------------------------------------------------------------------------
LAYERS = {"active": {"landlock": True, "seccomp": False}, "missing": {"seccomp": "no filter for riscv64"}}


def test_missing_layer_is_refused_with_the_reason():
    with pytest.raises(IsolationError, match="seccomp \\(no filter for riscv64\\).*allow-weak-isolation"):
        check_isolation(LAYERS, allow_weak_isolation=False)


def test_opting_in_warns_loudly(capsys):
    check_isolation(LAYERS, allow_weak_isolation=True)
    assert "WEAK ISOLATION" in capsys.readouterr().err
    check_isolation({"active": {"landlock": True}, "missing": {}}, allow_weak_isolation=False)
