"""The `reward_model` stage: Bradley-Terry training of a reward model on preference pairs.

The reward model starts from this stage's model (a causal LM gets a scalar head) and is written to
`<stage_dir>/reward_model`; the `reward_model` reward loads it by path (kwargs: {model_path: ...}). Held-out
pairwise accuracy before and after training goes into the stage summary.
"""

from __future__ import annotations

from pathlib import Path

from grpo.config import RewardModelStage
from grpo.seeding import seed_everything
from pipelines.context import StageContext, StageResult
from rewards.reward_model import (
    RewardModel,
    RewardModelTraining,
    evaluate_pairs,
    load_preference_pairs,
    train_reward_model,
)


def run_reward_model(stage: RewardModelStage, ctx: StageContext) -> StageResult:
    def resolve(path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else ctx.base_dir / path

    pairs = load_preference_pairs(resolve(stage.pairs))
    held_out = load_preference_pairs(resolve(stage.eval_pairs)) if stage.eval_pairs else None
    seed_everything(ctx.recipe.seed)  # the new score head's initialisation
    model = RewardModel(ctx.model_dir, max_length=stage.max_length)
    summary: dict = {"pairs": len(pairs)}
    if held_out:
        summary["held-out accuracy before"] = evaluate_pairs(model, held_out)["accuracy"]
    history = train_reward_model(model, pairs, RewardModelTraining(
        epochs=stage.epochs, lr=stage.lr, batch_size=stage.batch_size, seed=ctx.recipe.seed))
    summary["train loss last epoch"] = history[-1]["loss"]
    if held_out:
        summary["held-out accuracy after"] = evaluate_pairs(model, held_out)["accuracy"]
    out = ctx.stage_dir / "reward_model"
    model.save(out)
    summary["reward_model"] = str(out)
    ctx.echo(f"[{stage.name}] reward model written to {out}: {summary}")
    return StageResult(model=None, summary=summary)
