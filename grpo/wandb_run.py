"""The recipe run's Weights & Biases run, when the recipe sets `logging.wandb` (TRL's report_to="wandb").

One W&B run per run directory: its id is kept in run_state.json, so a rerun that resumes the recipe logs into
the same W&B run. Each stage's metrics keep their metrics.jsonl names under the stage's name and are plotted
against the stage's own step (`grpo/reward/mean` over `grpo/step`), so an SFT loss and an RL loss never share
a curve; stage summaries (eval pass@1, final SFT loss) go to the run summary under the same prefix. The
resolved recipe is the run's config.

Recipe fields win; a field left null falls back to WANDB_PROJECT, WANDB_ENTITY, WANDB_MODE, WANDB_NAME,
WANDB_TAGS, as with TRL. wandb is imported only when configured; its files go to <run_dir>/wandb unless
WANDB_DIR is set.
"""

from __future__ import annotations

import os
from pathlib import Path

from grpo.config import Recipe
from common.errors import UserError

INSTALL = "pip install 'grpo-toolkit[wandb]' (or pip install wandb==0.31.0)"


class WandbRun:
    def __init__(self, run):
        self.run = run
        self._stages: set[str] = set()

    @property
    def id(self) -> str:
        return self.run.id

    def log(self, stage: str, step: int, metrics: dict[str, float]) -> None:
        if stage not in self._stages:
            # A stage's own step is its x-axis: W&B's global _step would run on across stages and resumes.
            self.run.define_metric(f"{stage}/step")
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")
            self._stages.add(stage)
        self.run.log({f"{stage}/step": step, **{f"{stage}/{key}": value for key, value in metrics.items()}})

    def summarize(self, stage: str, summary: dict) -> None:
        self.run.summary.update(flatten(summary, stage))

    def finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def start_wandb(recipe: Recipe, run_dir: Path, resume_id: str | None, quiet: bool) -> WandbRun | None:
    """The W&B run of this recipe run, or None when the recipe does not ask for one (or its mode is disabled)."""
    config = recipe.logging.wandb
    if config is None or (config.mode or os.environ.get("WANDB_MODE")) == "disabled":
        return None
    try:
        import wandb
    except ImportError:
        raise UserError(f"logging.wandb is set in the recipe, but wandb is not installed: {INSTALL}") from None
    try:
        run = wandb.init(
            project=config.project or os.environ.get("WANDB_PROJECT") or "grpo", entity=config.entity,
            mode=config.mode, name=config.name or os.environ.get("WANDB_NAME") or recipe.name,
            tags=config.tags or None, config=recipe.model_dump(mode="json"),
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
            id=resume_id, resume="allow" if resume_id else None,
            settings=wandb.Settings(silent=True) if quiet else None)
    except wandb.errors.Error as exc:
        raise UserError(f"logging.wandb: W&B could not start a run: {exc} (log in with `wandb login`, or set "
                        "logging.wandb.mode=offline and `wandb sync` later)") from None
    return WandbRun(run)


def flatten(tree: dict, prefix: str) -> dict[str, float]:
    """{"current": {"pass@1": 0.4}} under "eval" -> {"eval/current/pass@1": 0.4}; only numbers are kept."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out
