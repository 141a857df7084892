"""The `sft` stage: supervised fine-tuning on prompt -> completion pairs, loss on completion tokens only.

A row supplies its target as a `completion` column; rows of the synthetic tasks (which carry no written
reasoning) get a compact, correct trace from grpo.data.tasks.solution_trace in the R1 format. The prompt is
built with the same template the RL stage uses, so the formats line up.
"""

from __future__ import annotations

import math
import random

import torch

from grpo import progress
from grpo.checkpoint import atomic_directory
from grpo.config import SFTStage, SupervisedTraining
from grpo.data.arithmetic import slipped_arithmetic_trace
from grpo.data.loading import load_rows
from grpo.data.tasks import solution_trace
from grpo.data.templates import format_r1_completion, prompt_renderer
from grpo.learner.compute import autocast, enable_gradient_checkpointing
from grpo.models.factory import DTYPES
from common.errors import UserError
from grpo.schedule import lr_lambda
from grpo.seeding import seed_everything
from grpo.metrics import MetricsLogger
from pipelines.context import StageContext, StageResult


def completion_for(row: dict, index: int) -> str:
    if row.get("completion"):
        return row["completion"]
    if row.get("imperfection") == "forgotten_carry":
        slipped = slipped_arithmetic_trace(row["question"])
        if slipped is not None:  # a row with no carry to forget keeps its right working
            return format_r1_completion(slipped[0], str(slipped[1]))
    if row.get("imperfection") == "untagged_answer":
        return f"<think> {solution_trace(row)} </think> The answer is {row['answer']}."
    if row.get("task"):
        return format_r1_completion(solution_trace(row), str(row["answer"]))
    raise UserError(f"sft data row {index}: no `completion` column and not a synthetic task row; "
                    "map a column to `completion` in data.columns")


def tokenize_pairs(tokenizer, prompts: list[str], completions: list[str], max_length: int):
    """(input_ids, labels) per row; labels are -100 on prompt tokens. Over-long rows are cut at max_length."""
    eos = tokenizer.eos_token_id
    out = []
    for prompt, completion in zip(prompts, completions):
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        c = tokenizer(completion, add_special_tokens=False).input_ids + [eos]
        ids = (p + c)[:max_length]
        labels = ([-100] * len(p) + c)[:max_length]
        out.append((ids, labels))
    return out


def pack_pairs(pairs: list[tuple[list[int], list[int]]], max_length: int, seed: int):
    """Pack (input_ids, labels) pairs into rows of at most `max_length` tokens: first fit, in a seeded order.

    A row is (input_ids, labels, position_ids); positions restart at 0 for each pair, which is how
    transformers recognises packed sequences and keeps attention inside each one (with no attention mask).
    No loss crosses a boundary: a pair starts with prompt tokens (label -100), so the last token of one pair
    is never trained to predict the first of the next.
    """
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    rows: list[list[int]] = []  # indices of the pairs in each row
    room: list[int] = []
    for i in order:
        size = len(pairs[i][0])
        slot = next((r for r, free in enumerate(room) if free >= size), None)
        if slot is None:
            rows.append([])
            room.append(max_length)
            slot = len(rows) - 1
        rows[slot].append(i)
        room[slot] -= size
    packed = []
    for members in rows:
        ids = [t for i in members for t in pairs[i][0]]
        labels = [t for i in members for t in pairs[i][1]]
        positions = [p for i in members for p in range(len(pairs[i][0]))]
        packed.append((ids, labels, positions))
    return packed


def collate(rows, pad: int, packed: bool) -> dict[str, torch.Tensor]:
    """Right-padded model inputs: an attention mask for plain rows; position ids (and padding that forms a
    block of its own, trained on nothing) for packed rows."""
    width = max(len(row[0]) for row in rows)
    input_ids = torch.tensor([row[0] + [pad] * (width - len(row[0])) for row in rows])
    labels = torch.tensor([row[1] + [-100] * (width - len(row[1])) for row in rows])
    if packed:
        positions = torch.tensor([row[2] + list(range(width - len(row[2]))) for row in rows])
        return {"input_ids": input_ids, "labels": labels, "position_ids": positions}
    attention = (torch.arange(width)[None, :] < torch.tensor([len(row[0]) for row in rows])[:, None]).long()
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def run_sft(stage: SFTStage, ctx: StageContext) -> StageResult:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ctx.model_dir)
    rows = [dict(r) for r in load_rows(stage.data, base_dir=ctx.base_dir)]
    render = prompt_renderer(stage.template, tokenizer, stage.chat_template)
    prompts = [render(r["question"]) for r in rows]
    completions = [completion_for(r, i) for i, r in enumerate(rows)]
    summary = train_sft(ctx.model_dir, prompts, completions, ctx.stage_dir / "model", training=stage,
                        seed=ctx.recipe.seed, dtype=ctx.recipe.model.dtype, label=f"[{stage.name}] sft",
                        metrics_dir=ctx.stage_dir)
    return StageResult(model=ctx.stage_dir / "model", summary=summary)


def load_for_training(model_dir, device: torch.device, gradient_checkpointing: bool = False):
    """The model of `model_dir` as float32 master weights on `device`, in training mode, its decoder layers
    checkpointed when asked (whatever dtype the directory holds: AdamW on bfloat16 weights would lose the
    updates below their resolution)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    return model


def split_rows(rows: list, parts: int) -> list[list]:
    """`rows` in at most `parts` consecutive micro-batches of equal size (the last one may be smaller)."""
    size = math.ceil(len(rows) / parts)
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def accumulate_gradients(model, micro_batches: list[dict[str, torch.Tensor]], precision: str = "float32") -> float:
    """Forward and backward of each micro-batch (collated model inputs with labels), one after another, so
    that the summed gradient is that of the whole batch's mean loss over its completion tokens: each
    micro-batch's summed token loss is divided by the batch's token count (transformers' num_items_in_batch),
    not by its own. Returns that batch loss."""
    device = next(model.parameters()).device
    tokens = max(1, sum(int((batch["labels"][:, 1:] != -100).sum()) for batch in micro_batches))
    total = 0.0
    for batch in micro_batches:
        with autocast(precision, device.type):
            # No KV cache: a cache would also make transformers ignore the packed position ids (its packed-
            # sequence mask is only built without one).
            loss = model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False,
                         num_items_in_batch=tokens).loss
        loss.backward()
        total += loss.detach().item()
    return total


def train_sft(model_dir, prompts: list[str], completions: list[str], out_dir, *, training: SupervisedTraining,
              seed: int, dtype: str = "float32", label: str = "sft", metrics_dir=None) -> dict:
    """Fine-tune the model in `model_dir` on prompt -> completion text pairs; write it to `out_dir` (atomic),
    its weights in `dtype` (the model's: the recipe's model.dtype, a distill student's dtype).

    With `training.packing`, a batch is `batch_size` rows of up to `max_length` tokens, each holding several
    pairs (pack_pairs); without it, `batch_size` pairs padded to the longest. Each batch is cut into
    `gradient_accumulation_steps` micro-batches (accumulate_gradients); the forwards run at
    `training.precision` over float32 master weights, with gradient checkpointing when asked. Per-step loss
    and learning rate go to `metrics_dir` (metrics.jsonl + TensorBoard) when given; the progress bar is
    "<label> steps".
    """
    from transformers import AutoTokenizer

    seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_for_training(model_dir, device, training.gradient_checkpointing)
    pairs = tokenize_pairs(tokenizer, prompts, completions, training.max_length)
    if not pairs:
        raise UserError("sft: no training pairs (every row was filtered out?)")
    packing, batch_size, optim = training.packing, training.batch_size, training.optim
    rows = pack_pairs(pairs, training.max_length, seed) if packing else pairs
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, math.ceil(steps_per_epoch * training.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(optim.lr_schedule, optim.warmup_steps, total))
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    logger = MetricsLogger(metrics_dir) if metrics_dir else None
    with progress.progress(total, f"{label} steps") as bar:
        for step in range(total):
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            batch = [rows[order.pop()] for _ in range(min(batch_size, len(order)))]
            micro = [collate(part, pad, packing) for part in split_rows(batch, training.gradient_accumulation_steps)]
            losses.append(accumulate_gradients(model, micro, training.precision))
            if optim.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)
            optimizer.step()
            sched.step()
            optimizer.zero_grad(set_to_none=True)
            if logger:
                logger.log(step + 1, {"loss": losses[-1], "learner/lr": sched.get_last_lr()[0]})
            bar.advance(1, loss=sum(losses[-10:]) / len(losses[-10:]))  # over 10 steps: steadier than one batch
            progress.debug(f"{label} step {step + 1}/{total} loss {losses[-1]:.4f}")
    if logger:
        logger.close()
    with atomic_directory(out_dir) as tmp:
        model.to(DTYPES[dtype]).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _copy_generation_config(model_dir, tmp)
    return {"loss first": losses[0], "loss last": losses[-1], "steps": total, "pairs": len(pairs),
            "rows": len(rows)}


def _copy_generation_config(src, dst) -> None:
    """Keep the eos ids vLLM stops on (save_pretrained may rewrite generation_config from defaults)."""
    import shutil
    from pathlib import Path

    source = Path(src) / "generation_config.json"
    if source.exists():
        shutil.copy(source, Path(dst) / "generation_config.json")
