"""GSM8K and MATH-500 adapters over ../shared/data, the vendored fixtures and their license notices."""

import fnmatch
import json
import logging
import re
import tomllib
from pathlib import Path

import pytest

from grpo.data.adapters import FIXTURES_DIR, SHARED_DATA_ENV, gsm8k_final_answer, shared_data_dir
from grpo.data.loading import load_rows
from grpo.data.spec import DatasetSpec
from common.errors import UserError

REPO = Path(__file__).resolve().parents[3]
SHARED = shared_data_dir()
FULL_COUNTS = {("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319, ("math500", "test"): 500}
FIXTURE_ROWS = 50


def shared_file(name: str, split: str) -> Path:
    return SHARED / name / f"{split}.jsonl"


@pytest.mark.parametrize("solution, final", [
    ("Janet sells 16 - 3 - 4 = 9 duck eggs.\n#### 18", "18"),
    ("So he made 70,000 dollars.\n#### 70,000", "70000"),
    ("#### 1,234,567 ", "1234567"),
    ("She owes -5.\n#### -5", "-5"),
])
def test_gsm8k_final_answer(solution, final):
    assert gsm8k_final_answer(solution) == final


@pytest.mark.parametrize("solution", ["The answer is 18.", "#### ", "18 ####"])
def test_gsm8k_final_answer_needs_a_value_after_the_marker(solution):
    with pytest.raises(ValueError, match="####"):
        gsm8k_final_answer(solution)


@pytest.mark.parametrize("name, split", sorted(FULL_COUNTS))
def test_counts_from_shared_data_or_the_fixtures(name, split):
    dataset = load_rows(DatasetSpec(source=name, split=split))
    expected = FULL_COUNTS[name, split] if shared_file(name, split).is_file() else FIXTURE_ROWS
    assert len(dataset) == expected
    assert {"question", "answer", "solution"} <= set(dataset.column_names)


@pytest.mark.parametrize("split", ["train", "test"])
def test_gsm8k_rows(split):
    dataset = load_rows(DatasetSpec(source="gsm8k", split=split))
    assert all(re.fullmatch(r"-?\d+", answer) for answer in dataset["answer"])  # every final answer an integer
    source = shared_file("gsm8k", split) if shared_file("gsm8k", split).is_file() else FIXTURES_DIR / f"gsm8k_{split}.jsonl"
    first = json.loads(source.read_text().splitlines()[0])
    assert dataset[0]["question"] == first["question"]
    assert dataset[0]["solution"] + "\n#### " + dataset[0]["answer"] == first["answer"]
    assert "####" not in "".join(dataset["solution"])


def test_gsm8k_thousands_commas_are_removed_in_the_real_data():
    path = shared_file("gsm8k", "test") if shared_file("gsm8k", "test").is_file() else FIXTURES_DIR / "gsm8k_test.jsonl"
    raw = [json.loads(line)["answer"].split("#### ")[1] for line in path.read_text().splitlines()]
    loaded = load_rows(DatasetSpec(source="gsm8k", split="test"))["answer"]
    assert loaded == [answer.replace(",", "") for answer in raw]
    if path.parent != FIXTURES_DIR:
        assert sum("," in answer for answer in raw) == 14  # the test split has 14 such answers


def test_math500_rows_keep_answer_as_is_and_take_question_from_problem():
    path = shared_file("math500", "test") if shared_file("math500", "test").is_file() else FIXTURES_DIR / "math500_test.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    dataset = load_rows(DatasetSpec(source="math500", split="test"))
    assert dataset["answer"] == [r["answer"] for r in raw]
    assert dataset["question"] == [r["problem"] for r in raw]
    assert dataset[0]["unique_id"] == raw[0]["unique_id"] and dataset[0]["level"] == raw[0]["level"]
    assert "problem" not in dataset.column_names


@pytest.mark.parametrize("name, split", sorted(FULL_COUNTS))
def test_fixtures_are_the_first_fifty_upstream_lines(name, split):
    fixture = (FIXTURES_DIR / f"{name}_{split}.jsonl").read_bytes()
    assert fixture.count(b"\n") == FIXTURE_ROWS
    if shared_file(name, split).is_file():
        assert shared_file(name, split).read_bytes().startswith(fixture)


def test_fixture_fallback_when_shared_data_is_absent(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING, logger="grpo.data.adapters"):
        gsm8k = load_rows(DatasetSpec(source="gsm8k", split="test"))
        math500 = load_rows(DatasetSpec(source="math500", split="test", n=7))
    assert len(gsm8k) == FIXTURE_ROWS and len(math500) == 7
    assert "vendored subset" in caplog.text and str(tmp_path / "absent" / "gsm8k" / "test.jsonl") in caplog.text


def test_fixture_licenses_are_beside_them_and_packaged():
    assert "MIT License" in (FIXTURES_DIR / "gsm8k_LICENSE").read_text()
    assert "Copyright (c) 2021 Dan Hendrycks" in (FIXTURES_DIR / "math500_LICENSE").read_text()
    assert "MATH-500" in (FIXTURES_DIR / "math500_README.md").read_text()
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["grpo"]
    for path in FIXTURES_DIR.iterdir():
        relative = path.relative_to(REPO / "grpo").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_broken_gsm8k_row_names_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "gsm8k").mkdir()
    broken = tmp_path / "gsm8k" / "test.jsonl"
    broken.write_text(json.dumps({"question": "q", "answer": "1 + 1 = 2\n#### 2"}) + "\n"
                      + json.dumps({"question": "q", "answer": "no final answer"}) + "\n")
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    with pytest.raises(UserError, match=re.escape(f"{broken}: line 2: GSM8K answer has no '#### <final answer>' line")):
        load_rows(DatasetSpec(source="gsm8k", split="test"))
