"""Confinement primitives used by the fork server: namespaces, a minimal read-only root, cgroups (v1), and
an unprivileged uid with resource limits. Linux only; most of it needs root.

Why a minimal root and not just Landlock: the interpreter lives wherever the user installed it (here under
/root, mode 0700), so an unprivileged uid could not even import the standard library. Binding the few
directories Python needs into a fresh tmpfs root fixes that, and everything else (the grader's code, home
directories, /etc, /proc) is simply absent. Landlock then limits what is left, as a second layer.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(MNT_DETACH)), f"umount {target}")


def set_parent_death_signal(signal_number: int) -> None:
    _check(_libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal_number), 0, 0, 0), "prctl(PDEATHSIG)")


def set_no_new_privs() -> None:
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def python_dirs(exclude: str) -> list[str]:
    """The directories this interpreter reads at run time: its prefix (standard library, extension modules,
    libpython) and any sys.path entry outside it but `exclude` (the fork server's own directory, which is
    part of the grader). Site-packages are not on sys.path under `python -S`."""
    dirs = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    for entry in sys.path:
        real = os.path.realpath(entry)
        if real != os.path.realpath(exclude) and os.path.isdir(real) \
                and not any(real.startswith(d + os.sep) or real == d for d in dirs):
            dirs.add(real)
    return sorted(dirs)


def build_minimal_root(staging: str, read_only_dirs: list[str], read_only_files: list[str],
                       devices: list[str]) -> None:
    """Make a fresh tmpfs the root of this (already private) mount namespace, holding only read-only binds
    of `read_only_dirs` and `read_only_files` at their own paths, the device nodes `devices`, the host's
    top-level symlinks (/lib -> usr/lib on merged-/usr systems) and an empty /tmp; then make it read-only."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here may propagate to the host
    mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    bound: list[str] = []
    for path in sorted(read_only_dirs, key=len):  # parents first; a child already inside a bind is skipped
        if any(path == b or path.startswith(b + os.sep) for b in bound) or not os.path.isdir(path):
            continue
        if os.path.islink(path.rstrip("/")):
            continue  # top-level symlinks are recreated below
        target = staging + path
        os.makedirs(target, mode=0o755, exist_ok=True)
        mount(path, target, None, MS_BIND | MS_REC)
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        bound.append(path)
    for name in os.listdir("/"):
        if os.path.islink("/" + name):  # dangling where the target was not bound: harmless
            os.symlink(os.readlink("/" + name), f"{staging}/{name}")
    for path, flags in [(f, MS_RDONLY) for f in read_only_files] + [(d, 0) for d in devices]:
        if not os.path.exists(path):
            continue
        target = staging + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "w").close()
        mount(path, target, None, MS_BIND)
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | flags)
    os.mkdir(f"{staging}/tmp", 0o755)
    os.chmod(f"{staging}/tmp", 0o1777)
    # pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the new root.
    os.chdir(staging)
    _check(_libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT[os.uname().machine]), b".", b"."), "pivot_root")
    umount(".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


class CgroupV1:
    """One memory and one pids cgroup (v1 hierarchy) for one sandbox slot.

    Directory fds are opened at creation so the groups stay reachable after pivot_root hides /sys. The fork
    server removes its groups when it exits (`leave_and_remove`); if it is killed instead, the grader does
    (`remove(name)`).
    """

    ROOT = "/sys/fs/cgroup"
    PARENT = "grpo-sandbox"
    CONTROLLERS = ("memory", "pids")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fds: dict[str, int] = {}
        self.parent_fds: dict[str, int] = {}
        for controller, path in zip(self.CONTROLLERS, self.dirs(name)):
            os.makedirs(path, exist_ok=True)
            self.fds[controller] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.parent_fds[controller] = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._limits: tuple[int, int] | None = None
        self._has_swap_accounting = os.path.exists(os.path.join(self.dirs(name)[0], "memory.memsw.limit_in_bytes"))

    @classmethod
    def dirs(cls, name: str) -> list[str]:
        return [os.path.join(cls.ROOT, controller, cls.PARENT, name) for controller in cls.CONTROLLERS]

    @classmethod
    def remove(cls, name: str) -> None:
        """Remove a slot's groups if they are still there. Processes that were just killed can take a
        moment to leave a group, so a busy one is retried briefly, then left alone."""
        for path in cls.dirs(name):
            for _ in range(20):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)

    def leave_and_remove(self) -> None:
        """Move the calling process (the last one in the groups) up to the parent groups and remove ours."""
        for controller in self.CONTROLLERS:
            fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.parent_fds[controller])
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            os.close(self.fds[controller])
            try:
                os.rmdir(self.name, dir_fd=self.parent_fds[controller])
            except OSError:
                pass  # still busy: the grader retries once this process is gone

    def _write(self, controller: str, filename: str, value: str) -> None:
        fd = os.open(filename, os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fds[controller])
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def _read(self, controller: str, filename: str) -> str:
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fds[controller])
        try:
            return os.read(fd, 4096).decode()
        finally:
            os.close(fd)

    def join(self) -> None:
        """Move the calling process into both groups; its children are born in them. (Moving a process is
        slow in cgroup v1, milliseconds, so the fork server moves once instead of every test process.)"""
        for controller in self.fds:
            self._write(controller, "cgroup.procs", "0")

    def set_limits(self, memory_bytes: int, max_processes: int) -> None:
        if self._limits == (memory_bytes, max_processes):
            return
        files = ["memory.limit_in_bytes"]
        if self._has_swap_accounting:
            # RAM+swap is capped too, so swap cannot stretch the limit. The kernel wants memsw >= limit at
            # every moment: raise memsw first, lower it last.
            growing = self._limits is not None and memory_bytes > self._limits[0]  # (it starts unlimited)
            files = ["memory.memsw.limit_in_bytes", *files] if growing else [*files, "memory.memsw.limit_in_bytes"]
        for filename in files:
            self._write("memory", filename, str(memory_bytes))
        self._write("pids", "pids.max", str(max_processes))
        self._limits = (memory_bytes, max_processes)

    def tasks(self) -> int:
        """Threads and processes now in the group (the pids controller counts every task)."""
        return int(self._read("pids", "pids.current"))

    def memory_usage(self) -> int:
        return int(self._read("memory", "memory.usage_in_bytes"))

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for want of memory."""
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


def apply_rlimits(limits: dict[str, int]) -> None:
    """Set soft and hard limits (hard = soft unless given as a pair), before dropping root."""
    for name, value in limits.items():
        soft, hard = value if isinstance(value, tuple) else (value, value)
        resource.setrlimit(getattr(resource, name), (soft, hard))


def drop_to(uid: int) -> None:
    """Become `uid`/`uid` with no supplementary groups, for good (real, effective and saved ids)."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
