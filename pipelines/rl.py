"""The `rl` stage: GRPO through grpo.driver.RLLoop, resumable from its own checkpoints."""

from __future__ import annotations

from grpo.config import RLStage
from grpo.driver import RLLoop
from grpo.metrics import read_metrics
from pipelines.context import StageContext, StageResult


def run_rl(stage: RLStage, ctx: StageContext) -> StageResult:
    def progress(step: int, total: int, metrics: dict) -> None:
        acc = f" accuracy {metrics['accuracy']:.3f}" if "accuracy" in metrics else ""
        ctx.echo(f"[{stage.name}] step {step}/{total} reward {metrics['reward/mean']:.3f}{acc} "
                 f"len {metrics['length/mean']:.0f} gen {metrics['timing/generate']:.1f}s "
                 f"learn {metrics.get('timing/learner', 0.0):.1f}s sync {metrics['timing/sync']:.2f}s")

    loop = RLLoop(stage, ctx.model_dir, ctx.stage_dir, seed=ctx.recipe.seed, cluster=ctx.recipe.cluster,
                  base_dir=ctx.base_dir, dtype=ctx.recipe.model.dtype, progress=progress)
    model = loop.run()
    history = read_metrics(ctx.stage_dir / "metrics.jsonl")
    summary = {}
    if history:
        k = max(1, len(history) // 4)
        for key in ("reward/mean", "accuracy"):
            if key in history[0]:
                summary[f"{key} first quarter"] = sum(h[key] for h in history[:k]) / k
                summary[f"{key} last quarter"] = sum(h[key] for h in history[-k:]) / k
    return StageResult(model=model, summary=summary)
