"""The job supervisor: runs one job's tests, as pid 1 of the job's own pid namespace, in its own mount
namespace, as root, under the seccomp filter it installs for itself and its children.

It mounts the job's private /tmp, then runs the tests one by one in the candidate's process (Runner,
harness.serve_tests), each with a fresh module, fresh stdin/stdout/stderr and an emptied /tmp, reading the
raw outputs with a cap and a deadline. A test that overruns, crashes or leaves anything behind (a thread,
a child, a daemon: the cgroup counts them) ends that process: everything in the namespace is killed and
the next test gets a new one. Assert-style tests run the candidate and the test code in two processes with
different uids. The records it returns are raw observations; the grader judges them.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import select
import shutil
import signal
import socket
import time
import traceback
from typing import TYPE_CHECKING

import confine
import harness
import landlock
import seccomp

if TYPE_CHECKING:
    from zygote import Layers

_STDERR_TAIL = 4096
_SETUP_FAILED = 120  # exit status of a test process whose confinement failed (it says why on its control fd)
_HIGH_FD = 64  # descriptors are parked above this while the standard ones are wired


def landlock_ruleset(layers: Layers) -> int:
    """Read anything in the (minimal) root, write only in /tmp and /dev/null, execute nothing, no TCP, no
    signals or abstract sockets out of the domain. Rules hold inodes, so it is built after the test's tmpfs
    is mounted on /tmp."""
    rules = [("/", landlock.READ), ("/tmp", landlock.WRITE), ("/dev/null", landlock.READ | landlock.WRITE)]
    return landlock.build_ruleset(layers.landlock_abi, rules)


class Scratch:
    """The job's private /tmp: a size-limited tmpfs in the job's mount namespace (gone with it), emptied
    between tests, and the Landlock ruleset that lets tests write there. Rules hold inodes, so the ruleset
    is built after the mount. Without namespaces (weak mode) /tmp is the host's and is left alone."""

    def __init__(self, layers: Layers, size_mb: int) -> None:
        self.mounted = layers.minimal_root
        if self.mounted:
            confine.mount("tmpfs", "/tmp", "tmpfs", confine.MS_NOSUID | confine.MS_NODEV | confine.MS_NOEXEC,
                          f"size={size_mb}m,nr_inodes=4096,mode=1777")
        self.ruleset_fd = landlock_ruleset(layers) if "landlock" not in layers.missing else None

    def wipe(self) -> None:
        if not self.mounted:
            return
        for entry in os.scandir("/tmp"):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


class Streams:
    """The read ends of a test's pipes, read with an output cap; stderr keeps only its tail."""

    def __init__(self, pipes: dict[str, int], counted: tuple[str, ...]) -> None:
        self.fds = {fd: name for name, fd in pipes.items()}
        self.data = {name: bytearray() for name in pipes}
        self.counted = counted  # the streams the output cap applies to: the candidate's
        self.total = 0
        for fd in self.fds:
            os.set_blocking(fd, False)

    def read(self, fd: int) -> bool:
        """Read what is there now; False when there was nothing (the fd is forgotten at end of file)."""
        name = self.fds[fd]
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        if not data:
            os.close(fd)
            del self.fds[fd]
            return False
        if name in self.counted:
            self.total += len(data)
        if name == "stderr":
            self.data[name] = (self.data[name] + data)[-_STDERR_TAIL:]
        else:
            self.data[name] += data
        return True

    def drain(self, wait_for_eof: bool, cap: int) -> None:
        """Read what is left, keeping at most cap + 1 bytes per stream. After a kill, to end of file (every
        writer is dead or dying; bounded in time). When the process lives on to the next test, only what is
        in the pipes now: it wrote its output before replying, and it may keep a copy of a pipe open."""
        give_up = time.monotonic() + 2.0
        while self.fds and time.monotonic() < give_up:
            for fd in list(self.fds):
                while fd in self.fds and self.read(fd):
                    name = self.fds[fd]
                    del self.data[name][cap + 1:]
            if not wait_for_eof:
                break
            if self.fds:
                select.select(list(self.fds), [], [], 0.05)
        for fd in self.fds:
            os.close(fd)
        self.fds = {}

    def text(self, name: str) -> str:
        return self.data[name].decode("utf-8", "surrogateescape" if name == "stdout" else "replace")


class Runner:
    """The candidate's process for stdin/stdout and function-call tests (harness.serve_tests)."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid, self.control = pid, control
        self.pidfd = os.pidfd_open(pid)
        self.status: int | None = None
        self.cpu_s = 0.0


class Supervisor:
    """Runs the tests of one job; lives in the job's pid namespace (as its pid 1) and mount namespace."""

    def __init__(self, layers: Layers, job: dict) -> None:
        self.layers, self.job, self.limits = layers, job, job["limits"]
        self.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.scratch: Scratch | None = None
        self.cpu_limit = 0

    def run(self) -> dict:
        try:
            code = compile(self.job["code"], "solution.py", "exec")
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return {"compile_error": detail[-2000:]}
        self.scratch = Scratch(self.layers, self.limits["disk_mb"])
        harness.prepare_interpreter()
        if self.layers.seccomp_filter is not None:
            # Installed here, after the last mount, every test process inherits it: compiling the filter in
            # each one would cost as much as the rest of its set-up.
            seccomp.install(self.layers.seccomp_filter)
        if self.job["mode"] == "assert":
            return {"tests": [self.run_assert(code)]}
        records, runner = [], None
        inputs = self.job["inputs"]
        for index, test_input in enumerate(inputs):
            for attempt in (1, 2):
                if runner is None:
                    runner = self.start_runner(code, len(inputs) - index)
                outcome = self.run_test(runner, index, test_input)
                if outcome is not None or attempt == 2:
                    break
                # The runner was gone before this test began (killed between tests by a thread of the
                # last one, say): not this test's doing, so it runs again on a fresh process.
                self.finish(runner)
                runner = None
            if outcome is None:
                raise RuntimeError("a fresh test process was gone before its first test")
            record, reusable = outcome
            records.append(record)
            if not reusable:
                self.finish(runner)
                runner = None
        if runner is not None:
            self.finish(runner)
        return {"tests": records}

    # --- in a test process ----------------------------------------------------------------------------
    def confine(self, uid: int, fds: dict[int, int], control: int) -> None:
        """Everything between fork and the first untrusted instruction. `fds` maps target -> source fd;
        `control` becomes fd 3. On failure the process says why on `control` and exits: it never runs
        unconfined."""
        try:
            if self.layers.pid_ns_fd is None:
                os.setpgid(0, 0)  # without a pid namespace (weak mode) the group is what gets killed
            if self.layers.proc_fd is not None:
                score = os.open("self/oom_score_adj", os.O_WRONLY, dir_fd=self.layers.proc_fd)
                os.write(score, b"1000")  # the OOM killer's first choice in the group
                os.close(score)
            rlimits = {"RLIMIT_CPU": (self.cpu_limit, self.cpu_limit + 1), "RLIMIT_CORE": 0,
                       "RLIMIT_NOFILE": 256, "RLIMIT_FSIZE": self.limits["disk_mb"] << 20,
                       "RLIMIT_NPROC": self.limits["max_processes"]}
            if self.layers.cgroup is None:
                rlimits["RLIMIT_AS"] = self.limits["memory_mb"] << 20  # weaker stand-in for the memory cgroup
            confine.apply_rlimits(rlimits)
            confine.set_no_new_privs()  # Landlock needs it once we are not root; setuid binaries stay inert
            if self.scratch.ruleset_fd is not None:
                landlock.restrict(self.scratch.ruleset_fd)
            if self.layers.root:
                confine.drop_to(uid)
            # Park the sources high so wiring 0..n cannot clobber one, then close everything else
            # (protocol pipes, cgroup and /proc handles, the Landlock ruleset, the pid namespace handle).
            parked = {target: fcntl.fcntl(source, fcntl.F_DUPFD, _HIGH_FD) for target, source in fds.items()}
            parked[3] = fcntl.fcntl(control, fcntl.F_DUPFD, _HIGH_FD)
            for target, source in parked.items():
                os.dup2(source, target)
            os.closerange(max(parked) + 1, 1 << 20)
            os.chdir("/tmp")
            os.write(3, harness.READY)
        except BaseException:  # noqa: BLE001
            for fd in (3, control):
                try:
                    os.write(fd, b"E" + traceback.format_exc().encode()[-2000:])
                    break
                except OSError:
                    continue
            os._exit(_SETUP_FAILED)

    def spawn(self, uid: int, fds: dict[int, int], control: int, body) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                self.confine(uid, fds, control)
                body()
            finally:
                os._exit(_SETUP_FAILED)  # body() ends the process itself; reaching this is a bug
        return pid

    # --- stdin/stdout and function-call tests ----------------------------------------------------------
    def start_runner(self, code, tests_left: int) -> Runner:
        """Fork the candidate's process and wait until it is confined."""
        # CPU time is limited per process as a backstop; the per-test limit is the wall-clock deadline.
        self.cpu_limit = tests_left * math.ceil(self.limits["timeout_s"]) + 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mode, fn_name = self.job["mode"], self.job.get("fn_name")
        pid = self.spawn(self.job["uid"], {0: self.devnull, 1: self.devnull, 2: self.devnull}, theirs.fileno(),
                         lambda: harness.serve_tests(code, mode, fn_name, socket.socket(fileno=3)))
        theirs.close()
        runner = Runner(pid, ours)
        if select.select([ours], [], [], 30.0)[0]:
            hello = ours.recv(4096)
            if hello == harness.READY:
                return runner
            raise RuntimeError(f"test process setup failed: {hello[1:].decode(errors='replace')}")
        raise RuntimeError("test process did not finish its setup in 30s")

    def run_test(self, runner: Runner, index: int, test_input) -> tuple[dict, bool] | None:
        """One test on the runner: (raw record, whether the runner is clean enough for the next test), or
        None if the runner could not even be handed the test."""
        stdio = self.job["mode"] == "stdio"
        self.scratch.wipe()
        oom_before = self.oom_kills()
        (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
        pipes, to_close = {"stdout": out_r, "stderr": err_r}, [out_w, err_w]
        if stdio:
            stdin = _memfd(test_input.encode("utf-8", "surrogateescape"))
            fds, to_close = [stdin, out_w, err_w], to_close + [stdin]
        else:
            args = _memfd(json.dumps(test_input).encode())
            result_r, result_w = os.pipe()
            pipes["result"] = result_r
            fds, to_close = [self.devnull, out_w, err_w, args, result_w], to_close + [args, result_w]
        streams = Streams(pipes, counted=("stdout", "stderr", "result"))
        start = time.monotonic()
        try:
            socket.send_fds(runner.control, [json.dumps({"test": index}).encode()], fds)
        except OSError:
            sent = False
        else:
            sent = True
        for fd in to_close:
            os.close(fd)
        if not sent:
            streams.drain(wait_for_eof=False, cap=0)
            return None
        reply, killed_for = self.pump(streams, start + self.limits["timeout_s"], runner.control, runner.pidfd)
        wall_s = time.monotonic() - start
        if reply is not None and killed_for is None and not select.select([runner.pidfd], [], [], 0)[0]:
            alive = True
        else:
            if killed_for:
                os.kill(runner.pid, signal.SIGKILL)
            self.reap(runner)
            alive = False
        oom = self.oom_kills() > oom_before
        reusable = alive and not oom and self.quiet()
        if not reusable:
            self.kill_rest(runner)
        streams.drain(wait_for_eof=not reusable, cap=self.limits["output_bytes"])
        if killed_for is None and streams.total > self.limits["output_bytes"]:
            killed_for = "output_limit"  # written in full just before the end
            reusable = False
        record = {"wall_s": round(wall_s, 6), "oom": oom, "timeout": killed_for == "timeout",
                  "output_limit": killed_for == "output_limit", "stdout": streams.text("stdout"),
                  "stderr": streams.text("stderr")}
        if not stdio:
            record["result"] = streams.text("result")
        if alive:
            record.update(exit=_reply_status(reply, index), signal=None)
        else:
            record.update(self.death(runner, killed_for))
        return record, reusable

    def pump(self, streams: Streams, deadline: float, control: socket.socket | None, pidfd: int):
        """Read the streams until a reply arrives on `control`, the process behind `pidfd` ends, the
        deadline passes or the output cap is hit. Returns (reply bytes or None, None | "timeout" |
        "output_limit")."""
        cap = self.limits["output_bytes"]
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, "timeout"
            watched = list(streams.fds) + [pidfd] + ([control] if control else [])
            ready = select.select(watched, [], [], remaining)[0]
            for item in ready:
                if item in streams.fds:
                    streams.read(item)
                    if streams.total > cap:
                        return None, "output_limit"
            if control in ready:
                reply = control.recv(4096)
                # End of file comes as the process exits, a moment before its pidfd says so.
                return reply or None, None
            if pidfd in ready:
                return None, None

    def quiet(self) -> bool:
        """True when the runner can take the next test as if it were a fresh process: nothing but the fork
        server, this supervisor and the runner is left in the cgroup (no thread, process or daemon of the
        last test; the cgroup counts them all, whatever the process says), and the runner does not sit on
        more than half the memory limit. Without a cgroup nothing can be proven: every test gets a fresh
        process."""
        group = self.layers.cgroup
        if group is None:
            return False
        return group.tasks() <= 3 and group.memory_usage() <= (self.limits["memory_mb"] << 20) // 2

    def finish(self, runner: Runner) -> None:
        """Send the runner away (it exits on end of file) and make sure nothing of it is left."""
        runner.control.close()
        if runner.status is None:
            os.kill(runner.pid, signal.SIGKILL)
            self.reap(runner)
        self.kill_rest(runner)
        os.close(runner.pidfd)
        self.reap_all()

    def death(self, process, killed_for: str | None) -> dict:
        """How a test process ended, for the record."""
        status = process.status
        over_cpu = (os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL)
                    and process.cpu_s >= self.cpu_limit)
        return {"exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) and killed_for is None else None,
                "timeout": killed_for == "timeout" or over_cpu}

    # --- assert-style tests ---------------------------------------------------------------------------
    def run_assert(self, code) -> dict:
        """The candidate and the test code in two processes with different uids, talking through two pipes
        in plain data. The test process reports on its control pipe and exits."""
        entry_point, uid = self.job["entry_point"], self.job["uid"]
        self.cpu_limit = math.ceil(self.limits["timeout_s"])
        oom_before = self.oom_kills()
        (req_r, req_w), (resp_r, resp_w) = os.pipe(), os.pipe()
        (out_r, out_w), (err_r, err_w), (cctl_r, cctl_w), (tctl_r, tctl_w) = (os.pipe() for _ in range(4))
        candidate = Runner(self.spawn(uid, {0: self.devnull, 1: out_w, 2: err_w, 4: req_r, 5: resp_w}, cctl_w,
                                      lambda: harness.serve_candidate(code, entry_point, 4, 5)), None)
        start = time.monotonic()
        tester = Runner(self.spawn(uid + 1, {0: self.devnull, 1: self.devnull, 2: self.devnull, 4: req_w,
                                             5: resp_r}, tctl_w, lambda: harness.run_assert_test(
                                                 self.job["setup"], self.job["test"], entry_point, 4, 5, 3)), None)
        for fd in (req_r, req_w, resp_r, resp_w, out_w, err_w, cctl_w, tctl_w):
            os.close(fd)
        streams = Streams({"stdout": out_r, "stderr": err_r, "ready": cctl_r, "report": tctl_r},
                          counted=("stdout", "stderr"))
        _, killed_for = self.pump(streams, start + self.limits["timeout_s"], None, tester.pidfd)
        wall_s = time.monotonic() - start
        if killed_for:
            os.kill(tester.pid, signal.SIGKILL)
        self.reap(tester)
        self.kill_rest(tester)
        self.reap(candidate)
        streams.drain(wait_for_eof=True, cap=self.limits["output_bytes"])
        for process in (candidate, tester):
            os.close(process.pidfd)
        self.reap_all()
        for name in ("ready", "report"):
            if streams.data[name][:1] == b"E":
                raise RuntimeError(f"test process setup failed: {streams.data[name][1:].decode(errors='replace')}")
        if killed_for is None and streams.total > self.limits["output_bytes"]:
            killed_for = "output_limit"
        record = {"wall_s": round(wall_s, 6), "oom": self.oom_kills() > oom_before,
                  "output_limit": killed_for == "output_limit", "stderr": streams.text("stderr"),
                  "report": streams.data["report"][1:].decode("utf-8", "replace")}
        record.update(self.death(candidate, killed_for))
        record["timeout"] = killed_for == "timeout" or record["timeout"]
        return record

    # --- clean-up -------------------------------------------------------------------------------------
    @staticmethod
    def kill_rest(process) -> None:
        """Kill everything a test left behind: daemons, forgotten children, the candidate server."""
        if os.getpid() == 1:
            try:
                os.kill(-1, signal.SIGKILL)  # as pid 1 of the job's namespace: everyone in it but us
            except ProcessLookupError:
                pass  # nobody left
            return
        try:  # weak mode: the process group; a setsid() escapes (hence "weak")
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @staticmethod
    def reap(process) -> None:
        if process.status is None:
            _, process.status, usage = os.wait4(process.pid, 0)
            process.cpu_s = usage.ru_utime + usage.ru_stime

    @staticmethod
    def reap_all() -> None:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return

    def oom_kills(self) -> int:
        return self.layers.cgroup.oom_kills() if self.layers.cgroup else 0


def _memfd(data: bytes) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start."""
    fd = os.memfd_create("input", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _reply_status(reply: bytes, index: int) -> int:
    """The exit status from the runner's reply. The reply comes from the candidate's process and so is only
    believed about the candidate itself; a malformed one is a failure."""
    try:
        message = json.loads(reply)
        if message["test"] == index and type(message["exit"]) is int:
            return message["exit"]
    except (ValueError, KeyError, TypeError):
        pass
    return 255
