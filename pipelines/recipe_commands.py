"""`grpo validate`, `grpo explain` and `grpo run`: the recipe commands (the runner is pipelines/runner.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grpo.recipe import load_recipe

OVERRIDE_HELP = ("dotted.key=value overrides applied before validation, e.g. seed=3 "
                 "stages.grpo.steps=5 (a stage can be named by its name or its index)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check a recipe against the schema without running it",
        description="Validate a recipe YAML (and overrides): unknown keys, wrong types, bad choices and "
        "missing files are reported with their YAML path. Exit 0 when valid.")
    p.add_argument("recipe", help="path to a recipe YAML")
    p.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    p.set_defaults(func=_validate)

    p = subparsers.add_parser(
        "explain", help="print a recipe option's type, default, choices and description",
        description="Explain a recipe option from the schema: its type and bounds, default, choices and "
        "description (a section: its keys). PATH is dotted from the top of a recipe, a stage named by its "
        "type (stages.rl.rollout.temperature), or a stage's own key (learner.precision). With RECIPE, a "
        "stage may also be named by its name or index, and the recipe's value is shown.")
    p.add_argument("path", metavar="PATH", help="dotted option path, e.g. stages.rl.algorithm.beta")
    p.add_argument("recipe", nargs="?", metavar="RECIPE", help="a recipe YAML whose value to show")
    p.set_defaults(func=_explain)

    p = subparsers.add_parser(
        "run", help="run a recipe's stages (skips finished stages, resumes an interrupted one)",
        description="Run a recipe: build or load the model, then each stage in order. Outputs go to the "
        "run directory (output_dir, default runs/<name>). Rerunning skips finished stages and resumes an "
        "interrupted RL stage from its last checkpoint; a stage whose config changed since is refused, "
        "naming the change (`steps` may grow: a finished RL stage then continues).")
    p.add_argument("recipe", help="path to a recipe YAML")
    p.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    p.add_argument("--resume", action="store_true",
                   help="require an earlier run to continue (the default already resumes when one exists)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="run this stage again from its start, its earlier checkpoints, metrics and samples "
                   "removed, and with it the later stages that read its outputs (repeatable); 'all' reruns "
                   "every stage")
    p.set_defaults(func=_run)


def _validate(args) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    stages = ", ".join(f"{s.name} ({s.type})" for s in recipe.stages)
    print(f"{args.recipe}: valid recipe '{recipe.name}' with {len(recipe.stages)} stage(s): {stages}")
    return 0


def _explain(args) -> int:
    from grpo.explain import explain

    print(explain(args.path, args.recipe))
    return 0


def _run(args) -> int:
    from grpo import progress
    from common.errors import UserError
    from pipelines.runner import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = recipe.run_dir(Path.cwd())
    if args.resume and not (run_dir / "run_state.json").exists():
        raise UserError(f"--resume: no earlier run in {run_dir}")
    state = run_recipe(recipe, Path(args.recipe), force=args.force, echo=progress.echo)
    print(f"run finished: {run_dir}")
    for name, record in state["stages"].items():
        print(f"  {name:<16} {record['status']:<9} {record.get('summary', '')}")
    return 0
