"""The grader's side of the sandbox: a pool of fork servers, one per core, and the public entry points.

Each worker is a fork server (runtime/zygote.py) exec'd with `python -I -S -B`, an empty environment and
no inherited descriptors: never forked from the grader, so no page of the grader's memory (expected
outputs included) exists on the sandbox's side. A worker runs one job at a time; the pool bounds
concurrency to its size, and each job costs forks, not interpreter start-ups.

A worker reports the isolation layers it set up. If one is missing the pool refuses to start unless the
caller opted in with allow_weak_isolation=True, and then it warns loudly, once per pool.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from common.errors import UserError
from sandbox.judge import judge
from sandbox.results import COMPILE_ERROR, TIMEOUT, SandboxResult, TestResult
from sandbox.runtime import codec
from sandbox.runtime.confine import CgroupV1
from sandbox.spec import Limits, TestSpec

logger = logging.getLogger(__name__)

ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime", "zygote.py")
MAX_CODE_BYTES = 1 << 20
# Test processes run as uids from this range (no /etc/passwd entry needed): two per worker, the
# candidate's and the assert-style test runner's, so that neither can signal or trace the other.
UID_BASE, UID_SLOTS = 1_000_000, 500_000
_START_TIMEOUT_S = 60.0
_worker_numbers = itertools.count()


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program under test): a fork server died or misbehaved twice."""


class IsolationError(UserError):
    """An isolation layer is missing and the caller did not opt in to running without it."""


class _Worker:
    """One fork server process and its pipes."""

    def __init__(self) -> None:
        number = next(_worker_numbers)
        slot = (os.getpid() * 64 + number) % UID_SLOTS
        self.uid = UID_BASE + 2 * slot
        self.cgroup_name = f"grader-{os.getpid()}-{number}"
        config = json.dumps({"cgroup_name": self.cgroup_name})
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", ZYGOTE, config], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={}, cwd="/", close_fds=True)
        self.layers: dict | None = None

    def wait_ready(self) -> dict:
        """The fork server's report of its isolation layers (read once, after start-up)."""
        if self.layers is None:
            hello = self._read(time.monotonic() + _START_TIMEOUT_S)
            if not isinstance(hello, dict) or "hello" not in hello:
                raise SandboxError(f"fork server failed to start: {hello!r}")
            self.layers = hello["hello"]
        return self.layers

    def request(self, job: dict, timeout_s: float) -> dict:
        codec.write_frame(self.process.stdin.fileno(), job)
        answer = self._read(time.monotonic() + timeout_s)
        if not isinstance(answer, dict):
            raise SandboxError(f"fork server sent a malformed answer: {str(answer)[:200]}")
        return answer

    def _read(self, deadline: float) -> object:
        """One frame from the fork server; SandboxError if it dies or stalls past the deadline."""
        try:
            return codec.read_frame(self.process.stdout.fileno(), deadline)
        except TimeoutError:
            raise SandboxError("fork server did not answer in time") from None
        except codec.FrameError as exc:
            raise SandboxError(f"fork server exited (status {self.process.poll()}): {exc}") from None

    def close(self) -> None:
        try:
            self.process.stdin.close()  # the fork server's cue to exit
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        CgroupV1.remove(self.cgroup_name)


def _proc_status(pid: str) -> dict[str, str]:
    """/proc/PID/status as a dict ({} if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def _missing_layers(layers: dict) -> dict[str, str]:
    return {name: layers["missing"].get(name, "unavailable") for name, on in layers["active"].items() if not on}


def check_isolation(layers: dict, allow_weak_isolation: bool) -> None:
    """Refuse (IsolationError) when a fork server reports a missing layer, unless the caller opted in;
    then warn loudly instead, on stderr and in the log."""
    missing = _missing_layers(layers)
    if not missing:
        return
    listing = "; ".join(f"{name} ({reason})" for name, reason in missing.items())
    if not allow_weak_isolation:
        raise IsolationError(
            f"the sandbox cannot isolate untrusted code here, missing: {listing}. Run as root on Linux with "
            f"cgroups (v1 memory+pids), namespaces, Landlock and seccomp, or opt in to weaker isolation "
            f"(--allow-weak-isolation / allow_weak_isolation=True) if you trust the programs.")
    message = (f"SANDBOX RUNNING WITH WEAK ISOLATION (opted in); missing: {listing}. "
               f"Untrusted programs may reach this machine's files, processes or network.")
    logger.warning(message)
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


class Sandbox:
    """A pool of fork servers. Thread-safe; use as a context manager or call close().

    run() executes one program against its tests; run_many() runs a batch across all workers.
    """

    def __init__(self, workers: int | None = None, allow_weak_isolation: bool = False) -> None:
        count = workers or len(os.sched_getaffinity(0))
        self._workers = [_Worker() for _ in range(count)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        try:
            reports = [worker.wait_ready() for worker in self._workers]
        except BaseException:
            self.close()
            raise
        self.layers = reports[0]
        try:
            check_isolation(self.layers, allow_weak_isolation)
        except IsolationError:
            self.close()
            raise
        for worker in self._workers:
            self._idle.put(worker)
        self._executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="sandbox")

    @property
    def size(self) -> int:
        return len(self._workers)

    def run(self, code: str, tests: TestSpec | dict | str, limits: Limits | None = None) -> SandboxResult:
        """Run `code` against `tests` (any format TestSpec.parse accepts) and judge it."""
        spec = TestSpec.parse(tests)
        limits = limits or Limits()
        start = time.monotonic()
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            detail = f"the program is longer than {MAX_CODE_BYTES} bytes"
            return SandboxResult.from_tests([TestResult(COMPILE_ERROR, 0.0, detail) for _ in range(spec.total)], 0.0)
        job = {**spec.job(), "code": code, "limits": limits.to_dict()}
        answer = self._request(job, spec.total * (limits.timeout_s + 2.0) + 15.0)
        wall_s = time.monotonic() - start
        if "compile_error" in answer:
            tests = [TestResult(COMPILE_ERROR, 0.0, answer["compile_error"]) for _ in range(spec.total)]
        elif "overran" in answer:
            detail = f"the run as a whole overran its {answer['overran']:.0f}s budget"
            tests = [TestResult(TIMEOUT, wall_s, detail) for _ in range(spec.total)]
        else:
            tests = judge(spec, answer["tests"])
        return SandboxResult.from_tests(tests, wall_s)

    def run_many(self, items: Iterable[tuple[str, TestSpec | dict | str]],
                 limits: Limits | None = None) -> list[SandboxResult]:
        """Run many (code, tests) pairs concurrently on all workers; results in input order."""
        items = list(items)
        specs = [TestSpec.parse(tests, where=f"item {i} tests") for i, (_, tests) in enumerate(items)]
        return list(self._executor.map(lambda pair: self.run(pair[0], pair[1], limits),
                                       [(code, spec) for (code, _), spec in zip(items, specs)]))

    def _request(self, job: dict, timeout_s: float) -> dict:
        """Send a job to an idle worker; replace a worker that fails and retry once on a fresh one."""
        for attempt in (1, 2):
            if self._closed:
                raise SandboxError("the sandbox pool is closed")
            worker = self._idle.get()
            try:
                worker.wait_ready()
                answer = worker.request({**job, "uid": worker.uid}, timeout_s)
                if "error" not in answer:
                    self._idle.put(worker)
                    return answer
                failure = f"job failed inside the fork server:\n{answer['error']}"
            except (SandboxError, OSError) as exc:
                failure = str(exc)
            logger.warning("sandbox worker failed (attempt %d): %s", attempt, failure)
            worker.close()
            with self._lock:
                replacement = _Worker()
                self._workers[self._workers.index(worker)] = replacement
            self._idle.put(replacement)
        raise SandboxError(failure)

    def resources(self) -> dict[str, int]:
        """What the pool holds right now, for leak checks and monitoring: the fork servers' open descriptors,
        resident memory and child processes (none between jobs), the grader's own descriptors, and how many
        processes run as the pool's sandbox uids (none between jobs)."""
        servers = {worker.process.pid for worker in self._workers}
        uids = {str(uid) for worker in self._workers for uid in (worker.uid, worker.uid + 1)}
        totals = {"server_fds": 0, "server_rss_kb": 0, "server_children": 0, "sandbox_processes": 0,
                  "grader_fds": len(os.listdir("/proc/self/fd"))}
        for pid in servers:
            totals["server_fds"] += len(os.listdir(f"/proc/{pid}/fd"))
            totals["server_rss_kb"] += int(_proc_status(str(pid)).get("VmRSS", "0 kB").split()[0])
        for pid in filter(str.isdigit, os.listdir("/proc")):
            status = _proc_status(pid)
            totals["server_children"] += status.get("PPid") in {str(p) for p in servers}
            totals["sandbox_processes"] += status.get("Uid", "").split("\t")[0] in uids
        return totals

    def close(self) -> None:
        self._closed = True
        executor = getattr(self, "_executor", None)
        if executor:
            executor.shutdown(wait=True)
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox(allow_weak_isolation: bool = False) -> Sandbox:
    """The process-wide pool, created on first use (sized to the machine) and closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox(allow_weak_isolation=allow_weak_isolation)
            atexit.register(_default.close)
        elif not allow_weak_isolation and _missing_layers(_default.layers):
            raise IsolationError("the shared sandbox pool was created with weak isolation (opted in) and "
                                 "this caller did not opt in")
        return _default


def run_program(code: str, tests: TestSpec | dict | str, limits: Limits | None = None) -> SandboxResult:
    """Run `code` against `tests` on the shared pool and return the judged result."""
    return default_sandbox().run(code, tests, limits)


def isolation_report() -> dict:
    """Which isolation layers a fork server gets on this machine: {layer: True | "missing: reason"}, plus
    the Landlock ABI version. Starts (and stops) one fork server; refuses nothing."""
    worker = _Worker()
    try:
        layers = worker.wait_ready()
    finally:
        worker.close()
    report: dict[str, object] = {name: True if on else f"missing: {layers['missing'].get(name, 'unavailable')}"
                                 for name, on in layers["active"].items()}
    report["landlock_abi"] = layers["landlock_abi"]
    return report
