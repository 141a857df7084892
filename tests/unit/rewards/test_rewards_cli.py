"""`grpo rewards score` and `grpo rewards list`, run through the real CLI entry point."""

import json

from pipelines.cli import main


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_score_writes_one_line_per_row_with_components_and_reasons(tmp_path, capsys):
    data = _write(tmp_path / "in.jsonl", [
        {"completion": "<think>2+2</think><answer>\\boxed{4}</answer>", "answer": "4"},
        "",
        {"completion": "\\boxed{4} or \\boxed{5}", "answer": "4"},
    ])
    out = tmp_path / "out.jsonl"
    assert main(["rewards", "score", "math_accuracy:1,format:0.5", "--input", str(data), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        {"line": 1, "total": 1.5, "components": {"math_accuracy": 1.0, "format": 1.0},
         "reasons": {"math_accuracy": "correct", "format": "ok"}},
        {"line": 3, "total": 0.0, "components": {"math_accuracy": 0.0, "format": 0.0},
         "reasons": {"math_accuracy": "multiple_answers", "format": "missing <think>"}},
    ]
    assert "math_accuracy: mean 0.5000 (correct 1, multiple_answers 1)" in capsys.readouterr().err


def test_score_reads_a_spec_file_and_another_completion_column(tmp_path, capsys):
    spec = tmp_path / "rewards.yaml"
    spec.write_text("- {name: overlong_penalty, kwargs: {max_completion_length: 100, overlong_buffer_len: 20}}\n")
    data = _write(tmp_path / "in.jsonl", [{"text": "x", "completion_length": 90}])
    assert main(["rewards", "score", str(spec), "--input", str(data), "--completion-column", "text"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["components"] == {"overlong_penalty": -0.5} and record["reasons"] == {"overlong_penalty": "buffer"}


def _error(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_input_errors_name_the_file_and_line(tmp_path, capsys):
    missing = tmp_path / "none.jsonl"
    assert "none.jsonl does not exist" in _error(capsys, ["rewards", "score", "format", "--input", str(missing)])
    bad = _write(tmp_path / "bad.jsonl", [{"completion": "a"}, "{not json"])
    assert f"{bad}: line 2: invalid JSON" in _error(capsys, ["rewards", "score", "format", "--input", str(bad)])
    nocol = _write(tmp_path / "nocol.jsonl", [{"completion": "a"}, {"text": "b"}])
    assert f"{nocol}: line 2: no text column 'completion'" in _error(
        capsys, ["rewards", "score", "format", "--input", str(nocol)])
    ragged = _write(tmp_path / "ragged.jsonl", [{"completion": "a", "answer": "1"}, {"completion": "b"}])
    assert f"{ragged}: line 2: missing column(s) 'answer'" in _error(
        capsys, ["rewards", "score", "format", "--input", str(ragged)])
    noanswer = _write(tmp_path / "noanswer.jsonl", [{"completion": "\\boxed{1}"}])
    err = _error(capsys, ["rewards", "score", "math_accuracy", "--input", str(noanswer)])
    assert f"{noanswer}: reward 'math_accuracy' needs 'answer'" in err
    assert "unknown reward 'maths'" in _error(capsys, ["rewards", "score", "maths", "--input", str(noanswer)])


def test_list_shows_every_builtin_with_its_summary(capsys):
    assert main(["rewards", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("math_accuracy", "exact_match", "format", "tag_count", "language_consistency",
                 "overlong_penalty", "cosine_length", "repetition_penalty"):
        assert f"\n{name} " in "\n" + out
    assert "DAPO overlong penalty" in out
