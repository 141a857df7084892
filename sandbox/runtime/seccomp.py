"""A seccomp-BPF filter, assembled by hand and installed with prctl through ctypes.

Debian's python3-seccomp binds the system interpreter only, and a filter this small is easier to audit as
a list of instructions anyway. It is a deny list on top of the other layers (uid, namespaces, Landlock): it
refuses the syscalls a test program never needs and that widen the kernel surface it can reach: new
namespaces, mounts, tracing other processes, kernel keyrings, BPF, io_uring (whose operations bypass
seccomp), System V IPC (its objects would outlive the run), and every socket family except AF_UNIX.
Syscalls from another ABI (x32, or 32-bit int 0x80) kill the process, so the numbers below cannot be
dodged. x86_64 only: `supported()` says whether this machine can use it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_AF_UNIX = 1
# Bits of clone(2)'s flags that create namespaces: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
# NEWNET.
_CLONE_NAMESPACE_FLAGS = 0x80 | 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_SYS_SOCKET, _SYS_CLONE, _SYS_CLONE3 = 41, 56, 435

# x86_64 syscall numbers (asm/unistd_64.h) answered with EPERM.
DENIED_SYSCALLS = {
    "shmget": 29, "semget": 64, "msgget": 68, "ptrace": 101, "syslog": 103, "mknod": 133, "uselib": 134,
    "personality": 135, "vhangup": 153, "modify_ldt": 154, "pivot_root": 155, "_sysctl": 156,
    "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172,
    "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179, "nfsservctl": 180,
    "lookup_dcookie": 212, "clock_settime": 227, "mq_open": 240, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "mknodat": 259, "unshare": 272, "perf_event_open": 298,
    "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
}

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_KILL_PROCESS, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET = 0, 4, 16  # struct seccomp_data; args are u64, low half first
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def supported() -> bool:
    """True where this filter's syscall numbers apply (x86_64 Linux)."""
    return platform.system() == "Linux" and platform.machine() == "x86_64"


def build_filter() -> bytes:
    """The BPF program, as the bytes of a `struct sock_filter` array."""
    # Each entry is (opcode, jump-if-true label, jump-if-false label, k); labels resolve to the final returns.
    prog: list[tuple[int, str | int, str | int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        (_JEQ_K, 0, "kill", _AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, _NR_OFFSET),
        (_JGE_K, "kill", 0, _X32_SYSCALL_BIT),
        (_JEQ_K, "enosys", 0, _SYS_CLONE3),  # clone3's flags sit in memory BPF cannot read; libc falls back to clone
    ]
    prog += [(_JEQ_K, "eperm", 0, number) for number in sorted(DENIED_SYSCALLS.values())]
    prog += [
        (_JEQ_K, 0, "check_clone", _SYS_SOCKET),
        (_LD_W_ABS, 0, 0, _ARG0_OFFSET),
        (_JEQ_K, "allow", "eperm", _AF_UNIX),
        ("check_clone", 0, 0, 0),
        (_JEQ_K, 0, "allow", _SYS_CLONE),
        (_LD_W_ABS, 0, 0, _ARG0_OFFSET),
        (_JSET_K, "eperm", "allow", _CLONE_NAMESPACE_FLAGS),
        ("allow", 0, 0, 0), (_RET_K, 0, 0, _RET_ALLOW),
        ("eperm", 0, 0, 0), (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        ("enosys", 0, 0, 0), (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        ("kill", 0, 0, 0), (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    # Resolve labels: a label marks the index of the instruction after it; jumps are relative to the next one.
    labels, instructions = {}, []
    for entry in prog:
        if isinstance(entry[0], str):
            labels[entry[0]] = len(instructions)
        else:
            instructions.append(entry)
    out = bytearray()
    for index, (code, jt, jf, k) in enumerate(instructions):
        offsets = [labels[j] - index - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= off <= 255 for off in offsets):
            raise ValueError("BPF jump out of range: the deny list grew too long for 8-bit offsets")
        out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
    return bytes(out)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)


def install(program: bytes) -> None:
    """Set no_new_privs and install the filter on the calling thread (call it single-threaded)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    calls = ((_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0)),
             (_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog)))
    for option, arg2, arg3 in calls:
        if _libc.prctl(option, arg2, arg3, ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl({option}): {os.strerror(err)}")
