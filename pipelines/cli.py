"""The `grpo` command line: the top of the import chain, so it may reach every package.

Each command group lives next to the code it drives and exposes `register(subparsers)`; this file only
collects them, so adding a command never means editing a central switch. User errors (a bad recipe,
a missing file) are raised as `common.errors.UserError` and printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from common.errors import UserError
from grpo import progress

# "module:function" for each command group; each function adds its subparser(s) and sets `func`.
COMMAND_GROUPS = [
    "pipelines.recipe_commands:register",  # validate, explain, run
    "grpo.models.cli:register",        # models make
    "rewards.cli:register",            # rewards score
    "sandbox.cli:register",            # sandbox check / run
    "grpo.report.cli:register",        # report, runs
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo",
        description="RL post-training for reasoning models: run recipe YAMLs (SFT, GRPO, rejection "
        "sampling, distillation, eval) on vLLM + Ray, and the tools around them.",
    )
    progress.add_verbosity_flags(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for entry in COMMAND_GROUPS:
        module_name, func_name = entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A command group whose module is not there yet must not break the others.
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        getattr(module, func_name)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress.configure(args)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
