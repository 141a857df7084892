"""DatasetSpec validation: every mistake names its field and says what would be valid."""

import pytest
from pydantic import ValidationError

from grpo.data.spec import DatasetSpec, source_kind


def errors_of(data: dict, context: dict | None = None) -> dict[str, str]:
    """field -> message of every validation error."""
    with pytest.raises(ValidationError) as caught:
        DatasetSpec.model_validate(data, context=context)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


@pytest.mark.parametrize("source, kind", [
    ("task:arithmetic", "task"), ("task:countdown", "task"), ("gsm8k", "adapter"), ("math500", "adapter"),
    ("train.jsonl", "file"), ("data/train.JSONL", "file"), ("x.json", "file"), ("/abs/x.parquet", "file"),
    ("./data", "file"), ("../x", "file"), ("~/x.jsonl", "file"),
    ("@rejection", "stage"), ("openai/gsm8k", "hub"), ("HuggingFaceH4/MATH-500", "hub"), ("squad", "hub"),
])
def test_source_kinds(source, kind):
    assert source_kind(source) == kind


def test_valid_specs_and_defaults(tmp_path):
    spec = DatasetSpec(source="task:arithmetic", n=10, difficulty=3)
    assert (spec.kind, spec.task, spec.split, spec.seed, spec.shuffle, spec.columns) == (
        "task", "arithmetic", "train", 0, False, {})
    assert DatasetSpec(source="gsm8k", split="test").kind == "adapter"
    assert DatasetSpec(source="openai/gsm8k", config="main", columns={"question": "q"}).kind == "hub"
    (tmp_path / "rows.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    spec = DatasetSpec.model_validate({"source": "rows.jsonl", "n": 5}, context={"base_dir": tmp_path})
    assert spec.local_path(tmp_path) == tmp_path / "rows.jsonl"


def test_unknown_task_lists_the_valid_ones():
    message = errors_of({"source": "task:foo", "n": 3})["source"]
    assert "task:foo" in message and "task:arithmetic" in message and "task:countdown" in message


def test_unknown_field_is_named():
    assert "extra" in errors_of({"source": "gsm8k", "sorce": "x"})["sorce"].lower()


def test_empty_source():
    assert "source is empty" in errors_of({"source": " "})["source"]


def test_task_needs_n_and_n_must_be_positive():
    assert "n is required" in errors_of({"source": "task:countdown"})["n"]
    assert "greater than or equal to 1" in errors_of({"source": "task:countdown", "n": 0})["n"]
    assert "greater than or equal to 0" in errors_of({"source": "gsm8k", "seed": -1})["seed"]


def test_difficulty_range_and_scope():
    assert "less than or equal to 5" in errors_of({"source": "task:arithmetic", "n": 1, "difficulty": 6})["difficulty"]
    message = errors_of({"source": "task:countdown", "n": 1, "difficulty": 2})["difficulty"]
    assert "task:arithmetic only" in message and "task:countdown" in message


def test_adapter_splits():
    message = errors_of({"source": "math500"})["split"]  # the default split, train, is not in MATH-500
    assert "'test'" in message and "'train'" in message
    assert "'validation'" in errors_of({"source": "gsm8k", "split": "validation"})["split"]


def test_columns_only_for_files_and_hub():
    assert "columns applies to files, stage outputs and hub datasets" in errors_of(
        {"source": "gsm8k", "columns": {"question": "problem"}})["columns"]
    assert "must not be empty" in errors_of({"source": "a.jsonl", "columns": {"question": ""}})["columns"]


def test_config_only_for_hub():
    assert "hub datasets only" in errors_of({"source": "task:arithmetic", "n": 1, "config": "main"})["config"]


def test_file_suffix_must_be_supported():
    message = errors_of({"source": "./data/rows.csv"})["source"]
    assert "'.csv'" in message and ".jsonl" in message and ".parquet" in message


def test_missing_file_is_named_at_validation_when_the_folder_is_known(tmp_path):
    assert f"data file not found: {tmp_path / 'absent.jsonl'}" in errors_of({"source": str(tmp_path / "absent.jsonl")})["source"]
    message = errors_of({"source": "sub/absent.parquet"}, context={"base_dir": tmp_path})["source"]
    assert str(tmp_path / "sub" / "absent.parquet") in message
    # Without the recipe's folder a relative path cannot be checked yet: load_rows checks it.
    assert DatasetSpec(source="sub/absent.parquet").kind == "file"
