"""Run states (running, finished, failed, resumable) and the `grpo runs` / `grpo report` commands."""

import argparse
import json
import os
import socket
import subprocess

import pytest

from common.errors import UserError
from grpo.report.cli import register
from grpo.report.rundir import find_runs, load_run, run_status

from run_builder import build_run


def set_state(run_dir, **changes):
    """Edit run_state.json: top-level keys, or a stage's record with stage=(name, {fields})."""
    path = run_dir / "run_state.json"
    state = json.loads(path.read_text())
    if "stage" in changes:
        name, fields = changes.pop("stage")
        state["stages"][name].update(fields)
    state.update(changes)
    path.write_text(json.dumps(state))


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def cli(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_a_live_runner_makes_the_run_running(tmp_path):
    run_dir = build_run(tmp_path, failed=True)
    set_state(run_dir, stage=("grpo", {"status": "running"}), pid=os.getpid(), host=socket.gethostname())
    assert run_status(load_run(run_dir)) == ("running", "stage grpo at step 7/12")


def test_a_dead_runner_leaves_the_run_resumable_from_its_checkpoint(tmp_path):
    run_dir = build_run(tmp_path, failed=True)
    set_state(run_dir, stage=("grpo", {"status": "running"}), pid=dead_pid())
    assert run_status(load_run(run_dir)) == (
        "resumable", "stage grpo interrupted after step 7/12; resumes from step-000005")
    set_state(run_dir, pid=None)  # a runner that recorded no pid cannot be checked: not running
    assert run_status(load_run(run_dir))[0] == "resumable"


def test_a_runner_on_another_host_is_trusted(tmp_path):
    run_dir = build_run(tmp_path, failed=True)
    set_state(run_dir, stage=("grpo", {"status": "running"}), pid=dead_pid(), host="another-host")
    assert run_status(load_run(run_dir))[0] == "running"


def test_a_failure_without_checkpoints_is_failed(tmp_path):
    run_dir = build_run(tmp_path, failed=True)
    for ckpt in (run_dir / "stages/grpo/checkpoints").iterdir():
        (ckpt / "model").rmdir()
        ckpt.rmdir()
    assert run_status(load_run(run_dir)) == (
        "failed", "stage grpo failed after step 7/12: RuntimeError: loss is NaN at micro-batch 3")


def test_a_failed_stage_without_steps_names_no_step(tmp_path):
    run_dir = build_run(tmp_path)
    set_state(run_dir, stage=("sft", {"status": "failed", "error": "OSError: disk full"}))
    assert run_status(load_run(run_dir)) == ("failed", "stage sft failed: OSError: disk full")


def test_find_runs_looks_below_but_not_inside_runs(tmp_path):
    a = build_run(tmp_path / "a")
    b = build_run(tmp_path / "group" / "b", failed=True)
    (tmp_path / "notes").mkdir()
    assert find_runs(tmp_path) == [a, b]
    assert find_runs(a) == [a]
    with pytest.raises(UserError, match="no such directory"):
        find_runs(tmp_path / "missing")


def test_runs_command_lists_each_run_with_state_and_detail(tmp_path, capsys):
    build_run(tmp_path / "a")
    build_run(tmp_path / "group" / "b", failed=True)
    assert cli("runs", str(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "STATE", "STAGES", "UPDATED", "DETAIL"]
    assert lines[1].split()[:3] == ["a/tiny-r1", "finished", "3/3"]
    assert lines[2].split()[:3] == ["group/b/tiny-r1", "resumable", "1/3"]
    assert "stage grpo failed after step 7/12: RuntimeError: loss is NaN" in lines[2]


def test_runs_command_on_an_empty_directory(tmp_path, capsys):
    assert cli("runs", str(tmp_path)) == 0
    assert capsys.readouterr().out.strip() == f"no runs under {tmp_path}"


def test_report_command_prints_the_page_path(tmp_path, capsys):
    run_dir = build_run(tmp_path, failed=True)
    assert cli("report", str(run_dir)) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report" / "index.html")
    with pytest.raises(UserError, match="no such run directory"):
        cli("report", str(tmp_path / "missing"))
