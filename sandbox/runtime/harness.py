"""What the confined processes run: the candidate program, in one of three ways.

- serve_tests: stdin/stdout and function-call tests, one after another in the same process, each in a
  fresh module with fresh standard streams (the supervisor decides when a process is too dirty to reuse).
- serve_candidate + run_assert_test: assert-style tests, the candidate and the dataset's test code in two
  processes with different uids, talking only in plain data (codec), so nothing the candidate builds
  (an object whose __eq__ always says yes, a patched AssertionError, an early sys.exit) reaches the test.

Nothing here is trusted by the grader. The candidate runs in the same interpreter as this code and may
rewrite any of it; all it can change is the raw bytes it sends back, which are judged outside the sandbox
against expected values that never enter it.

These functions end their process (os._exit) instead of returning: the stack below them belongs to the
fork server's job loop, which must never resume in a child.
"""

from __future__ import annotations

import builtins
import fcntl
import gc
import io
import json
import linecache
import os
import socket
import sys
import threading
import traceback
import types

import codec

READY = b"R"  # sent on the control channel once confinement is complete, before any untrusted code
# The interpreter's own stream objects own fds 0-2: kept alive so replacing them never closes an fd.
_STARTUP_STREAMS = (sys.stdin, sys.stdout, sys.stderr)


def prepare_interpreter() -> None:
    """Once per job, in the supervisor: the state every test process starts from, so that each of them
    inherits it instead of building it. (A test process pays for every page it writes, copy-on-write, and
    a page fault costs microseconds in a VM: building stream objects in each one doubled its cost.)"""
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):  # the supervisor's own 0-2 are the fork server's protocol pipes: not for children
        os.dup2(devnull, fd)
    os.close(devnull)
    _fresh_streams()  # on fds 0-2 *by number*: each test process wires its own pipes there
    sys.argv = ["solution.py"]
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    gc.freeze()  # the collector then never walks (and so never copies) the inherited objects


def _fresh_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__builtins__ = builtins
    sys.modules[name] = module
    return module


def _fresh_streams() -> None:
    """New standard stream objects on fds 0-2 (empty buffers, default encodings), as a new process has."""
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                                 encoding="utf-8", errors="surrogateescape")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                                   encoding="utf-8", errors="surrogateescape")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                                   errors="backslashreplace", write_through=True)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter does with an uncaught SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _run(code: types.CodeType, namespace: dict) -> int:
    """Execute a code object like `python file.py` would; the exit status it would have."""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:  # noqa: BLE001  the program's own failure, reported like the interpreter does
        traceback.print_exc()
        return 1
    return 0


def _join_threads() -> None:
    """Wait for non-daemon threads, as the interpreter does before exiting (programs that solve in a
    worker thread with a bigger stack rely on it)."""
    while True:
        waiting = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
        if not waiting:
            return
        for thread in waiting:
            thread.join()


def _flush() -> bool:
    """Flush whatever sys.stdout/sys.stderr are now; False if the program broke them."""
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001  a program that closed or replaced its stdout
            ok = False
    return ok


def _exit(status: int) -> None:
    """End the process now (no interpreter finalisation), failing it if its output could not be flushed."""
    os._exit(status if _flush() else status or 1)


def _find_function(namespace: dict, name: str):
    """A top-level function, or a method of a LeetCode-style `class Solution` (LiveCodeBench)."""
    if callable(namespace.get(name)):
        return namespace[name]
    solution_class = namespace.get("Solution")
    if isinstance(solution_class, type) and callable(getattr(solution_class, name, None)):
        return getattr(solution_class(), name)
    raise NameError(f"the program defines no function or Solution method named {name!r}")


def _call(code: types.CodeType, fn_name: str, args: list) -> tuple[types.ModuleType, int, bytes]:
    """Run the program as a module and call `fn_name(*args)`: (the module, exit status, encoded value)."""
    module = _fresh_module("solution")
    status = _run(code, module.__dict__)
    if status:
        return module, status, b""
    try:
        value = _find_function(module.__dict__, fn_name)(*args)
        return module, 0, json.dumps(codec.encode_value(value)).encode()
    except SystemExit as exc:
        return module, _exit_code(exc) or 1, b""  # exiting instead of returning fails, whatever the code
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return module, 1, b""


def serve_tests(code: types.CodeType, mode: str, fn_name: str | None, control: socket.socket) -> None:
    """The candidate's process for stdin/stdout and function-call tests: run one test per request, each
    in a fresh module with fresh standard streams, until the supervisor hangs up.

    A request is a message on the control socket carrying the test's descriptors: stdin, stdout, stderr,
    and for a function call the arguments (a file of JSON) and a pipe for the return value. The reply is
    {"test": index, "exit": status}. The supervisor starts a new process for the next test whenever this
    one dies, overruns or leaves anything behind (a thread, a process), so tests never see a dirty one.
    """
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 4096, 5)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)  # the supervisor is done with us
        request = json.loads(message)
        extra = _install_std_fds(fds)
        _fresh_streams()
        os.chdir("/tmp")
        if mode == "stdio":
            module = _fresh_module("__main__")
            module.__file__ = "solution.py"
            status = _run(code, module.__dict__)
            _join_threads()
        else:
            args_fd, result_fd = extra
            with os.fdopen(args_fd, "rb") as args_file:
                args = json.loads(args_file.read())
            module, status, payload = _call(code, fn_name, args)
            with os.fdopen(result_fd, "wb") as result_file:
                result_file.write(payload)
        if not _flush():
            status = status or 1
        _forget(module)
        control.send(json.dumps({"test": request["test"], "exit": status}).encode())


def _install_std_fds(fds: list[int]) -> list[int]:
    """Move the first three received descriptors onto 0, 1, 2 and return the others. They may arrive on
    some of those very numbers (a program that closed its stdin frees 0), so all are parked above first."""
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for fd in fds:
        os.close(fd)
    for target, fd in enumerate(parked[:3]):
        os.dup2(fd, target)
        os.close(fd)
    return parked[3:]


def _forget(module: types.ModuleType) -> None:
    """Drop everything the test left in the interpreter before the next test's descriptors arrive: an
    object owning a descriptor (`f = open(0)`, a replaced sys.stdout) would otherwise close it, that is the
    next test's stdin or stdout, whenever it is collected."""
    sys.stdin = sys.__stdin__ = sys.stdout = sys.__stdout__ = sys.stderr = sys.__stderr__ = None
    if sys.modules.get(module.__name__) is module:
        del sys.modules[module.__name__]
    module.__dict__.clear()
    gc.collect()


def serve_candidate(code: types.CodeType, entry_point: str, request_fd: int, response_fd: int) -> None:
    """Candidate side of an assert-style test: run the program, then answer calls of `entry_point` with
    plain data until the test process hangs up."""
    module = _fresh_module("solution")
    status = _run(code, module.__dict__)
    if status:
        _exit(status)
    function = module.__dict__.get(entry_point)
    while True:
        try:
            request = codec.read_frame(request_fd)
        except codec.FrameError:
            _exit(0)  # the test is over
        try:
            if not callable(function):
                raise NameError(f"the program defines no function named {entry_point!r}")
            value = function(*codec.decode_value(request["args"]), **codec.decode_value(request["kwargs"]))
        except SystemExit as exc:
            _exit(_exit_code(exc) or 1)
        except BaseException as exc:  # noqa: BLE001  handed to the test, which may expect it
            response = {"raise": [type(exc).__name__, str(exc)[:2000]]}
        else:
            try:
                response = {"ok": codec.encode_value(value)}
            except TypeError as exc:
                response = {"untransferable": str(exc)}
        _flush()
        codec.write_frame(response_fd, response)


class CandidateFailed(BaseException):
    """The candidate died or returned something that is not plain data. A BaseException so that a test's
    own `except Exception:` cannot swallow it and carry on to a pass."""


class CandidateProxy:
    """Stands in for the candidate function inside the test process: arguments go out as plain data,
    results come back as plain data rebuilt here, so no object made by the candidate ever reaches a test."""

    def __init__(self, name: str, request_fd: int, response_fd: int) -> None:
        self.__name__ = name
        self._request_fd, self._response_fd = request_fd, response_fd

    def __call__(self, *args, **kwargs):
        request = {"args": codec.encode_value(list(args)), "kwargs": codec.encode_value(kwargs)}
        try:
            codec.write_frame(self._request_fd, request)
            response = codec.read_frame(self._response_fd)
        except (OSError, codec.FrameError) as exc:
            raise CandidateFailed(f"the candidate's process ended or broke its pipe during a call ({exc})") \
                from None
        if type(response) is not dict or len(response) != 1:
            raise CandidateFailed("malformed reply from the candidate's process")
        ((kind, body),) = response.items()
        if kind == "ok":
            try:
                return codec.decode_value(body)
            except ValueError as exc:
                raise CandidateFailed(f"malformed value from the candidate: {exc}") from None
        if kind == "raise" and type(body) is list and len(body) == 2 and all(type(s) is str for s in body):
            name, message = body
            # Re-raise built-in exception types as themselves so tests that expect e.g. ValueError work.
            exc_type = getattr(builtins, name, None)
            if isinstance(exc_type, type) and issubclass(exc_type, Exception):
                raise exc_type(message)
            raise RuntimeError(f"{name}: {message}")
        if kind == "untransferable" and type(body) is str:
            raise CandidateFailed(f"the candidate returned a value that is not plain data ({body})")
        raise CandidateFailed("malformed reply from the candidate's process")


def _compile_registered(source: str, filename: str) -> types.CodeType:
    """Compile and register the source with linecache so tracebacks can quote the failing line."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def run_assert_test(setup: str, test: str, entry_point: str, request_fd: int, response_fd: int,
                    report_fd: int) -> None:
    """Test side of an assert-style test: run the (trusted) setup and test code with `entry_point` bound to
    a proxy; call `check(proxy)` if the test defines `check` (HumanEval); report how it went."""
    module = _fresh_module("__main__")
    namespace = module.__dict__
    proxy = CandidateProxy(entry_point, request_fd, response_fd)
    try:
        exec(_compile_registered(setup, "<setup>"), namespace)
        namespace[entry_point] = proxy
        exec(_compile_registered(test, "<test>"), namespace)
        if callable(namespace.get("check")):
            namespace["check"](proxy)
        report = {"status": "passed"}
    except AssertionError as exc:
        report = {"status": "failed", "message": _describe(exc)}
    except BaseException as exc:  # noqa: BLE001  includes CandidateFailed and SystemExit from the test
        report = {"status": "error", "message": _describe(exc)}
    os.write(report_fd, json.dumps(report).encode())
    os._exit(0)


def _describe(exc: BaseException) -> str:
    """`Type: message (at <test> line N: source)` for the innermost frame in the test or setup code."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in ("<test>", "<setup>"):
            where = f" at {frame.filename} line {frame.lineno}: {(frame.line or '').strip()}"
            break
    message = str(exc)
    return f"{type(exc).__name__}{': ' + message if message else ''}{where}"[:2000]
