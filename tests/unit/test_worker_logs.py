"""Where Ray workers' output goes: a log file under the run directory, or the console with `grpo -v`."""

from pathlib import Path

from grpo.cluster import WORKER_LOG_ENV, ray_logging_options, redirect_worker_output


def test_a_plain_run_keeps_worker_output_in_the_run_directory(tmp_path):
    options = ray_logging_options(tmp_path / "logs", verbose=False)
    assert options["log_to_driver"] is False
    env = options["runtime_env"]
    assert env["env_vars"][WORKER_LOG_ENV] == str(tmp_path / "logs")
    assert env["worker_process_setup_hook"] == "grpo.cluster.redirect_worker_output"


def test_verbose_or_no_run_directory_streams_worker_output_to_the_console(tmp_path):
    assert ray_logging_options(tmp_path / "logs", verbose=True) == {"log_to_driver": True}
    assert ray_logging_options(None, verbose=False) == {"log_to_driver": True}


def test_the_hook_does_nothing_outside_a_routed_worker(monkeypatch, capfd):
    monkeypatch.delenv(WORKER_LOG_ENV, raising=False)
    redirect_worker_output()
    print("still on stdout")
    assert "still on stdout" in capfd.readouterr().out
    assert not list(Path.cwd().glob("worker-*.log"))
