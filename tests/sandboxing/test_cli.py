"""`grpo sandbox check` and `grpo sandbox run`."""

import json

from pipelines.cli import main


def test_check_reports_every_layer(capsys):
    assert main(["sandbox", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\nall isolation")[0])
    assert report.pop("landlock_abi") >= 1
    assert report == {layer: True for layer in report} and "seccomp" in report and "minimal_root" in report


def test_run_prints_the_json_result(tmp_path, capsys):
    program = tmp_path / "add.py"
    program.write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"inputs": ["1 2\n", "2 2\n"], "outputs": ["3\n", "5\n"]}))
    assert main(["sandbox", "run", str(program), "--tests", str(tests), "--timeout", "2"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["verdict"], result["passed"], result["total"]) == ("wrong_answer", 1, 2)
    assert [t["verdict"] for t in result["tests"]] == ["passed", "wrong_answer"]


def test_run_user_errors(tmp_path, capsys):
    tests = tmp_path / "tests.json"
    tests.write_text('{"inputs": [1], "outputs": ["1"]}')
    assert main(["sandbox", "run", str(tmp_path / "missing.py"), "--tests", str(tests)]) == 2
    assert "cannot read program" in capsys.readouterr().err
    (tmp_path / "p.py").write_text("print(1)")
    assert main(["sandbox", "run", str(tmp_path / "p.py"), "--tests", str(tests)]) == 2
    assert "tests.json.inputs[0]: stdin/stdout tests need strings" in capsys.readouterr().err
