"""The "code" reward: program extraction, scoring modes, and errors that name the row."""

import json

import pytest

from common.errors import UserError
from rewards import get_reward
from rewards.code import extract_code

ADD = "a, b = map(int, input().split())\nprint(a + b)"
TESTS = {"inputs": ["1 2\n", "2 2\n"], "outputs": ["3\n", "5\n"]}


@pytest.mark.parametrize("completion, code", [
    ("```python\nprint(1)\n```", "print(1)"),
    ("<think>\n```python\nprint(0)\n```\n</think>\nFinal:\n```py\nprint(2)\n```\nDone.", "print(2)"),
    ("Use `x` and ``` inline ``` marks.\n```python\nprint(7)\n```", "print(7)"),
    ("```python\nprint(1)\n```\n```text\nnot code\n```", "print(1)"),
    ("```\nprint(3)\n```", "print(3)"),
    ("```\nprint(3)\n```\n```python\nprint(4)\n```\n```\nprint(5)\n```", "print(4)"),
    ("  ```Python3 \n    print(6)\n  ```", "    print(6)"),
    ("```python\nprint(1)\n```\n```python\nprint('cut off", "print(1)"),
    ("no code at all", None),
    ("```python\nnever closed", None),
    ("```javascript\nconsole.log(1)\n```", None),
])
def test_extract_code(completion, code):
    assert extract_code(completion) == code


def test_scores_and_reasons():
    reward = get_reward("code")
    completions = [f"```python\n{ADD}\n```", "I cannot solve it.", "```python\nprint(3)\n```",
                   "```python\nprint(\n```"]
    tests = [TESTS, json.dumps(TESTS), TESTS, TESTS]
    outputs = reward.score_with_details(completions, tests=tests)
    assert [(o.score, o.reason) for o in outputs] == [
        (0.5, "wrong_answer"), (0.0, "no_code"), (0.5, "wrong_answer"), (0.0, "compile_error")]
    assert outputs[0].details == {"passed": 1, "total": 2, "detail": "line 1: expected '5', got '4'"}
    assert reward(completions, tests=tests, mode="all_or_nothing") == [0.0, 0.0, 0.0, 0.0]
    right = {"inputs": ["1 2\n"], "outputs": ["3\n"]}
    assert reward([f"```python\n{ADD}\n```"], tests=[right], mode="all_or_nothing") == [1.0]


def test_assert_style_rows():
    row = {"test": "def check(candidate):\n    assert candidate(2) == 4\n", "entry_point": "double"}
    completions = ["```python\ndef double(x):\n    return 2 * x\n```", "```python\ndef double(x):\n    return x\n```"]
    assert get_reward("code")(completions, tests=[row, row]) == [1.0, 0.0]


def test_malformed_rows_name_the_row():
    reward = get_reward("code")
    with pytest.raises(UserError, match=r"row 1 \(task_id='b'\), column 'tests': 1 inputs but 0 outputs"):
        reward(["```python\npass\n```"] * 2, tests=[TESTS, {"inputs": ["x"], "outputs": []}], task_id=["a", "b"])
    with pytest.raises(UserError, match="row 0, column 'tests': not valid JSON"):
        reward(["x"], tests=["{oops"])
    with pytest.raises(UserError, match="mode must be one of"):
        reward(["x"], tests=[TESTS], mode="most")
    with pytest.raises(UserError, match="2 test sets for 1 completions"):
        reward(["x"], tests=[TESTS, TESTS])
