"""load_rows on local files (with column mappings), synthetic tasks and hub names; broken rows and their errors."""

import json
import math

import datasets
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grpo.data.loading import is_held_out, load_rows, task_seed
from grpo.data.records import answer_text
from grpo.data.spec import DatasetSpec
from grpo.data.tasks import generate_arithmetic, generate_countdown
from common.errors import UserError

ROWS = [{"problem": f"What is {i} + {i}?", "solution": 2 * i, "level": i % 3, "source": "made up"}
        for i in range(1, 41)]
MAPPING = {"question": "problem", "answer": "solution"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_with_a_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    dataset = load_rows(DatasetSpec(source=str(path), columns=MAPPING))
    assert len(dataset) == 40
    assert set(dataset.column_names) == {"question", "answer", "level", "source"}  # mapped ones renamed
    assert dataset[0] == {"question": "What is 1 + 1?", "answer": "2", "level": 1, "source": "made up"}
    assert dataset.features["answer"].dtype == "string"


def test_parquet_with_a_column_mapping_and_a_relative_path(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "data" / "rows.parquet")
    dataset = load_rows(DatasetSpec(source="data/rows.parquet", columns=MAPPING, n=5), base_dir=tmp_path)
    assert dataset["question"] == [r["problem"] for r in ROWS[:5]]
    assert dataset["answer"] == [str(r["solution"]) for r in ROWS[:5]]


def test_json_list_file_and_unmapped_question_answer_columns(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2", "x": 1}]))
    dataset = load_rows(DatasetSpec(source=str(path)))
    assert dataset.to_list() == [{"question": "q1", "answer": "a1", "x": None}, {"question": "q2", "answer": "a2", "x": 1}]


def test_one_source_column_may_feed_two_of_ours(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"q": "What?", "a": "1"}])
    dataset = load_rows(DatasetSpec(source=str(path), columns={"question": "q", "prompt": "q", "answer": "a"}))
    assert dataset[0] == {"question": "What?", "answer": "1", "prompt": "What?"}


def test_shuffle_is_seeded_and_comes_before_n(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    spec = DatasetSpec(source=str(path), columns=MAPPING, shuffle=True, seed=3, n=10)
    first, again = load_rows(spec)["question"], load_rows(spec)["question"]
    assert first == again and len(first) == 10
    assert first != [r["problem"] for r in ROWS[:10]]  # a sample of the whole file, not its head
    other_seed = load_rows(spec.model_copy(update={"seed": 4}))["question"]
    assert other_seed != first
    everything = load_rows(DatasetSpec(source=str(path), columns=MAPPING, shuffle=True, seed=3))["question"]
    assert everything[:10] == first and sorted(everything) == sorted(r["problem"] for r in ROWS)


def test_task_sources_generate_the_documented_rows():
    spec = DatasetSpec(source="task:arithmetic", n=20, seed=2, difficulty=4)
    # The train split: the generator's rows in order, less the held-out tenth of the question space.
    assert load_rows(spec).to_list() == [r for r in generate_arithmetic(40, seed=2, difficulty=4)
                                         if not is_held_out(r["question"])][:20]
    countdown = load_rows(DatasetSpec(source="task:countdown", n=10, seed=2))
    assert countdown.to_list() == [r for r in generate_countdown(30, seed=2) if not is_held_out(r["question"])][:10]
    assert countdown.features["numbers"].feature.dtype == "int64"


def test_task_splits_are_disjoint_and_stable():
    train = load_rows(DatasetSpec(source="task:arithmetic", n=3000, seed=1))["question"]
    test = load_rows(DatasetSpec(source="task:arithmetic", n=300, seed=1, split="test"))["question"]
    # 2-digit addition has 8,100 questions: independent draws of these sizes would share ~100.
    assert not set(train) & set(test)
    assert all(is_held_out(q) for q in test) and not any(is_held_out(q) for q in train)
    held = [r["question"] for r in generate_arithmetic(5000, seed=task_seed(1, "test")) if is_held_out(r["question"])]
    assert test == held[:300]  # the generator's order, filtered: a longer list extends a shorter one
    assert load_rows(DatasetSpec(source="task:arithmetic", n=30, seed=1, split="test"))["question"] == test[:30]
    assert task_seed(1, "test") == task_seed(1, "test") != task_seed(1, "validation")
    countdown = load_rows(DatasetSpec(source="task:countdown", n=20, seed=1, split="test"))["question"]
    assert len(countdown) == 20 and all(is_held_out(q) for q in countdown)


@pytest.mark.parametrize("value, text", [("  85 ", "85"), (85, "85"), (-3, "-3"), (72.0, "72"), (0.5, "0.5")])
def test_answers_become_strings(value, text):
    assert answer_text(value) == text


@pytest.mark.parametrize("value", [None, True, [1], {"a": 1}, math.nan, math.inf, "", "  "])
def test_answers_that_hold_no_single_value_are_refused(value):
    with pytest.raises(ValueError, match="answer"):
        answer_text(value)


def load_error(tmp_path, name: str, content: str, **spec) -> str:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load_rows(DatasetSpec(source=str(path), **spec))
    message = str(caught.value)
    assert str(path) in message
    return message


def test_bad_json_line_names_the_line(tmp_path):
    message = load_error(tmp_path, "rows.jsonl", '{"question": "q", "answer": "a"}\n\n{"question": "q", "answer": \n')
    assert "line 3" in message and "invalid JSON" in message


def test_a_line_that_is_no_object_names_the_line(tmp_path):
    assert "line 2: expected a JSON object, got list" in load_error(
        tmp_path, "rows.jsonl", '{"question": "q", "answer": "a"}\n[1, 2]\n')


def test_missing_mapped_column_names_the_row_and_column(tmp_path):
    message = load_error(tmp_path, "rows.jsonl", '{"problem": "q", "solution": "a"}\n{"problem": "q"}\n', columns=MAPPING)
    assert "line 2" in message and "'solution'" in message and "'answer'" in message


def test_missing_question_column_suggests_a_mapping(tmp_path):
    message = load_error(tmp_path, "rows.jsonl", '{"prompt": "q", "answer": "a"}\n')
    assert "line 1" in message and "no column 'question'" in message and "columns:" in message


def test_unconvertible_answer_names_the_row(tmp_path):
    message = load_error(tmp_path, "rows.json", json.dumps([{"question": "q", "answer": "a"}, {"question": "q", "answer": [1]}]))
    assert "row 2" in message and "answer must be text or a number" in message


def test_null_answer_in_parquet_names_the_row(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"question": ["q1", "q2", "q3"], "answer": ["1", "2", None]}), path)
    with pytest.raises(UserError, match=r"rows\.parquet: row 3: answer must be text or a number, got None"):
        load_rows(DatasetSpec(source=str(path)))


def test_empty_question_names_the_row(tmp_path):
    assert "line 1: question is empty" in load_error(tmp_path, "rows.jsonl", '{"question": " ", "answer": "1"}\n')


def test_mixed_types_in_an_extra_column_name_the_column(tmp_path):
    rows = [{"question": "q", "answer": "1", "meta": 5}, {"question": "q", "answer": "1", "meta": "five"}]
    assert "column 'meta' mixes value types" in load_error(tmp_path, "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def test_empty_file_and_non_list_json_are_errors(tmp_path):
    assert "no rows" in load_error(tmp_path, "rows.jsonl", "\n")
    assert "expected a JSON list of objects, got dict" in load_error(tmp_path, "rows.json", '{"question": "q"}')
    assert "not a readable Parquet file" in load_error(tmp_path, "rows.parquet", "not parquet")


def test_missing_relative_file_is_named_at_load(tmp_path):
    with pytest.raises(UserError, match=f"data file not found: {tmp_path / 'absent.jsonl'}"):
        load_rows(DatasetSpec(source="absent.jsonl"), base_dir=tmp_path)


def test_stage_outputs_are_left_to_the_runner(tmp_path):
    spec = DatasetSpec(source="@rejection", columns={"completion": "text"})
    with pytest.raises(UserError, match="'@rejection' names the dataset of stage 'rejection'"):
        load_rows(spec)
    write_jsonl(tmp_path / "kept.jsonl", [{"question": "q", "answer": "1", "text": "<think> t </think> <answer> 1 </answer>"}])
    swapped = load_rows(spec.model_copy(update={"source": "kept.jsonl"}), base_dir=tmp_path)
    assert swapped[0]["completion"].startswith("<think>")


def test_hub_name_offline_gives_a_clear_error(monkeypatch):
    # Offline mode makes the hub client fail at once instead of retrying a network that is not there.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as caught:
        load_rows(DatasetSpec(source="nobody/no-such-dataset"))
    message = str(caught.value)
    assert "'nobody/no-such-dataset'" in message and "Hugging Face hub" in message
    assert "task:arithmetic" in message and "gsm8k" in message and ".jsonl" in message


def test_imperfections_mark_seeded_shares_and_sft_writes_them():
    from pipelines.sft import completion_for

    spec = DatasetSpec(source="task:arithmetic", n=1000, seed=1,
                       imperfections={"forgotten_carries": 0.3, "untagged_answers": 0.2})
    rows = [dict(r) for r in load_rows(spec)]
    carries = [r for r in rows if r["imperfection"] == "forgotten_carry"]
    untagged = [r for r in rows if r["imperfection"] == "untagged_answer"]
    assert 240 < len(carries) < 360 and 150 < len(untagged) < 250
    assert [dict(r) for r in load_rows(spec)] == rows  # seeded
    plain = [dict(r) for r in load_rows(DatasetSpec(source="task:arithmetic", n=1000, seed=1))]
    assert [{k: v for k, v in r.items() if k != "imperfection"} for r in rows] == plain  # same questions, answers
    targets = [completion_for(r, i) for i, r in enumerate(rows)]
    wrong = [r for r, t in zip(rows, targets) if f"<answer> {r['answer']} </answer>" not in t]
    untagged_targets = [t for r, t in zip(rows, targets) if r["imperfection"] == "untagged_answer"]
    assert all(t.endswith(f"</think> The answer is {r['answer']}.") and "<answer>" not in t
               for r, t in zip(untagged, untagged_targets))
    slipped = [r for r in wrong if r["imperfection"] == "forgotten_carry"]
    assert len(slipped) + len(untagged) == len(wrong)  # nothing else is wrong
    assert 0 < len(slipped) < len(carries)  # carry-free rows keep their right working
    with pytest.raises(ValueError, match="forgotten_carries applies to task:arithmetic only"):
        DatasetSpec(source="task:countdown", n=5, imperfections={"forgotten_carries": 0.1})
    with pytest.raises(ValueError, match="synthetic tasks only"):
        DatasetSpec(source="gsm8k", imperfections={"untagged_answers": 0.1})
    with pytest.raises(ValueError, match="at most 1"):
        DatasetSpec(source="task:arithmetic", n=5, imperfections={"forgotten_carries": 0.6, "untagged_answers": 0.6})
