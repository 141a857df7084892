"""Acceptance on HumanEval: every canonical solution passes, and every one whose body is replaced by
`return None` fails. The prompt is the test's trusted setup (some tests call its helpers, e.g. `poly`)."""

from sandbox_checks import assert_nothing_left


def _tests(row: dict) -> dict:
    return {"test": row["test"], "entry_point": row["entry_point"], "setup": row["prompt"]}


def test_canonical_solutions_pass(sandbox, humaneval_rows):
    results = sandbox.run_many([(row["prompt"] + row["canonical_solution"], _tests(row)) for row in humaneval_rows])
    failed = {row["task_id"]: r.tests[0].detail for row, r in zip(humaneval_rows, results) if r.verdict != "passed"}
    assert len(humaneval_rows) == 164 and failed == {}
    assert_nothing_left(sandbox)


def test_return_none_bodies_fail(sandbox, humaneval_rows):
    results = sandbox.run_many([(row["prompt"] + "    return None\n", _tests(row)) for row in humaneval_rows])
    passed = [row["task_id"] for row, r in zip(humaneval_rows, results) if r.verdict == "passed"]
    assert passed == []
    assert {r.verdict for r in results} <= {"wrong_answer", "runtime_error"}
