"""The `rl` stage: GRPO through grpo.driver.RLLoop, resumable from its own checkpoints."""

from __future__ import annotations

from grpo import progress
from grpo.checkpoint import resume_step
from grpo.config import RLStage
from grpo.driver import RLLoop
from grpo.metrics import read_metrics
from pipelines.context import StageContext, StageResult


def run_rl(stage: RLStage, ctx: StageContext) -> StageResult:
    resumed = resume_step(ctx.stage_dir / "checkpoints")  # the bar starts there, as the loop does
    # One log line per step, so no plain bar lines beside them when the output is not a terminal.
    with progress.progress(stage.steps, f"[{stage.name}] rl steps", done=resumed, lines=False) as bar:
        def on_step(step: int, total: int, metrics: dict) -> None:
            bar.advance(step - bar.done, reward=metrics["reward/mean"],
                        **({"accuracy": metrics["accuracy"]} if "accuracy" in metrics else {}))
            acc = f" accuracy {metrics['accuracy']:.3f}" if "accuracy" in metrics else ""
            ctx.echo(f"[{stage.name}] step {step}/{total} reward {metrics['reward/mean']:.3f}{acc} "
                     f"len {metrics['length/mean']:.0f} gen {metrics['timing/generate']:.1f}s "
                     f"learn {metrics.get('timing/learner', 0.0):.1f}s sync {metrics['timing/sync']:.2f}s "
                     f"ETA {bar.eta()}")

        loop = RLLoop(stage, ctx.model_dir, ctx.stage_dir, seed=ctx.recipe.seed, cluster=ctx.recipe.cluster,
                      base_dir=ctx.base_dir, dtype=ctx.recipe.model.dtype, progress=on_step,
                      config=ctx.config or None)
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
