"""Shared vLLM engines, one per tiny model per test session (grpo.rollout.engine), and the session's Ray cluster.

The engines run in vLLM's engine-core processes (in_process=False): this process holds two of them, and an
in-process engine would take the test process over (one per process, torch threads set to 1; engine.py).
A test that changes an engine's weights puts the model directory's weights back (as a new version) before
it ends, so every test sees the fixture model's weights.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grpo.rollout.engine import RolloutEngine

ENGINE_ARGS = {"max_model_len": 512, "kv_cache_gib": 0.5, "seed": 0}


@pytest.fixture(scope="session")
def qwen2_engine(tiny_qwen2_dir: Path) -> Iterator[RolloutEngine]:
    """RolloutEngine over tiny-qwen2 (float32, tied embeddings)."""
    with RolloutEngine(tiny_qwen2_dir, **ENGINE_ARGS) as engine:
        yield engine


@pytest.fixture(scope="session")
def qwen2_bf16_engine(tiny_qwen2_dir: Path) -> Iterator[RolloutEngine]:
    """RolloutEngine over tiny-qwen2 in bfloat16 (the float32 directory, cast by vLLM)."""
    with RolloutEngine(tiny_qwen2_dir, dtype="bfloat16", **ENGINE_ARGS) as engine:
        yield engine


@pytest.fixture(scope="session")
def dsv3_engine(tiny_dsv3_dir: Path) -> Iterator[RolloutEngine]:
    """RolloutEngine over tiny-deepseek-v3 (float32, MLA + MoE)."""
    with RolloutEngine(tiny_dsv3_dir, **ENGINE_ARGS) as engine:
        yield engine


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """An external Ray cluster started like a user would (`ray start --head`), joined by this process as a
    driver; yields its address, which other processes (`grpo run` with cluster.address) join too.
    4 logical CPUs: tests place up to four actors."""
    import ray

    ray_cli = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"{ray.util.get_node_ip_address()}:{port}"
    # A temp dir of its own (short: Ray's socket paths must fit 107 bytes) marks this cluster's processes, so
    # teardown stops them alone: `ray stop` would also stop every other Ray cluster of the machine, such as a
    # `grpo run` the user has going while the tests run.
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    # Token authentication off explicitly: `ray start` turns it on when a token file (~/.ray/auth_token) exists,
    # and drivers started with the default mode could then not join.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=4", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp_dir}"], check=True, capture_output=True, env=env)
    try:
        ray.init(address=address)
        yield address
    finally:
        ray.shutdown()
        _stop_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_processes_mentioning(marker: str, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`, every process whose command line contains `marker` (Ray's GCS,
    raylet and helpers carry their session directory; workers exit when their raylet does)."""
    def matching() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass  # gone meanwhile
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in matching():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while matching() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="session")
def ray_session(ray_cluster: str) -> str:
    """Ray initialised in this process (the name the driver's tests use: grpo.cluster.ensure_ray is then a
    no-op and their actors land on the session cluster)."""
    return ray_cluster


@pytest.fixture(scope="session")
def smollm2_worker(ray_session: str, smollm2_dir: Path):
    """A rollout worker (Ray actor, its vLLM engine in-process, float32) over SmolLM2-135M-Instruct, as the RL
    driver starts them; engine start about 30 s idle. Tests that sync other weights put the directory's back."""
    import ray

    from grpo.rollout.actor import make_rollout_workers

    (worker,) = make_rollout_workers(1, smollm2_dir, 1, **ENGINE_ARGS)
    try:
        yield worker
    finally:
        ray.get(worker.close.remote())
        ray.kill(worker)
