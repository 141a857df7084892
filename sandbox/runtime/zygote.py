"""The fork server: started once per pool slot with `python -I -S -B zygote.py CONFIG`, an empty environment
and no inherited descriptors, so nothing of the grader (its memory, its environment, its expected outputs)
exists in this process or in anything forked from it.

Start-up (as root) sets up what every job of this slot shares and reports which layers it got: a cgroup,
private mount/network/IPC/UTS namespaces, a minimal read-only root, Landlock and seccomp. Then it serves
jobs read from stdin, one at a time:

    fork server ── job supervisor (supervisor.py): pid 1 of a new pid namespace, own mount namespace,
                   │                              root, seccomp
                   └─ the candidate's process, confined before it runs anything untrusted: rlimits,
                      no_new_privs, Landlock, an unprivileged uid (plus, for assert-style tests, a second
                      process with another uid that runs the test code)

When the supervisor exits the kernel kills whatever is left in its pid namespace, and its mount namespace
(with the job's tmpfs) goes away: nothing outlives a job. Its raw outputs go back to the grader, which
judges them; nothing here decides a verdict.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

# `python -I` leaves this script's directory off sys.path; its sibling modules are imported from there.
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, RUNTIME_DIR)

import codec  # noqa: E402
import confine  # noqa: E402
import landlock  # noqa: E402
import seccomp  # noqa: E402
from supervisor import Supervisor, landlock_ruleset  # noqa: E402

_DEVICES = ["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"]
# The fork server and the supervisor share the test's cgroup (see CgroupV1.join): room for their pages.
_CGROUP_HEADROOM_MB, _CGROUP_EXTRA_PIDS = 32, 2


class Layers:
    """The isolation this fork server has. A layer it could not set up is False, with the reason kept in
    `missing`; the grader refuses to run unless every layer is there or the user opted in to less."""

    def __init__(self) -> None:
        self.missing: dict[str, str] = {}
        self.root = os.geteuid() == 0
        self.cgroup: confine.CgroupV1 | None = None
        self.proc_fd: int | None = None  # the host's /proc, for test processes to raise their OOM score
        self.pid_ns_fd: int | None = None
        self.minimal_root = False
        self.landlock_abi = landlock.abi_version()
        self.seccomp_filter: bytes | None = None

    def attempt(self, name: str, action) -> object:
        """action()'s result, or None with the reason recorded under `name` if it raised OSError."""
        try:
            return action()
        except OSError as exc:
            self.missing[name] = str(exc)
            return None

    def report(self) -> dict:
        active = {
            "unprivileged_uid": self.root,
            "cgroup_memory_pids": self.cgroup is not None,
            "namespaces_pid_net_mount_ipc": self.pid_ns_fd is not None,
            "minimal_root": self.minimal_root,
            "landlock": "landlock" not in self.missing,
            "seccomp": self.seccomp_filter is not None,
        }
        return {"active": active, "missing": self.missing, "landlock_abi": self.landlock_abi}


def set_up(config: dict) -> Layers:
    """Set up every layer this process can, as root: the slot's cgroup (joined), namespaces, the minimal
    root; check Landlock and seccomp. What fails is recorded, not raised: the grader decides."""
    layers = Layers()
    if layers.root:
        def cgroup() -> confine.CgroupV1:
            group = confine.CgroupV1(config["cgroup_name"])
            group.join()
            # This server and the supervisors now share the group with the tests. Test processes raise
            # their OOM score to the maximum (see Supervisor.confine), so the OOM killer always picks one
            # of them; lowering ours instead would need CAP_SYS_RESOURCE, which containers often drop.
            layers.proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            return group

        layers.cgroup = layers.attempt("cgroup_memory_pids", cgroup)

        def namespaces() -> int:
            confine.unshare(confine.CLONE_NEWNS | confine.CLONE_NEWNET | confine.CLONE_NEWIPC | confine.CLONE_NEWUTS)
            return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

        layers.pid_ns_fd = layers.attempt("namespaces_pid_net_mount_ipc", namespaces)
        if layers.pid_ns_fd is not None:
            read_only = confine.python_dirs(exclude=RUNTIME_DIR) + ["/usr", "/lib", "/lib64", "/lib32", "/bin"]
            layers.attempt("minimal_root", lambda: confine.build_minimal_root(
                "/tmp", read_only, ["/etc/ld.so.cache"], _DEVICES))
            layers.minimal_root = "minimal_root" not in layers.missing
    else:
        layers.missing["unprivileged_uid"] = "not running as root: cannot switch to a sandbox uid"
        for name in ("cgroup_memory_pids", "namespaces_pid_net_mount_ipc", "minimal_root"):
            layers.missing[name] = "needs root"
    if not layers.landlock_abi:
        layers.missing["landlock"] = "the kernel has no Landlock, or it is disabled"
    else:
        layers.attempt("landlock", lambda: os.close(landlock_ruleset(layers)))  # probe once
    if seccomp.supported():
        layers.seccomp_filter = seccomp.build_filter()
    else:
        layers.missing["seccomp"] = f"no filter for {os.uname().machine}"
    return layers


class GraderGone(Exception):
    """End of file on stdin while a job runs: the grader exited or closed the pool."""


def run_job(layers: Layers, job: dict) -> dict:
    """Fork the job's supervisor into fresh pid and mount namespaces and relay its answer, within a budget."""
    limits = job["limits"]
    if layers.cgroup:
        layers.cgroup.set_limits((limits["memory_mb"] + _CGROUP_HEADROOM_MB) << 20,
                                 limits["max_processes"] + _CGROUP_EXTRA_PIDS)
    if layers.pid_ns_fd is not None:
        # unshare(CLONE_NEWPID) works once per process: step back into our own namespace, then make a new one.
        confine.setns(layers.pid_ns_fd, confine.CLONE_NEWPID)
        confine.unshare(confine.CLONE_NEWPID)
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(result_r)
            confine.set_parent_death_signal(signal.SIGKILL)
            if layers.pid_ns_fd is not None:
                confine.unshare(confine.CLONE_NEWNS | confine.CLONE_NEWIPC)
            answer = Supervisor(layers, job).run()
        except BaseException:  # noqa: BLE001
            answer = {"error": traceback.format_exc()[-4000:]}
        codec.write_frame(result_w, answer)
        os._exit(0)
    os.close(result_w)
    tests = 1 if job["mode"] == "assert" else len(job["inputs"])
    budget = tests * (limits["timeout_s"] + 2.0) + 5.0
    finished = False
    try:
        data, finished = _read_all(result_r, time.monotonic() + budget)
    finally:
        os.close(result_r)
        if not finished:  # (also on GraderGone)
            os.kill(pid, signal.SIGKILL)  # the namespace's pid 1: everything in it dies with it
        os.waitpid(pid, 0)
    if not finished:
        return {"overran": budget}
    try:
        return codec.decode_frame(data[4:])
    except codec.FrameError as exc:
        return {"error": f"job supervisor ended without a complete answer ({exc})"}


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to fd until end of file; (data, False) if the deadline comes first. Raises
    GraderGone on end of file on our stdin."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(0, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), False
        for ready, _ in poller.poll(int(remaining * 1000) + 1):
            if ready == 0:  # the grader sends nothing while a job runs: this is its hang-up
                raise GraderGone
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)


def main() -> None:
    layers = set_up(json.loads(sys.argv[1]))
    try:
        codec.write_frame(1, {"hello": layers.report()})
        while True:
            try:
                job = codec.read_frame(0)
            except codec.FrameError:
                break  # the grader closed the pipe
            try:
                answer = run_job(layers, job)
            except OSError:
                answer = {"error": traceback.format_exc()[-4000:]}
            codec.write_frame(1, answer)
    except (GraderGone, BrokenPipeError):
        pass
    if layers.cgroup:
        layers.cgroup.leave_and_remove()


if __name__ == "__main__":
    main()
