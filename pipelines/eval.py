"""The `eval` stage: accuracy of one or more models on held-out data, sampled with vLLM, scored by rewards.

A sample is correct when the first reward in the list (the correctness reward: exact_match, math_accuracy,
code, ...) gives it at least 1. With k samples per prompt, pass@1 is the mean correctness over all samples
(pass@1 averaged over k) and pass@k the unbiased estimator of pipelines.eval_metrics. Every further reward
is reported as its mean over the samples (e.g. `format`: the share of samples in the strict R1 format).
"""

from __future__ import annotations

import json

from grpo.cluster import ensure_ray
from grpo.config import EngineResources, EvalStage
from grpo.data.loading import load_rows
from grpo.data.templates import prompt_renderer
from pipelines.context import StageContext, StageResult, resolve_model_reference
from pipelines.eval_metrics import pass_at_k
from pipelines.generation import sample_completions, stage_engines
from rewards.compose import RewardComposer, repeat_columns


def evaluate_model(model_dir, stage: EvalStage, rows: list[dict], ctx: StageContext,
                   engines: EngineResources) -> dict:
    """pass@1 (over stage.num_samples samples at stage.sampling) and pass@k of one model, sampled on `engines`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    render = prompt_renderer(stage.template, tokenizer, stage.chat_template)
    prompts = [render(r["question"]) for r in rows]
    k = stage.num_samples
    groups = sample_completions(model_dir, prompts, k, stage.sampling, seed=ctx.recipe.seed,
                                cluster=ctx.recipe.cluster, engines=engines, label=f"[{stage.name}] generate")
    completions = [s.text for group in groups for s in group]
    columns = repeat_columns(rows, k)
    with RewardComposer(stage.rewards) as composer:
        scored = composer(completions, columns)
    first = stage.rewards[0].name
    correct = [v >= 1.0 for v in scored.components[first]]
    per_prompt = [correct[i * k : (i + 1) * k] for i in range(len(rows))]
    metrics = {f"pass@{j}": sum(pass_at_k(k, sum(p), j) for p in per_prompt) / len(per_prompt)
               for j in sorted({1, k})}
    for spec in stage.rewards[1:]:
        values = scored.components[spec.name]
        metrics[spec.name] = sum(values) / len(values)
    return {
        **metrics,
        "mean_length": sum(len(s.token_ids) for g in groups for s in g) / len(completions),
        "examples": [{"prompt": prompts[i], "completion": groups[i][0].text, "correct": per_prompt[i][0]}
                     for i in range(min(3, len(rows)))],
    }


def run_eval(stage: EvalStage, ctx: StageContext) -> StageResult:
    ensure_ray(ctx.recipe.cluster)
    rows = [dict(r) for r in load_rows(stage.data, base_dir=ctx.base_dir)]
    targets = {"current": ctx.model_dir}
    for ref in stage.models:
        targets[ref] = resolve_model_reference(ref, ctx.outputs, ctx.model_dir, ctx.base_dir)
    engines = stage_engines(stage, ctx)
    table = {}
    for label, model_dir in targets.items():
        result = evaluate_model(model_dir, stage, rows, ctx, engines)
        table[label] = {k: v for k, v in result.items() if k != "examples"}
        others = "".join(f", {spec.name} {result[spec.name]:.3f}" for spec in stage.rewards[1:])
        ctx.echo(f"[{stage.name}] {label}: pass@1 {result['pass@1']:.3f}{others} ({model_dir})")
        (ctx.stage_dir / f"examples-{label.strip('@')}.json").write_text(json.dumps(result["examples"], indent=2))
    (ctx.stage_dir / "results.json").write_text(json.dumps(table, indent=2))
    return StageResult(model=None, summary=table)
