"""`grpo sandbox check` and `grpo sandbox run CODE_FILE --tests TESTS.json`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sandbox", help="run untrusted programs against tests, isolated")
    commands = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    commands.required = True

    check = commands.add_parser("check", help="show which isolation layers the sandbox gets on this machine")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_check)

    run = commands.add_parser("run", help="run a program against a test file and print the JSON result")
    run.add_argument("code_file", metavar="CODE_FILE", type=Path, help="the Python program")
    run.add_argument("--tests", required=True, type=Path, metavar="TESTS.json",
                     help='{"inputs": [...], "outputs": [...], "fn_name": optional} or '
                          '{"test": "...", "entry_point": "...", "setup": optional}')
    run.add_argument("--timeout", type=float, default=None, help="seconds per test (default 4)")
    run.add_argument("--memory-mb", type=int, default=None, help="memory limit in MiB (default 512)")
    run.add_argument("--allow-weak-isolation", action="store_true",
                     help="run even where an isolation layer is missing (only for programs you trust)")
    run.set_defaults(func=_run)


def _check(args: argparse.Namespace) -> int:
    from sandbox import isolation_report

    report = isolation_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for layer, state in report.items():
            if layer == "landlock_abi":
                continue
            print(f"  {'ok     ' if state is True else 'MISSING'}  {layer}{'' if state is True else ': ' + state}")
        print(f"  landlock ABI: {report['landlock_abi'] or 'none'}")
    missing = [layer for layer, state in report.items() if layer != "landlock_abi" and state is not True]
    if missing:
        print(f"WARNING: {len(missing)} isolation layer(s) missing: the sandbox refuses to run untrusted code "
              f"here unless given --allow-weak-isolation")
        return 1
    print("all isolation layers active")
    return 0


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None


def _run(args: argparse.Namespace) -> int:
    from sandbox import Limits, Sandbox, TestSpec

    code = _read(args.code_file, "program")
    spec = TestSpec.parse(_read(args.tests, "test file"), where=str(args.tests))
    overrides = {"timeout_s": args.timeout, "memory_mb": args.memory_mb}
    limits = Limits(**{name: value for name, value in overrides.items() if value is not None})
    with Sandbox(workers=1, allow_weak_isolation=args.allow_weak_isolation) as sandbox:
        result = sandbox.run(code, spec, limits)
    print(result.to_json(indent=2))
    return 0 if result.verdict == "passed" else 1
