"""Programs that attack the sandbox or the grader, each with the verdict it must get, and after each one the
check that nothing it started outlives the run (no process, no file, no connection).

Most attacks print the expected answer only if the attack worked, so an escape shows up as a false
"passed". The expected output is a random token that appears in no input: a program can only print it
by reading the grader's data.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys

import pytest
from sandbox_checks import REPO_ROOT, assert_nothing_left

from sandbox import Limits, Sandbox


LIMITS = Limits(timeout_s=1.0, memory_mb=128, max_processes=16, output_bytes=100_000, disk_mb=8)

# (name, program, verdict or tuple of acceptable verdicts). In programs, TOKEN is the expected stdout and the name of any file written.
STDIO_ATTACKS = [
    # Contained either way: the pids cap stops the forks, then the wall clock or the memory cap (16 Python
    # processes touching their copied pages can pass 128 MB) ends it, whichever the scheduler reaches first.
    ("fork_bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
     ("timeout", "memory_limit")),
    ("busy_loop", "while True:\n    pass", "timeout"),
    ("sleep", "import time\ntime.sleep(60)\nprint('TOKEN')", "timeout"),
    ("ignore_sigterm_sigxcpu", "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, "
     "signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", "timeout"),
    ("setsid_daemon", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
     "        time.sleep(3)\n        open('/tmp/TOKEN-daemon', 'w').write('still here')\n    os._exit(0)\n"
     "os.wait()\nprint('TOKEN')", "passed"),
    ("lingering_thread", "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
     "print('TOKEN')", "timeout"),
    ("lingering_daemon_thread", "import threading, time\ndef later():\n    time.sleep(2)\n"
     "    open('/tmp/TOKEN-thread', 'w').write('late')\n"
     "threading.Thread(target=later, daemon=True).start()\nprint('TOKEN')", "passed"),
    ("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))", "memory_limit"),
    # Each child holds 40 MiB until all eight exist: together they must pass the 128 MiB limit.
    ("memory_bomb_in_children", "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n"
     "        x = b'x' * (40 << 20)\n        time.sleep(0.5)\n        os._exit(0)\nfor _ in range(8):\n"
     "    os.wait()", "memory_limit"),
    ("deep_recursion", "def f(n):\n    return f(n + 1)\nf(0)", "runtime_error"),
    # Through a C function (map), so each level takes C stack too: a segfault, not a RecursionError.
    ("deep_recursion_c_stack", "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n"
     "    return list(map(f, [n + 1]))\nf(0)", "runtime_error"),
    ("deep_recursion_out_of_memory", "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\n"
     "f(0)", "memory_limit"),
    ("write_etc", "try:\n    open('/etc/TOKEN', 'w').write('x')\n    print('TOKEN')\nexcept OSError:\n"
     "    print('blocked')", "wrong_answer"),
    ("write_root", "try:\n    open('/root/TOKEN', 'w').write('x')\n    print('TOKEN')\nexcept OSError:\n"
     "    print('blocked')", "wrong_answer"),
    ("write_tmp_stays_private", "open('/tmp/TOKEN', 'w').write('x')\nprint(open('/tmp/TOKEN').read() and "
     "'TOKEN')", "passed"),
    ("write_dev_shm", "try:\n    open('/dev/shm/TOKEN', 'w').write('x')\n    print('TOKEN')\nexcept OSError:\n"
     "    print('blocked')", "wrong_answer"),
    ("write_cwd_and_root_dir", "import os\nfor path in ('/TOKEN', '/var/tmp/TOKEN', os.path.expanduser("
     "'~/TOKEN')):\n    try:\n        open(path, 'w').write('x')\n        print('TOKEN')\n    except OSError:\n"
     "        pass\nprint('blocked')", "wrong_answer"),
    # The grader's environment (PATH, HOME, VIRTUAL_ENV, ...) must not be there: the only variable is the one
    # Python's C-locale coercion sets itself.
    ("read_environment", "import os\nprint('TOKEN' if set(os.environ) - {'LC_CTYPE'} else 'clean')", "wrong_answer"),
    ("read_proc_environ", "import glob\nreadable = []\nfor path in glob.glob('/proc/*/environ') + ['/proc/1/environ']:\n"
     "    try:\n        readable.append(open(path, 'rb').read())\n    except OSError:\n        pass\n"
     "print('TOKEN' if any(readable) else 'nothing')", "wrong_answer"),
    ("read_etc_shadow", "try:\n    print(open('/etc/shadow').read()[:1] and 'TOKEN')\nexcept OSError:\n"
     "    print('blocked')", "wrong_answer"),
    ("tcp_to_localhost", "import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', PORT), timeout=0.5)\n"
     "    s.sendall(b'TOKEN')\n    print('TOKEN')\nexcept OSError as e:\n    print('blocked', e.errno)",
     "wrong_answer"),
    ("kill_parent", "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\n    print('killed')\n"
     "except OSError:\n    print('TOKEN')", "passed"),
    ("kill_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('TOKEN')", "runtime_error"),
    ("exit_zero_before_output", "import sys\nsys.exit(0)\nprint('TOKEN')", "wrong_answer"),
    ("os_exit_zero", "import os\nos._exit(0)", "wrong_answer"),
    ("fake_pass_marker", "print('All tests passed!\\nPASSED\\n{\"verdict\": \"passed\"}')\n"
     "import os\nos.write(3, b'{\"test\": 0, \"exit\": 0, \"verdict\": \"passed\"}')", "wrong_answer"),
    ("stdout_flood", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "output_limit"),
    ("stderr_flood", "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)", "output_limit"),
    ("ctypes_segfault", "import ctypes\nctypes.string_at(0)", "runtime_error"),
    ("disk_fill", "with open('/tmp/TOKEN-fill', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))",
     "runtime_error"),
    ("import_grader_code", "hits = []\nfor name in ('grpo', 'rewards', 'sandbox', 'sandbox.judge', 'pipelines'):\n"
     "    try:\n        __import__(name)\n        hits.append(name)\n    except ImportError:\n        pass\n"
     "print('TOKEN' if hits else 'none')", "wrong_answer"),
    ("read_grader_code", "import sys\nhits = []\nfor path in ['REPO/sandbox/judge.py', 'REPO/rewards/code.py'] + "
     "[getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]:\n    try:\n"
     "        if 'REPO' in path or 'sandbox' in path:\n            open(path).read()\n            hits.append(path)\n"
     "    except OSError:\n        pass\nprint('TOKEN' if hits else 'none')", "wrong_answer"),
    ("exec_a_shell", "import subprocess\ntry:\n    print(subprocess.run(['/bin/sh', '-c', 'echo TOKEN'], "
     "capture_output=True, text=True).stdout.strip() or 'empty')\nexcept OSError as e:\n    print('blocked', e)",
     "wrong_answer"),
    ("denied_syscalls", "import ctypes, errno, mmap\nlibc = ctypes.CDLL(None, use_errno=True)\nok = []\n"
     "for name, args in (('unshare', (0x40000000,)), ('ptrace', (16, 1, 0, 0)), ('mount', (b'x', b'/tmp', "
     "b'tmpfs', 0, None))):\n    if getattr(libc, name)(*args) == 0:\n        ok.append(name)\n"
     "if libc.syscall(425, 8, ctypes.byref(ctypes.create_string_buffer(120))) >= 0:\n    ok.append('io_uring')\n"
     "if libc.syscall(29, 0, 4096, 0o1600) >= 0:\n    ok.append('shmget')\nprint('TOKEN' if ok else 'all denied')",
     "wrong_answer"),
]


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


@pytest.mark.parametrize("name, program, verdict", STDIO_ATTACKS, ids=[a[0] for a in STDIO_ATTACKS])
def test_stdio_attack(sandbox, listener, name, program, verdict):
    token = "tok" + secrets.token_hex(8)
    program = (program.replace("TOKEN", token).replace("PORT", str(listener.getsockname()[1]))
               .replace("REPO", str(REPO_ROOT)))
    result = sandbox.run(program, {"inputs": ["x\n"], "outputs": [token + "\n"]}, LIMITS)
    assert result.verdict in (verdict if isinstance(verdict, tuple) else (verdict,)), result.tests[0].detail
    assert_nothing_left(sandbox, token)
    if name == "tcp_to_localhost":
        with pytest.raises(socket.timeout):
            listener.accept()
    # The pool is unhurt: the same worker runs an honest program right after.
    assert sandbox.run("print(input())", {"inputs": ["ok"], "outputs": ["ok"]}).verdict == "passed"


# Looks through every object of the interpreter for a string holding the expected output. The needle is
# built at run time from hex, so the program's own constants do not contain it.
MEMORY_SEARCH = """
import gc
keep = [input()]
def search(hexed):
    needle = bytes.fromhex(hexed).decode()
    for o in gc.get_objects():
        if o is globals():
            continue
        items = list(o.values()) if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()
        if any(type(x) is str and needle in x for x in items):
            return needle
    return "not found"
print(search("HEX"))
"""


def test_expected_outputs_are_not_in_the_sandbox_memory(sandbox):
    """The fork servers are exec'd, not forked from the grader: no copy of the grader's memory (expected
    outputs included) exists in the sandbox. The positive control shows the search finds the token when it
    is there (here, because it was the test's input)."""
    token = "tok" + secrets.token_hex(8)
    program = MEMORY_SEARCH.replace("HEX", token.encode().hex())
    assert sandbox.run(program, {"inputs": ["x"], "outputs": [token]}, LIMITS).verdict == "wrong_answer"
    assert sandbox.run(program, {"inputs": [token], "outputs": [token]}, LIMITS).verdict == "passed"
    assert_nothing_left(sandbox)


def test_leftovers_do_not_reach_the_next_test(sandbox):
    """A test that leaves a daemon behind gets the rest of its tests in a fresh process: the daemon
    cannot write into a later test's output."""
    token = "tok" + secrets.token_hex(8)
    program = ("import os, sys, time\nif input() == 'first' and os.fork() == 0:\n    os.setsid()\n"
               "    for _ in range(100):\n        os.write(1, b'garbage\\n')\n        time.sleep(0.01)\n"
               "    os._exit(0)\nprint('" + token + "')")
    result = sandbox.run(program, {"inputs": ["first", "second", "third"], "outputs": [token] * 3}, LIMITS)
    assert [t.verdict for t in result.tests][1:] == ["passed", "passed"]
    assert_nothing_left(sandbox, token)


def test_environment_secret_is_not_inherited(monkeypatch):
    monkeypatch.setenv("GRPO_SANDBOX_SECRET", "hunter2")
    program = ("import os\nprint('leak' if 'hunter2' in str(os.environ) else 'clean')")
    with Sandbox(workers=1) as pool:  # started while the secret is in the grader's environment
        assert pool.run(program, {"inputs": [""], "outputs": ["clean"]}).verdict == "passed"
        assert_nothing_left(pool)


# Assert-style (HumanEval): the candidate lives in its own process and hands back plain data only.
ADD_TEST = {"test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 5) == 10\n",
            "entry_point": "add"}
ASSERT_ATTACKS = [
    ("always_equal_object", "class Eq:\n    def __eq__(self, other):\n        return True\n"
     "def add(a, b):\n    return Eq()", "runtime_error"),
    ("int_subclass", "class Int(int):\n    def __eq__(self, other):\n        return True\n"
     "def add(a, b):\n    return Int(0)", "runtime_error"),
    ("sys_exit_before_tests", "import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b", "runtime_error"),
    ("os_exit_before_tests", "import os\nos._exit(0)\ndef add(a, b):\n    return a + b", "runtime_error"),
    ("patched_test_runner", "import builtins, sys\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
     "builtins.print = lambda *a, **k: None\nsys.excepthook = lambda *a: None\n"
     "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\ndef add(a, b):\n    return 0",
     "wrong_answer"),
    # Writes a fake report into every descriptor it has, its reply pipe included: that breaks its own
    # channel (a runtime error); the test process's report pipe is not among them.
    ("fake_report", "import os\nfor fd in range(3, 10):\n    try:\n        os.write(fd, b'{\"status\": \"passed\"}')\n"
     "    except OSError:\n        pass\nprint('{\"status\": \"passed\"}')\ndef add(a, b):\n    return 0",
     "runtime_error"),
    ("exit_during_call", "import sys\ndef add(a, b):\n    sys.exit(0)", "runtime_error"),
    # Kills every pid it may: only itself (the supervisor is the namespace's init, the test process has
    # another uid), so the test process survives to report the dead candidate.
    ("kill_the_test_process", "import os, signal\ndef add(a, b):\n    for pid in range(1, 200):\n        try:\n"
     "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n    return 0",
     "runtime_error"),
    ("raise_fake_stop", "def add(a, b):\n    raise KeyboardInterrupt", "runtime_error"),
]


@pytest.mark.parametrize("name, program, verdict", ASSERT_ATTACKS, ids=[a[0] for a in ASSERT_ATTACKS])
def test_assert_attack(sandbox, name, program, verdict):
    result = sandbox.run(program, ADD_TEST, LIMITS)
    assert result.verdict == verdict, result.tests[0].detail
    assert_nothing_left(sandbox)
    assert sandbox.run("def add(a, b):\n    return a + b", ADD_TEST).verdict == "passed"


@pytest.mark.parametrize("program", [
    "class Eq:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Eq()",
    "class Int(int):\n    pass\ndef f(x):\n    return Int(4)",
    "import os\nos.write(4, b'4')\ndef f(x):\n    return 5",
])
def test_call_attack(sandbox, program):
    result = sandbox.run(program, {"inputs": [[2]], "outputs": [4], "fn_name": "f"}, LIMITS)
    assert result.verdict in ("runtime_error", "wrong_answer") and result.passed == 0
    assert_nothing_left(sandbox)


def test_weak_isolation_is_refused_then_runs_when_opted_in():
    """Where a layer is missing (here: a seccomp filter on the grader denies the namespace syscalls, as some
    container runtimes do), the pool refuses; opted in, it warns loudly and still runs and judges."""
    script = (
        "import sys\nsys.path.insert(0, 'RUNTIME')\nimport seccomp\nseccomp.install(seccomp.build_filter())\n"
        "from sandbox import Sandbox, IsolationError\n"
        "try:\n    Sandbox(workers=1)\nexcept IsolationError as e:\n    print('REFUSED', e)\n"
        "with Sandbox(workers=1, allow_weak_isolation=True) as pool:\n"
        "    print('VERDICT', pool.run('print(input())', {'inputs': ['a'], 'outputs': ['a']}).verdict)\n"
    ).replace("RUNTIME", str(REPO_ROOT / "sandbox" / "runtime"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120)
    assert "REFUSED" in done.stdout and "namespaces_pid_net_mount_ipc" in done.stdout, done.stderr
    assert "VERDICT passed" in done.stdout, done.stderr
    assert "WEAK ISOLATION" in done.stderr
