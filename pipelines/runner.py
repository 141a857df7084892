"""The recipe runner: stages in order, outputs feeding later stages, finished stages skipped on rerun.

Run directory layout:

    <run_dir>/recipe.yaml          the resolved recipe (after overrides), for the record
    <run_dir>/run_state.json       per stage: status (running | finished | failed), output model, summary
    <run_dir>/base_model/          the initial policy when the recipe builds it (`model.make`)
    <run_dir>/stages/<name>/       everything a stage writes (checkpoints, metrics, its output model)
    <run_dir>/logs/worker-<pid>.log  what each Ray worker (vLLM engines, learners) prints, unless `grpo -v`

A stage that finished is skipped on rerun; one that was interrupted resumes from its own checkpoints (the
RL stage) or restarts (the short stages). `--force STAGE` runs a stage again from its start: its directory
is removed first, so its checkpoints, metrics and samples are the new run's only. Like a Makefile, a stage
that runs again also reruns, from their start, the later stages that read its outputs (its model, as the
next stage's default or as '@STAGE', or its dataset); stages that do not read them are kept.

Each stage's resolved config is recorded (in run_state.json and in each RL checkpoint): a finished or
interrupted stage whose config has changed since is refused, naming the changed keys, unless forced. A few
keys may change (grpo.checkpoint.RESUMABLE_KEYS): a finished RL stage whose `steps` grew continues from its
last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Callable

import yaml

from common.errors import UserError
from grpo import progress
from grpo.checkpoint import config_changes, describe_changes, fixed_changes, flat_config, write_json
from grpo.cluster import route_worker_logs
from grpo.config import Recipe
from grpo.metrics import forwarding_to
from grpo.report import write_report
from grpo.wandb_run import WandbRun, start_wandb
from pipelines.context import StageContext, StageResult, materialize_model, resolve_model_reference

MODEL_STAGES = ("sft", "rl", "distill")  # the stage types whose model the next stage starts from by default


def stage_runners() -> dict[str, Callable[[object, StageContext], StageResult]]:
    from pipelines.distill import run_distill
    from pipelines.eval import run_eval
    from pipelines.rejection_sampling import run_rejection_sampling
    from pipelines.reward_model import run_reward_model
    from pipelines.rl import run_rl
    from pipelines.sft import run_sft

    return {"sft": run_sft, "rl": run_rl, "eval": run_eval, "rejection_sampling": run_rejection_sampling,
            "distill": run_distill, "reward_model": run_reward_model}


def run_recipe(recipe: Recipe, recipe_path: Path, *, force: list[str] | None = None,
               echo: Callable[[str], None] = print) -> dict:
    """Run every stage; return the run state (per-stage status, outputs and summaries)."""
    base_dir = recipe_path.parent.resolve()
    run_dir = recipe.run_dir(Path.cwd()).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    route_worker_logs(run_dir / "logs", verbose=progress.console.level >= progress.VERBOSE)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    state_path = run_dir / "run_state.json"
    state = _read_state(state_path)
    state.update({"recipe": recipe.name, "pid": os.getpid(), "host": socket.gethostname()})
    state.pop("finished", None)
    wandb_run = start_wandb(recipe, run_dir, state.get("wandb_id"), quiet=progress.console.level < progress.NORMAL)
    if wandb_run:
        state["wandb_id"] = wandb_run.id  # a rerun of this run directory logs into the same W&B run
    failed = True
    try:
        state = _run_stages(recipe, run_dir, base_dir, state, state_path, force, echo, wandb_run)
        failed = False
        return state
    finally:
        if wandb_run:
            wandb_run.finish(failed)
        try:
            report = write_report(run_dir)
            echo(f"report: {report}")
        except Exception as exc:  # the report must never hide the stage's own error
            echo(f"report could not be written: {type(exc).__name__}: {exc}")


def _run_stages(recipe: Recipe, run_dir: Path, base_dir: Path, state: dict, state_path: Path,
                force: list[str] | None, echo, wandb_run: WandbRun | None) -> dict:
    runners = stage_runners()
    plan = plan_stages(recipe, state, force or [])
    for name, (action, _) in plan.items():
        if action == "restart":  # before any stage runs, so an interruption cannot leave a stale stage finished
            shutil.rmtree(run_dir / "stages" / name, ignore_errors=True)
            state["stages"].pop(name, None)
    write_json(state_path, state)

    current = _initial_model(recipe, run_dir, base_dir, echo)
    outputs: dict[str, Path] = {"base": current}
    datasets: dict[str, Path] = {}
    with progress.progress(len(recipe.stages), f"{recipe.name} stages") as bar:
        for stage in recipe.stages:
            record = state["stages"].get(stage.name, {})
            action, reason = plan[stage.name]
            if action == "skip":
                echo(f"[{stage.name}] finished earlier, skipped (use --force {stage.name} to rerun)")
                if record.get("model"):
                    outputs[stage.name] = Path(record["model"])
                    current = outputs[stage.name]
                if record.get("dataset"):
                    datasets[stage.name] = Path(record["dataset"])
                bar.advance(1, stage=stage.name)
                continue
            config = stage_config(recipe, stage)  # as the recipe says it, before '@' references are resolved
            model_dir = resolve_model_reference(stage.model, outputs, current, base_dir)
            stage = _resolve_data(stage, datasets)
            ctx = StageContext(recipe=recipe, run_dir=run_dir, stage_dir=run_dir / "stages" / stage.name,
                               base_dir=base_dir, model_dir=model_dir, outputs=dict(outputs), echo=echo,
                               config=config)
            ctx.stage_dir.mkdir(parents=True, exist_ok=True)
            state["stages"][stage.name] = {"status": "running", "type": stage.type, "started": time.time(),
                                           "config": config}
            write_json(state_path, state)
            if reason:
                echo(f"[{stage.name}] {reason}")
            echo(f"[{stage.name}] {stage.type} stage on {model_dir}")
            t0 = time.time()
            try:
                with forwarding_to(partial(wandb_run.log, stage.name) if wandb_run else None):
                    result = runners[stage.type](stage, ctx)
            except BaseException as exc:
                state["stages"][stage.name].update({
                    "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                    "seconds": round(time.time() - t0, 1), "traceback": traceback.format_exc(limit=20)})
                write_json(state_path, state)
                raise
            state["stages"][stage.name].update({
                "status": "finished", "seconds": round(time.time() - t0, 1),
                "model": str(result.model) if result.model else None, "summary": result.summary,
                "dataset": str(result.dataset) if result.dataset else None})
            write_json(state_path, state)
            if wandb_run:
                wandb_run.summarize(stage.name, result.summary)
            if result.dataset:
                datasets[stage.name] = result.dataset
            if result.model:
                outputs[stage.name] = result.model
                current = result.model
            bar.advance(1, stage=stage.name)
    state["finished"] = time.time()
    write_json(state_path, state)
    return state


def plan_stages(recipe: Recipe, state: dict, force: list[str]) -> dict[str, tuple[str, str]]:
    """Per stage, in order: ("skip" | "run" | "restart", why). "run" continues where the stage's own
    checkpoints allow; "restart" starts it from scratch (its directory is removed)."""
    names = [stage.name for stage in recipe.stages]
    unknown = [name for name in force if name != "all" and name not in names]
    if unknown:
        raise UserError(f"--force {', '.join(unknown)}: no such stage (stages: {', '.join(names)})")
    inputs = stage_inputs(recipe)
    plan: dict[str, tuple[str, str]] = {}
    for stage in recipe.stages:
        name, record = stage.name, state["stages"].get(stage.name, {})
        rerun = [n for n in sorted(inputs[name]) if plan[n][0] != "skip"]
        if "all" in force or name in force:
            plan[name] = ("restart", "--force: runs again from its start (earlier checkpoints, metrics and "
                                     "samples removed)")
        elif rerun:
            plan[name] = ("restart", f"runs again from its start: it reads the output of {', '.join(rerun)}, "
                                     "which runs again")
        elif record.get("status") != "finished":
            plan[name] = ("run", "")
        else:
            plan[name] = _finished_stage_plan(name, record.get("config", {}), stage_config(recipe, stage))
    return plan


def _finished_stage_plan(name: str, old: dict, new: dict) -> tuple[str, str]:
    changes = config_changes(old, new)
    fixed = fixed_changes(old, new)
    if fixed:
        raise UserError(f"stage '{name}' changed since it finished: {describe_changes(fixed)}; "
                        f"rerun with --force {name} to run it again")
    if "steps" in changes:
        before, after = changes["steps"]
        if after < before:
            raise UserError(f"stage '{name}' finished {before} steps; steps {after} would undo some: raise steps, "
                            f"or rerun with --force {name} to run it again")
        return ("run", f"steps {before} -> {after}: continues from its last checkpoint")
    return ("skip", "")


def stage_inputs(recipe: Recipe) -> dict[str, set[str]]:
    """Per stage, the earlier stages whose outputs it reads: each '@name' in its config (model, models,
    data, ...) and, without `model:`, the last earlier stage that writes a model."""
    inputs: dict[str, set[str]] = {}
    for stage, default in zip(recipe.stages, _default_models(recipe)):
        refs = {value[1:] for value in flat_config(stage.model_dump(mode="json")).values()
                for value in (value if isinstance(value, list) else [value])
                if isinstance(value, str) and value.startswith("@")}
        if stage.model is None:
            refs.add(default[1:])
        inputs[stage.name] = refs & inputs.keys()  # '@base' is the recipe's model, not a stage
    return inputs


def stage_config(recipe: Recipe, stage) -> dict:
    """What a stage's results depend on, flattened: its own fields, the model it starts from ('@stage',
    '@base' or a directory, as the recipe says), the recipe's seed and its model."""
    default = dict(zip((s.name for s in recipe.stages), _default_models(recipe)))[stage.name]
    return {**flat_config(stage.model_dump(mode="json")), "input.model": stage.model or default,
            "recipe.seed": recipe.seed, **flat_config(recipe.model.model_dump(mode="json"), "recipe.model.")}


def _default_models(recipe: Recipe) -> list[str]:
    """Per stage, the model it starts from without `model:`: the last earlier model-writing stage's."""
    defaults, current = [], "@base"
    for stage in recipe.stages:
        defaults.append(current)
        if stage.type in MODEL_STAGES:
            current = f"@{stage.name}"
    return defaults


def _read_state(path: Path) -> dict:
    import json

    if path.exists():
        return json.loads(path.read_text())
    return {"stages": {}}


def _initial_model(recipe: Recipe, run_dir: Path, base_dir: Path, echo) -> Path:
    return materialize_model(recipe.model, base_dir, run_dir / "base_model", where="model", echo=echo)


def _resolve_data(stage, datasets: dict[str, Path]):
    """A stage reading `data: {source: "@name"}` gets the dataset file that stage `name` wrote."""
    data = getattr(stage, "data", None)
    if data is None or not data.source.startswith("@"):
        return stage
    path = datasets[data.source[1:]]
    return stage.model_copy(update={"data": data.model_copy(update={"source": str(path)})})
