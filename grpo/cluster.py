"""Starting or joining the Ray cluster (Ray stays at the edges: only drivers call this), and where the
workers' output goes.

A rollout worker's vLLM engine logs INFO lines every step ("reset prefix cache", ...), and every worker
may print; streamed to the driver they bury the run's own lines. So a run routes them (route_worker_logs)
to one file per worker process under `<run_dir>/logs/`, and only `grpo -v` streams them to the console,
as Ray does by default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grpo import progress
from grpo.config import ClusterConfig

WORKER_LOG_ENV = "GRPO_WORKER_LOG_DIR"  # set in the workers' environment: the folder of their log files
_routing: dict = {"log_dir": None, "verbose": False}


def route_worker_logs(log_dir: Path | None, *, verbose: bool = False) -> None:
    """Send the output of the workers of the Ray cluster this process starts or joins next to `log_dir`
    (None: to the console), or to the console anyway when `verbose`."""
    _routing.update(log_dir=log_dir, verbose=verbose)


def ray_logging_options(log_dir: Path | None, *, verbose: bool) -> dict:
    """`ray.init` keyword arguments for the choice: with a folder and not verbose, workers write their
    stdout and stderr to files there (the setup hook runs in each worker before any task) and nothing is
    streamed to the driver; otherwise Ray's default, everything streamed to the driver's console."""
    if log_dir is None or verbose:
        return {"log_to_driver": True}
    return {"log_to_driver": False, "runtime_env": {
        "env_vars": {WORKER_LOG_ENV: str(log_dir)},
        "worker_process_setup_hook": f"{__name__}.{redirect_worker_output.__name__}",
    }}


def redirect_worker_output() -> None:
    """In a Ray worker whose environment names a log folder: its file descriptors 1 and 2 (Python's prints,
    logging handlers, and native libraries alike) now append to `<folder>/worker-<pid>.log`."""
    log_dir = os.environ.get(WORKER_LOG_ENV)
    if not log_dir:
        return
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(Path(log_dir) / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def ensure_ray(cluster: ClusterConfig) -> None:
    """Join `cluster.address` if given, else start a local cluster; no-op if Ray is already up.

    Actors import the toolkit from the same environment as the driver (an installed or editable package),
    so no code is shipped; the runtime environment carries only where worker output goes.
    """
    import ray

    if ray.is_initialized():
        return
    logging_options = ray_logging_options(_routing["log_dir"], verbose=_routing["verbose"])
    if not logging_options["log_to_driver"]:
        progress.echo(f"[ray] worker output (vLLM, Ray) goes to {_routing['log_dir']}/; grpo -v shows it here")
    if cluster.address:
        ray.init(address=cluster.address, **logging_options)
    else:
        # address="local": always a new cluster of this process. Without it Ray joins any cluster already
        # running on the machine (ray start), and then refuses num_cpus/num_gpus.
        ray.init(address="local", num_cpus=cluster.num_cpus, num_gpus=cluster.num_gpus, include_dashboard=False,
                 **logging_options)
