"""Worker processes that check math answers, each check under a hard time limit the parent enforces.

Why not a thread or math-verify's own timeout: math-verify times out with signal.alarm, which only works
in a process's main thread (a reward called from a Ray actor thread or a vLLM callback would raise), and
no signal interrupts sympy while it sits inside one C-level operation (9^{9^{9}} is a single big-integer
power). So checks run in worker processes, and the parent kills any worker that overruns its deadline
and starts a replacement: the pool survives whatever an answer does, including exhausting memory.

Why not concurrent.futures.ProcessPoolExecutor: killing one of its workers breaks the whole executor
(BrokenProcessPool) and loses every other in-flight item. Here each worker has its own socket and deadline.

Why plain subprocesses and not multiprocessing's spawn/forkserver: those re-import the caller's
`__main__` in every worker, so a user script without an `if __name__ == "__main__":` guard would
recurse. A worker is `python -c ...` importing only this package (a quick start); it says "ready" once its
imports are done, and deadlines start only when a check is handed to a ready worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from rewards.math_equiv import Verdict, check_answer

log = logging.getLogger(__name__)

# The worker's own timer fires this much earlier than the parent's deadline, so most timeouts are
# reported by a live worker instead of costing a kill and a restart.
_SOFT_TIMEOUT_FRACTION = 0.8
# A worker that is not ready this long after its start is broken (bad environment), not slow.
_STARTUP_TIMEOUT_S = 120.0
_READY = "ready"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class _CheckTimeout(BaseException):
    """Raised by the worker's timer; a BaseException so no `except Exception` in sympy swallows it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _CheckTimeout


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, even mid-computation (PR_SET_PDEATHSIG).

    Linux ties this to the parent *thread* that started the worker: a worker started from a thread that
    later ends is killed too, and the pool then sees it dead and replaces it (poll() before each use).
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _check_one(answer: str, gold: str, soft_timeout_s: float, memory_limit_mb: int | None) -> tuple[str, str]:
    try:
        signal.setitimer(signal.ITIMER_REAL, soft_timeout_s)
        try:
            verdict, detail = check_answer(answer, gold)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return verdict.value, detail
    except _CheckTimeout:
        return Verdict.TIMEOUT.value, f"no verdict within {soft_timeout_s:.2f}s"
    except MemoryError:
        return Verdict.INVALID.value, f"check exceeded the {memory_limit_mb} MiB memory limit"
    except RecursionError:
        return Verdict.INVALID.value, "answer nested too deeply to parse"
    except Exception as exc:  # noqa: BLE001  a crash in the checker is a verdict, not a pool failure
        return Verdict.INVALID.value, f"checker raised {type(exc).__name__}: {exc}"[:300]


def worker_main(fd: int, memory_limit_mb: int | None, parent_pid: int) -> None:
    """A worker's life: serve (answer, gold, soft_timeout_s) requests on socket `fd` until EOF or None."""
    _die_with_parent(parent_pid)
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # math-verify warns that its own timeouts are off: here they are replaced, on purpose.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGALRM, _on_alarm)
    conn = Connection(fd)
    try:
        conn.send(_READY)
        while (request := conn.recv()) is not None:
            conn.send(_check_one(*request, memory_limit_mb))
    except (EOFError, OSError):
        pass  # the parent is gone


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


class VerifyPool:
    """A fixed number of checker processes; `check` runs a batch of (answer, gold) pairs across them.

    Thread-safe (one batch at a time). Workers start on the first `check`; `close` stops them, and a
    later `check` starts them again.
    """

    def __init__(self, num_workers: int | None = None, memory_limit_mb: int | None = 4096) -> None:
        self.num_workers = num_workers or max(1, min(4, os.cpu_count() or 1))
        self.memory_limit_mb = memory_limit_mb
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.restarts = 0  # workers killed for overrunning or found dead; a figure for the logs

    def _start_worker(self) -> _Worker:
        parent_sock, child_sock = socket.socketpair()
        python_path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=python_path)
        code = (
            "from rewards.verify_pool import worker_main; "
            f"worker_main({child_sock.fileno()}, {self.memory_limit_mb!r}, {os.getpid()})"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=[child_sock.fileno()], env=env, stdin=subprocess.DEVNULL
        )
        child_sock.close()
        return _Worker(process, Connection(parent_sock.detach()))

    def _stop(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait()
        worker.conn.close()

    def _replace(self, index: int) -> None:
        self._stop(self._workers[index])
        self._workers[index] = self._start_worker()
        self.restarts += 1

    def start(self) -> None:
        """Start the workers and wait until each is ready (else the first `check` does it)."""
        with self._lock:
            self._fill()
            while not all(w.ready for w in self._workers):
                self._wait_and_collect({}, [], 0.0)

    def _fill(self) -> None:
        while len(self._workers) < self.num_workers:
            self._workers.append(self._start_worker())

    def check(self, pairs: list[tuple[str, str]], timeout_s: float) -> list[tuple[Verdict, str]]:
        """Verdicts for (answer, gold) pairs, in order; each check gets `timeout_s` seconds of a worker."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        results: list[tuple[Verdict, str] | None] = [None] * len(pairs)
        pending = deque(range(len(pairs)))
        with self._lock:
            self._fill()
            busy: dict[int, tuple[int, float]] = {}  # worker index -> (pair index, deadline)
            while pending or busy:
                for w, worker in enumerate(self._workers):
                    if worker.ready and w not in busy and pending:
                        if worker.process.poll() is not None:  # it died while idle (killed from outside)
                            self._replace(w)
                            continue
                        i = pending.popleft()
                        try:
                            worker.conn.send((*pairs[i], timeout_s * _SOFT_TIMEOUT_FRACTION))
                        except OSError:  # it died just now: replace it, retry the item on another
                            pending.appendleft(i)
                            self._replace(w)
                            continue
                        busy[w] = (i, time.monotonic() + timeout_s)
                self._wait_and_collect(busy, results, timeout_s)
        return results  # type: ignore[return-value]  every slot was filled above

    def _wait_and_collect(
        self, busy: dict[int, tuple[int, float]], results: list, timeout_s: float
    ) -> None:
        """Wait for the next answer, ready signal or deadline; record verdicts and replace bad workers."""
        deadlines = [deadline for _, deadline in busy.values()]
        deadlines += [w.started + _STARTUP_TIMEOUT_S for w in self._workers if not w.ready]
        watched = {w.conn: i for i, w in enumerate(self._workers) if i in busy or not w.ready}
        for conn in wait(list(watched), max(0.0, min(deadlines) - time.monotonic())):
            w = watched[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if w in busy:
                i, _ = busy.pop(w)
                if message is None:
                    results[i] = (Verdict.INVALID, "the checking process died (likely out of memory)")
                    log.warning("math checker pid %d died during a check; starting another",
                                self._workers[w].process.pid)
                else:
                    results[i] = (Verdict(message[0]), message[1])
            elif message == _READY:
                self._workers[w].ready = True
            elif message is None:
                code = self._workers[w].process.wait()
                raise RuntimeError(f"math checker process exited with code {code} while starting (see stderr)")
            if message is None:
                self._replace(w)
        now = time.monotonic()
        for w, (i, deadline) in list(busy.items()):
            if deadline <= now:
                del busy[w]
                results[i] = (Verdict.TIMEOUT, f"no verdict within {timeout_s:.2f}s; worker killed")
                log.warning("math check overran %.2fs; killing checker pid %d and starting another",
                            timeout_s, self._workers[w].process.pid)
                self._replace(w)
        for w, worker in enumerate(self._workers):
            if not worker.ready and worker.started + _STARTUP_TIMEOUT_S <= now:
                raise RuntimeError(f"math checker process did not start within {_STARTUP_TIMEOUT_S:.0f}s")

    def close(self) -> None:
        """Stop the workers (politely, then by force)."""
        with self._lock:
            for worker in self._workers:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            for worker in self._workers:
                try:
                    worker.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                self._stop(worker)
            self._workers = []
