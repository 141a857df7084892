"""A Ray actor's output lands in the run directory's log file, not on the driver's console.

A run names grpo.cluster.redirect_worker_output as the job's worker setup hook (ray.init, see
test_worker_logs.py); Ray accepts that hook only at the job level, and the session's cluster is already
joined, so here the actor runs the hook itself, first thing, under the same environment variable."""

import time

import ray

from grpo.cluster import ray_logging_options


def test_an_actors_output_goes_to_the_log_file_and_not_to_the_driver(ray_session, tmp_path, capfd):
    class Chatty:  # defined here so that Ray ships it by value (the workers cannot import test modules)
        def __init__(self):
            from grpo.cluster import redirect_worker_output

            redirect_worker_output()

        def speak(self, marker: str) -> int:
            import logging
            import os
            import sys

            print(f"{marker} on stdout", flush=True)
            print(f"{marker} on stderr", file=sys.stderr, flush=True)
            logging.getLogger("vllm-like").warning("%s from a logger", marker)
            os.write(1, f"{marker} from C\n".encode())  # what a native library writes reaches the file too
            return os.getpid()

    log_dir = tmp_path / "logs"
    env_vars = ray_logging_options(log_dir, verbose=False)["runtime_env"]["env_vars"]
    actor = ray.remote(num_cpus=0)(Chatty).options(runtime_env={"env_vars": env_vars}).remote()
    try:
        pid = ray.get(actor.speak.remote("xyzzy-7"))
    finally:
        ray.kill(actor)
    text = (log_dir / f"worker-{pid}.log").read_text()
    for line in ("xyzzy-7 on stdout", "xyzzy-7 on stderr", "xyzzy-7 from a logger", "xyzzy-7 from C"):
        assert line in text
    time.sleep(2.0)  # the driver's log monitor forwards worker lines within about a second
    captured = capfd.readouterr()
    assert "xyzzy-7" not in captured.out + captured.err
