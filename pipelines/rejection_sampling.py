"""The `rejection_sampling` stage (DeepSeek-R1 section 2.3.3): sample N completions per prompt from the
current checkpoint, keep only verified-correct, readable, distinct ones, mix in other data, write a dataset.

Each rejected sample is counted under the first reason that rejects it, in this order: incorrect, truncated,
too_long, format, language_mixing, duplicate, over_quota. The output is `<stage_dir>/dataset.jsonl` with
columns question, answer, completion (plus the source row's other columns), which an `sft` stage reads with
`data: {source: "@<this stage>"}`.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from grpo.config import RejectionSamplingStage
from grpo.data.loading import load_rows
from grpo.data.templates import prompt_renderer
from common.errors import UserError
from pipelines.context import StageContext, StageResult
from pipelines.generation import sample_completions, stage_engines
from rewards.compose import RewardComposer, repeat_columns
from rewards.registry import get_reward

REASONS = ("incorrect", "truncated", "too_long", "format", "language_mixing", "duplicate", "over_quota")


def rejection_reasons(correct: list[float], finish: list[str], lengths: list[int], format_ok: list[float] | None,
                      language_share: list[float] | None, texts: list[str], num_samples: int,
                      stage: RejectionSamplingStage) -> list[str | None]:
    """Per sample: None if kept, else the first reason that rejects it (pure: testable without a model)."""
    filters = stage.filters
    out: list[str | None] = []
    for prompt_index in range(len(texts) // num_samples):
        kept_texts: set[str] = set()
        for i in range(prompt_index * num_samples, (prompt_index + 1) * num_samples):
            if correct[i] < 1.0:
                reason = "incorrect"
            elif finish[i] == "length":
                reason = "truncated"
            elif filters.max_completion_tokens and lengths[i] > filters.max_completion_tokens:
                reason = "too_long"
            elif format_ok is not None and format_ok[i] < 1.0:
                reason = "format"
            elif language_share is not None and language_share[i] < filters.min_language_share:
                reason = "language_mixing"
            elif " ".join(texts[i].split()) in kept_texts:
                reason = "duplicate"
            elif len(kept_texts) >= stage.max_per_prompt:
                reason = "over_quota"
            else:
                reason = None
                kept_texts.add(" ".join(texts[i].split()))
            out.append(reason)
    return out


def run_rejection_sampling(stage: RejectionSamplingStage, ctx: StageContext) -> StageResult:
    from transformers import AutoTokenizer

    rows = [dict(r) for r in load_rows(stage.data, base_dir=ctx.base_dir)]
    tokenizer = AutoTokenizer.from_pretrained(ctx.model_dir)
    render = prompt_renderer(stage.template, tokenizer, stage.chat_template)
    prompts = [render(r["question"]) for r in rows]
    k = stage.num_samples
    groups = sample_completions(ctx.model_dir, prompts, k, stage.sampling, seed=ctx.recipe.seed,
                                cluster=ctx.recipe.cluster, engines=stage_engines(stage, ctx),
                                label=f"[{stage.name}] generate")
    flat = [s for g in groups for s in g]
    texts = [s.text for s in flat]
    columns = repeat_columns(rows, k)
    columns["prompt"] = [p for p in prompts for _ in range(k)]
    with RewardComposer(stage.rewards) as composer:
        scored = composer(texts, columns)
    correct = scored.components[stage.rewards[0].name]
    format_ok = get_reward("format")(texts, **columns) if stage.filters.require_format else None
    language = None
    if stage.filters.language:
        language = get_reward("language_consistency")(texts, **columns, target=stage.filters.language)
    reasons = rejection_reasons(correct, [s.finish_reason for s in flat], [len(s.token_ids) for s in flat],
                                format_ok, language, texts, k, stage)

    kept = [{**rows[i // k], "completion": texts[i], "source_stage": stage.name}
            for i, reason in enumerate(reasons) if reason is None]
    mixed = []
    for spec in stage.mix_in:
        for n, row in enumerate(load_rows(spec, base_dir=ctx.base_dir)):
            if not row.get("completion"):
                raise UserError(f"rejection_sampling mix_in {spec.source} row {n}: no `completion` column "
                                "(map one with columns: {completion: ...})")
            mixed.append(dict(row))
    counts = Counter(r for r in reasons if r is not None)
    path = ctx.stage_dir / "dataset.jsonl"
    tmp = path.with_name(".dataset.jsonl.tmp")
    with tmp.open("w") as f:
        for row in kept + mixed:
            f.write(json.dumps(row, default=str) + "\n")
    os.replace(tmp, path)
    summary = {"samples": len(texts), "kept": len(kept), "mixed_in": len(mixed),
               "rejected": {reason: counts.get(reason, 0) for reason in REASONS}}
    ctx.echo(f"[{stage.name}] kept {len(kept)}/{len(texts)}; rejected by reason: {summary['rejected']}")
    (ctx.stage_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return StageResult(model=None, summary=summary, dataset=path)
