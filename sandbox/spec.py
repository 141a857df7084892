"""What to run and under which limits: `Limits` and `TestSpec`, validated with errors that say where.

Three test formats are accepted (as a dict, or a JSON string of one):

- stdin/stdout (APPS, LiveCodeBench "stdin"): {"inputs": [str, ...], "outputs": [str, ...]}
- function call (APPS, LiveCodeBench "functional"): {"inputs": [...], "outputs": [...], "fn_name": str}.
  Each input is either a list of positional arguments, with the expected return value as output (APPS),
  or a string of newline-separated JSON values, with a JSON string as output (LiveCodeBench).
  `fn_name` names a top-level function or a method of `class Solution`.
- assert style (HumanEval, MBPP): {"test": str, "entry_point": str, "setup": str (optional)}. The test
  code runs with `entry_point` bound to the candidate; if it defines `check`, `check(candidate)` is called.
  `setup` is trusted code run before it in the test's process (e.g. a HumanEval prompt's helpers).

Expected outputs stay in the grader: `TestSpec.job()` builds what enters the sandbox, inputs only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from common.errors import UserError

MODES = ("stdio", "call", "assert")


@dataclass(frozen=True)
class Limits:
    """Per-test limits. CPU time is limited to `timeout_s` rounded up, wall-clock time to `timeout_s`."""

    timeout_s: float = 4.0
    memory_mb: int = 512
    max_processes: int = 32
    output_bytes: int = 1 << 20  # stdout + stderr + returned value
    disk_mb: int = 64  # the private /tmp

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise UserError(f"sandbox limit {name} must be a positive number, got {value!r}")
        for name in ("memory_mb", "max_processes", "output_bytes", "disk_mb"):
            if not isinstance(getattr(self, name), int):
                raise UserError(f"sandbox limit {name} must be an integer, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TestSpec:
    """A validated test set in one of the three formats (see the module docstring)."""

    __test__ = False  # not a pytest test class, despite the name

    mode: str
    inputs: list[Any] = field(default_factory=list)  # stdio: stdin texts; call: argument lists
    outputs: list[Any] = field(default_factory=list)  # stdio: expected stdout; call: expected values
    fn_name: str | None = None
    test: str | None = None
    entry_point: str | None = None
    setup: str = ""

    @property
    def total(self) -> int:
        return 1 if self.mode == "assert" else len(self.inputs)

    def job(self) -> dict[str, Any]:
        """The part of the spec the sandbox may see: never the expected outputs."""
        if self.mode == "assert":
            return {"mode": "assert", "test": self.test, "entry_point": self.entry_point, "setup": self.setup}
        job: dict[str, Any] = {"mode": self.mode, "inputs": self.inputs}
        if self.mode == "call":
            job["fn_name"] = self.fn_name
        return job

    @classmethod
    def parse(cls, data: "TestSpec | dict | str", where: str = "tests") -> "TestSpec":
        """Validate a dict (or its JSON text) in one of the three formats; UserError naming `where`."""
        if isinstance(data, TestSpec):
            return data
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise UserError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected an object with 'inputs'/'outputs' or 'test', "
                            f"got {type(data).__name__}")
        if "test" in data:
            return _parse_assert(data, where)
        if "inputs" in data or "outputs" in data:
            return _parse_io(data, where)
        raise UserError(f"{where}: expected keys 'inputs' and 'outputs' (optionally 'fn_name'), or 'test' and "
                        f"'entry_point'; got {sorted(data)}")


def _check_keys(data: dict, allowed: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _parse_assert(data: dict, where: str) -> TestSpec:
    _check_keys(data, {"test", "entry_point", "setup"}, where)
    test, entry_point, setup = data.get("test"), data.get("entry_point"), data.get("setup") or ""
    if not isinstance(test, str) or not test.strip():
        raise UserError(f"{where}.test: expected the test code as a non-empty string")
    if not isinstance(entry_point, str) or not entry_point.isidentifier():
        raise UserError(f"{where}.entry_point: expected the candidate function's name, got {entry_point!r}")
    if not isinstance(setup, str):
        raise UserError(f"{where}.setup: expected code as a string, got {type(setup).__name__}")
    for name, source in (("setup", setup), ("test", test)):
        try:
            compile(source, f"<{name}>", "exec")  # dataset code, not the model's: safe to compile here
        except (SyntaxError, ValueError) as exc:
            raise UserError(f"{where}.{name}: the test code does not compile: {exc}") from None
    return TestSpec(mode="assert", test=test, entry_point=entry_point, setup=setup)


def _parse_io(data: dict, where: str) -> TestSpec:
    _check_keys(data, {"inputs", "outputs", "fn_name"}, where)
    inputs, outputs, fn_name = data.get("inputs"), data.get("outputs"), data.get("fn_name")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise UserError(f"{where}: 'inputs' and 'outputs' must both be lists")
    if len(inputs) != len(outputs):
        raise UserError(f"{where}: {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise UserError(f"{where}: no test cases")
    if fn_name is None:
        for kind, values in (("inputs", inputs), ("outputs", outputs)):
            for i, value in enumerate(values):
                if not isinstance(value, str):
                    raise UserError(f"{where}.{kind}[{i}]: stdin/stdout tests need strings, got "
                                    f"{type(value).__name__} (a function-call test needs 'fn_name')")
        return TestSpec(mode="stdio", inputs=inputs, outputs=outputs)
    if not isinstance(fn_name, str) or not fn_name.isidentifier():
        raise UserError(f"{where}.fn_name: expected a function name, got {fn_name!r}")
    args_list, expected = [], []
    for i, (args, output) in enumerate(zip(inputs, outputs)):
        if isinstance(args, str):  # LiveCodeBench: one JSON value per line, JSON text as the output
            try:
                args = [json.loads(line) for line in args.split("\n") if line.strip()]
                output = json.loads(output) if isinstance(output, str) else output
            except ValueError as exc:
                raise UserError(f"{where}: test {i}: arguments or output are not valid JSON ({exc})") from None
        elif not isinstance(args, list):
            raise UserError(f"{where}.inputs[{i}]: expected a list of arguments or a string of JSON lines, "
                            f"got {type(args).__name__}")
        args_list.append(_plain(args, f"{where}.inputs[{i}]"))
        expected.append(_plain(output, f"{where}.outputs[{i}]"))
    return TestSpec(mode="call", inputs=args_list, outputs=expected, fn_name=fn_name)


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """JSON-shaped data (tuples read as lists, as JSON has no tuples); anything else is a UserError."""
    if depth > 100:
        raise UserError(f"{where}: nested deeper than 100 levels")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple):
        return [_plain(item, where, depth + 1) for item in value]
    if type(value) is dict:
        if not all(type(key) is str for key in value):
            raise UserError(f"{where}: dict keys must be strings (as in JSON)")
        return {key: _plain(item, where, depth + 1) for key, item in value.items()}
    raise UserError(f"{where}: {type(value).__name__} is not JSON data")
