"""The `distill` stage (DeepSeek-R1 section 2.4): the teacher (this stage's model) writes reasoning traces
with vLLM, only verified-correct ones are kept, and a student is fine-tuned on them.

Traces travel as text, so the student may have another architecture and another tokenizer; its prompts are
built with its own tokenizer's template. With `eval_data`, the student is scored before and after.
"""

from __future__ import annotations

import json

from grpo.config import DistillStage, EngineResources, EvalStage
from grpo.data.loading import load_rows
from grpo.data.templates import prompt_renderer
from common.errors import UserError
from pipelines.context import StageContext, StageResult, materialize_model
from pipelines.generation import sample_completions, stage_engines
from pipelines.sft import train_sft
from rewards.compose import RewardComposer, repeat_columns


def run_distill(stage: DistillStage, ctx: StageContext) -> StageResult:
    from transformers import AutoTokenizer

    rows = [dict(r) for r in load_rows(stage.data, base_dir=ctx.base_dir)]
    teacher_tok = AutoTokenizer.from_pretrained(ctx.model_dir)
    teacher_prompt = prompt_renderer(stage.template, teacher_tok, stage.chat_template)
    k = stage.num_samples
    engines = stage_engines(stage, ctx)
    groups = sample_completions(ctx.model_dir, [teacher_prompt(r["question"]) for r in rows], k,
                                stage.sampling, seed=ctx.recipe.seed, cluster=ctx.recipe.cluster,
                                engines=engines, label=f"[{stage.name}] teacher generate")
    texts = [s.text for g in groups for s in g]
    with RewardComposer(stage.rewards) as composer:
        correct = composer(texts, repeat_columns(rows, k)).components[stage.rewards[0].name]
    traces = [(rows[i // k], texts[i]) for i in range(len(texts))
              if correct[i] >= 1.0 and groups[i // k][i % k].finish_reason == "stop"]
    if not traces:
        raise UserError(f"distill stage '{stage.name}': the teacher wrote no verified-correct trace "
                        f"out of {len(texts)}; train the teacher longer or sample more")
    (ctx.stage_dir / "traces.jsonl").write_text(
        "".join(json.dumps({"question": r["question"], "answer": r["answer"], "completion": t}) + "\n"
                for r, t in traces))

    student_base = _student_base(stage, ctx)
    student_prompt = prompt_renderer(stage.template, AutoTokenizer.from_pretrained(student_base), stage.chat_template)
    summary = train_sft(student_base, [student_prompt(r["question"]) for r, _ in traces],
                        [t for _, t in traces], ctx.stage_dir / "model", training=stage, seed=ctx.recipe.seed,
                        dtype=stage.student.dtype, label=f"[{stage.name}] student sft", metrics_dir=ctx.stage_dir)
    summary.update({"teacher samples": len(texts), "traces kept": len(traces)})
    if stage.eval_data is not None:
        from pipelines.eval import evaluate_model

        held_out = [dict(r) for r in load_rows(stage.eval_data, base_dir=ctx.base_dir)]
        probe, student_engines = student_probe(stage, engines)
        for label, model in (("student before", student_base), ("student after", ctx.stage_dir / "model")):
            summary[f"{label} pass@1"] = evaluate_model(model, probe, held_out, ctx, student_engines)["pass@1"]
            ctx.echo(f"[{stage.name}] {label}: pass@1 {summary[f'{label} pass@1']:.3f}")
    return StageResult(model=ctx.stage_dir / "model", summary=summary)


def student_probe(stage: DistillStage, engines: EngineResources) -> tuple[EvalStage, EngineResources]:
    """How the student is scored on eval_data: sampled as the teacher was (the stage's sampling: its
    temperature, max_completion_length, ...), one sample per prompt, on the teacher's engines, in the
    student's dtype unless the stage's rollout names one."""
    probe = EvalStage(name=f"{stage.name}-eval", type="eval", data=stage.eval_data, rewards=stage.rewards[:1],
                      template=stage.template, chat_template=stage.chat_template,
                      sampling=stage.sampling)
    own_dtype = stage.rollout.dtype if stage.rollout is not None else None
    return probe, engines.model_copy(update={"dtype": own_dtype or stage.student.dtype})


def _student_base(stage: DistillStage, ctx: StageContext):
    return materialize_model(stage.student, ctx.base_dir, ctx.stage_dir / "student_base",
                             where=f"stage {stage.name}: student", echo=ctx.echo)
