"""Whole public test sets through the math checker: GSM8K golds verify against themselves and not against
gold + 1; MATH-500 reference solutions verify against their answer field."""

import json
from decimal import Decimal

from rewards.accuracy import CHECKER
from rewards.extract import extract_boxed
from rewards.math_equiv import Verdict


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _gsm8k_gold(solution: str) -> str:
    return solution.split("####")[-1].strip().replace(",", "")


def test_gsm8k_gold_boxed_verifies_and_gold_plus_one_fails(shared_data):
    golds = [_gsm8k_gold(r["answer"]) for r in _rows(shared_data / "gsm8k" / "test.jsonl")]
    assert len(golds) == 1319
    right = CHECKER.verdicts([f"so the answer is \\boxed{{{g}}}." for g in golds], golds, "boxed")
    failures = [(g, v) for g, v in zip(golds, right) if v[0] is not Verdict.CORRECT]
    assert failures == []
    off_by_one = [str(Decimal(g) + 1) for g in golds]
    wrong = CHECKER.verdicts([f"\\boxed{{{g}}}" for g in off_by_one], golds, "boxed")
    accepted = [(g, v) for g, v in zip(golds, wrong) if v[0] is not Verdict.WRONG]
    assert accepted == []


def test_math500_reference_solutions_verify_against_their_answers(shared_data):
    rows = _rows(shared_data / "math500" / "test.jsonl")
    assert len(rows) == 500
    # The acceptance check is on each solution's last box (a few solutions box an intermediate result too).
    finals = [f"\\boxed{{{extract_boxed(r['solution']).answers[-1]}}}" for r in rows]
    verdicts = CHECKER.verdicts(finals, [r["answer"] for r in rows], "boxed")
    exceptions = [(r["unique_id"], r["answer"], v) for r, v in zip(rows, verdicts) if v[0] is not Verdict.CORRECT]
    assert exceptions == []  # the acceptance bar is 99%; today there is no exception


def test_math500_whole_solutions_pass_the_several_boxes_policy(shared_data):
    # Eight solutions box more than once (the same value twice, or 15\frac{39}{40} and \frac{639}{40}):
    # the policy accepts them because every boxed answer is right.
    rows = _rows(shared_data / "math500" / "test.jsonl")
    verdicts = CHECKER.verdicts([r["solution"] for r in rows], [r["answer"] for r in rows], "boxed")
    assert [(r["unique_id"], v) for r, v in zip(rows, verdicts) if v[0] is not Verdict.CORRECT] == []
