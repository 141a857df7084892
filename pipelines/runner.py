"""The recipe runner: stages in order, outputs feeding later stages, finished stages skipped on rerun.

Run directory layout:

    <run_dir>/recipe.yaml          the resolved recipe (after overrides), for the record
    <run_dir>/run_state.json       per stage: status (running | finished | failed), output model, summary
    <run_dir>/base_model/          the initial policy when the recipe builds it (`model.make`)
    <run_dir>/stages/<name>/       everything a stage writes (checkpoints, metrics, its output model)

A stage that finished is skipped on rerun unless forced; a stage that was interrupted resumes from its own
checkpoints (the RL stage) or restarts (the short stages).
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Callable

import yaml

from grpo import progress
from grpo.checkpoint import atomic_directory, write_json
from grpo.config import Recipe
from grpo.metrics import forwarding_to
from grpo.report import write_report
from grpo.wandb_run import WandbRun, start_wandb
from pipelines.context import StageContext, StageResult, resolve_model_path, resolve_model_reference


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
    force_all = force == ["all"]
    runners = stage_runners()

    current = _initial_model(recipe, run_dir, base_dir, echo)
    outputs: dict[str, Path] = {"base": current}
    datasets: dict[str, Path] = {}
    with progress.progress(len(recipe.stages), f"{recipe.name} stages") as bar:
        for stage in recipe.stages:
            record = state["stages"].get(stage.name, {})
            if record.get("status") == "finished" and not (force_all or stage.name in (force or [])):
                echo(f"[{stage.name}] finished earlier, skipped (use --force {stage.name} to rerun)")
                if record.get("model"):
                    outputs[stage.name] = Path(record["model"])
                    current = outputs[stage.name]
                if record.get("dataset"):
                    datasets[stage.name] = Path(record["dataset"])
                bar.advance(1, stage=stage.name)
                continue
            model_dir = resolve_model_reference(stage.model, outputs, current, base_dir)
            stage = _resolve_data(stage, datasets)
            ctx = StageContext(recipe=recipe, run_dir=run_dir, stage_dir=run_dir / "stages" / stage.name,
                               base_dir=base_dir, model_dir=model_dir, outputs=dict(outputs), echo=echo)
            ctx.stage_dir.mkdir(parents=True, exist_ok=True)
            state["stages"][stage.name] = {"status": "running", "type": stage.type, "started": time.time()}
            write_json(state_path, state)
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


def _read_state(path: Path) -> dict:
    import json

    if path.exists():
        return json.loads(path.read_text())
    return {"stages": {}}


def _initial_model(recipe: Recipe, run_dir: Path, base_dir: Path, echo) -> Path:
    spec = recipe.model
    if spec.path:
        return resolve_model_path(spec.path, base_dir, where="model.path")
    from grpo.models.factory import make_model

    out = run_dir / "base_model"
    if not (out / "config.json").exists():
        echo(f"[model] building {spec.make} (seed {spec.seed})")
        with atomic_directory(out) as tmp:
            make_model(spec.make, tmp, seed=spec.seed, dtype=spec.dtype, overrides=spec.overrides or None)
    return out


def _resolve_data(stage, datasets: dict[str, Path]):
    """A stage reading `data: {source: "@name"}` gets the dataset file that stage `name` wrote."""
    data = getattr(stage, "data", None)
    if data is None or not data.source.startswith("@"):
        return stage
    path = datasets[data.source[1:]]
    return stage.model_copy(update={"data": data.model_copy(update={"source": str(path)})})
